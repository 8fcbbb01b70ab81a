"""Real pods: the chart's operator in-cluster, relays from the image built here, the whole
incident round trip through them, hot reload by the kubelet's ConfigMap swap, the
securityContext as the kernel enforces it, and the relay's logs through ``kubectl logs``.
"""

from __future__ import annotations

import base64
import json

from pagerbridge_devkit.demo.manifests import demo_manifests
from pagerbridge_devkit.demo.story import Story
from pagerbridge_devkit.localcluster.node import GATEWAY
from pagerbridge_devkit.sandbox import bigpanda as bp
from pagerbridge_devkit.sandbox import pagerduty as pd

from .bed import OPERATOR_NAMESPACE, REPO, Bed
from .conftest import PodEnvironment
from .pods import apply, sandboxed, wait_for, wait_ready

EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def in_pod(bed: Bed, namespace: str, pod: str, code: str) -> str:
    """Python inside the container (the image's own interpreter), stdout."""
    result = bed.exec(namespace, pod, "python", "-c", code)
    assert result.returncode == 0, f"exec in {pod}: {result.stderr}"
    return result.stdout.strip()


def wire_bigpanda(bed: Bed, env: PodEnvironment, integration: str) -> None:
    """What a person does in BigPanda's UI, from ``status.bigPandaWebhook``."""
    pdi = bed.get(env.namespace, "pdi", integration)
    webhook = pdi["status"]["bigPandaWebhook"]
    headers = {}
    for header in webhook["headers"]:
        ref = header.get("valueFrom")
        if ref is None:
            headers[header["name"]] = header["value"]
            continue
        secret = bed.get(env.namespace, "secret", ref["name"])
        token = base64.b64decode(secret["data"][ref["key"]]).decode()
        headers[header["name"]] = (header.get("value") or "<token>").replace("<token>", token)
    assert env.bigpanda is not None
    env.bigpanda.add_webhook_target(webhook["url"], headers)


def secret_values(bed: Bed, namespace: str) -> list[str]:
    values = [pd.DEFAULT_ROUTING_KEY, pd.DEFAULT_API_TOKEN, bp.DEFAULT_API_TOKEN]
    for secret in bed.get(namespace, "secrets")["items"]:
        values += [base64.b64decode(v).decode() for v in (secret.get("data") or {}).values()]
    return [v for v in values if len(v) >= 8]


def assert_json_logs_without_secrets(text: str, secrets: list[str], where: str) -> None:
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, f"{where}: no log lines"
    for line in lines:
        record = json.loads(line)  # every line is one JSON object
        assert isinstance(record, dict), line
    for value in secrets:
        assert value not in text, f"a secret value is in {where}"


# --- the operator pod ----------------------------------------------------------------------


def test_operator_runs_in_cluster_with_the_charts_service_account(bed: Bed) -> None:
    pod = bed.operator_pod()
    name = pod["metadata"]["name"]
    assert pod["spec"]["serviceAccountName"] == "pagerbridge"
    ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert ready["Ready"] == "True"
    # In-cluster config the standard way: the kubernetes Service's ClusterIP from the
    # kubelet's environment, the projected token, no kubeconfig.
    seen = json.loads(
        in_pod(
            bed, OPERATOR_NAMESPACE, name,
            "import json, os; print(json.dumps({"
            "'host': os.environ.get('KUBERNETES_SERVICE_HOST'),"
            "'kubeconfig': os.environ.get('KUBECONFIG'),"
            f"'token': os.path.getsize('{SERVICE_ACCOUNT_DIR}/token') > 0,"
            f"'namespace': open('{SERVICE_ACCOUNT_DIR}/namespace').read()}}))",
        )
    )  # fmt: skip
    service = bed.get("default", "service", "kubernetes")
    assert seen == {
        "host": service["spec"]["clusterIP"],
        "kubeconfig": None,
        "token": True,
        "namespace": OPERATOR_NAMESPACE,
    }
    # The token is the chart's ServiceAccount's, and RBAC lets it do its job.
    can = bed.kubectl(
        "auth", "can-i", "patch", "pagerdutyintegrations.pagerbridge.io/status", "-A",
        f"--as=system:serviceaccount:{OPERATOR_NAMESPACE}:pagerbridge", check=False,
    )  # fmt: skip
    assert can.stdout.strip() == "yes"
    # Its logs: JSON lines (kopf's and ours), reaching the API server (no connection errors).
    logs = bed.kubectl("logs", "-n", OPERATOR_NAMESPACE, name).stdout
    for line in filter(str.strip, logs.splitlines()):
        json.loads(line)
    assert "ClientConnectorDNSError" not in logs
    assert "Temporary failure in name resolution" not in logs


def test_examples_become_ready_relay_pods(bed: Bed, pod_env: PodEnvironment) -> None:
    assert pod_env.sandbox is not None
    assert len(EXAMPLES) >= 3
    integrations = []
    for path in EXAMPLES:
        docs = sandboxed(path, pod_env.sandbox)
        apply(bed, pod_env.namespace, docs)
        integrations += [d["metadata"]["name"] for d in docs if d["kind"] == "PagerDutyIntegration"]
    for integration in integrations:
        pod = wait_ready(bed, pod_env.namespace, integration)
        assert pod["spec"]["nodeName"] == bed.node.name
        assert pod["status"]["podIP"].startswith(GATEWAY.rsplit(".", 1)[0] + ".")
        (container,) = pod["status"]["containerStatuses"]
        assert container["image"].endswith("localhost/pagerbridge:dev")
        assert container["ready"] is True


def test_incident_round_trip_through_relay_pods(bed: Bed, pod_env: PodEnvironment) -> None:
    """examples/03 + the override and mapping of examples/02, played the demo's way."""
    assert pod_env.sandbox is not None
    story = Story(pod_env)
    manifests = demo_manifests(pod_env.sandbox)
    story.manifests = manifests
    pod_env.integration = manifests.integration
    bed.kubectl(
        "apply", "--server-side", "-n", pod_env.namespace, "-f", "-", input=manifests.yaml()
    )
    pod = wait_ready(bed, pod_env.namespace, manifests.integration)
    for kind, name in (("pdko", manifests.key_override), ("pdtm", manifests.tag_mapping)):
        bed.kubectl("wait", "-n", pod_env.namespace, "--for=condition=Ready", f"{kind}/{name}")
    # Each step waits for its effect on the other side and raises StepFailed otherwise;
    # after every synced step the counts on both sides prove one effect and no echo.
    story.wire_bigpanda_webhook()
    story.open_bigpanda_incident()
    story.pagerduty_triggered()  # the override key routed it; the mapped fields are set
    story.comment_in_bigpanda()
    story.note_arrives_in_pagerduty()
    story.note_in_pagerduty()
    story.comment_arrives_in_bigpanda()
    story.resolve_in_pagerduty()
    story.resolved_in_bigpanda()
    # The same pod did all of it: no restart on the way.
    after = bed.get(pod_env.namespace, "pod", pod["metadata"]["name"])
    assert after["status"]["containerStatuses"][0]["restartCount"] == 0

    logs = bed.kubectl("logs", "-n", pod_env.namespace, pod["metadata"]["name"]).stdout
    assert_json_logs_without_secrets(
        logs, secret_values(bed, pod_env.namespace), "the relay's kubectl logs"
    )


def test_tag_mapping_hot_reloads_through_the_kubelets_configmap_swap(
    bed: Bed, pod_env: PodEnvironment
) -> None:
    assert pod_env.sandbox is not None
    assert pod_env.pagerduty is not None
    assert pod_env.bigpanda is not None
    ns = pod_env.namespace
    docs = sandboxed(REPO / "examples" / "02-override-and-mappings.yaml", pod_env.sandbox)
    integration = next(d["metadata"]["name"] for d in docs if d["kind"] == "PagerDutyIntegration")
    pod_env.integration = integration
    apply(bed, ns, docs)
    pod = wait_ready(bed, ns, integration)
    name = pod["metadata"]["name"]
    bed.kubectl("wait", "-n", ns, "--for=condition=Ready", "pdtm/routed-fields")
    wire_bigpanda(bed, pod_env, integration)

    def relay_process() -> str:
        # PID 1 of the container is the relay; its start time tells a restart apart.
        return in_pod(bed, ns, name, "print(open('/proc/1/stat').read().split()[21])")

    def data_dir() -> str:
        return in_pod(
            bed, ns, name, "import os; print(os.readlink('/etc/pagerbridge/config/..data'))"
        )

    started, first_data = relay_process(), data_dir()
    container_id = pod["status"]["containerStatuses"][0]["containerID"]

    def incident_group(host: str) -> object:
        incident = pod_env.bigpanda.open_incident(  # type: ignore[union-attr]
            [{"status": "critical", "host": host, "team": "core", "description": "x"}]
        )
        found = wait_for(
            lambda: pod_env.pagerduty.incident_by_key(incident.id),  # type: ignore[union-attr]
            60,
            "the PagerDuty incident",
        )
        return found.events[-1]["payload"].get("group", "<absent>")

    assert incident_group("db-1") == "<absent>"  # not mapped yet
    apply(
        bed,
        ns,
        [
            {
                "apiVersion": "pagerbridge.io/v1alpha1",
                "kind": "PagerDutyTagMapping",
                "metadata": {"name": "routed-group"},
                "spec": {
                    "integrationRef": {"name": integration},
                    "mappings": [{"tag": "team", "field": "group"}],
                },
            }
        ],
    )
    # The kubelet swaps the projected ConfigMap's ..data link; the relay picks it up.
    wait_for(lambda: data_dir() != first_data, 120, "the kubelet's ..data swap")
    wait_for(lambda: incident_group("db-2") == "core", 120, "the relay to use the new mapping")
    same = bed.get(ns, "pod", name)
    assert same["status"]["containerStatuses"][0]["containerID"] == container_id
    assert same["status"]["containerStatuses"][0]["restartCount"] == 0
    assert relay_process() == started, "the relay process was restarted"


def test_security_context_holds_in_the_real_containers(bed: Bed, pod_env: PodEnvironment) -> None:
    assert pod_env.sandbox is not None
    docs = sandboxed(REPO / "examples" / "01-minimal.yaml", pod_env.sandbox)
    integration = next(d["metadata"]["name"] for d in docs if d["kind"] == "PagerDutyIntegration")
    apply(bed, pod_env.namespace, docs)
    relay = wait_ready(bed, pod_env.namespace, integration)["metadata"]["name"]
    probe = (
        "import errno, json, os\n"
        "status = dict(l.split(':', 1) for l in open('/proc/1/status') if ':' in l)\n"
        "try:\n"
        "    open('/usr/local/pagerbridge-probe', 'w')\n"
        "    root = 'writable'\n"
        "except OSError as exc:\n"
        "    root = errno.errorcode[exc.errno]\n"
        "mount = next(l.split()[3] for l in open('/proc/self/mounts') if l.split()[1] == '/')\n"
        "print(json.dumps({'uid': os.getuid(), 'euid': os.geteuid(), 'gid': os.getgid(),\n"
        "    'pid1_uid': status['Uid'].split(), 'no_new_privs': status['NoNewPrivs'].strip(),\n"
        "    'cap_eff': status['CapEff'].strip(), 'cap_bnd': status['CapBnd'].strip(),\n"
        "    'root': root, 'root_mount': mount.split(',')[0]}))\n"
    )
    for namespace, pod in (
        (pod_env.namespace, relay),
        (OPERATOR_NAMESPACE, bed.operator_pod()["metadata"]["name"]),
    ):
        seen = json.loads(in_pod(bed, namespace, pod, probe))
        assert seen["uid"] == seen["euid"] == seen["gid"] == 65532, seen
        assert set(seen["pid1_uid"]) == {"65532"}, seen  # the container's main process too
        assert seen["no_new_privs"] == "1", seen  # allowPrivilegeEscalation: false
        assert int(seen["cap_eff"], 16) == 0, seen  # capabilities: drop ALL
        assert int(seen["cap_bnd"], 16) == 0, seen
        assert seen["root"] == "EROFS", seen  # readOnlyRootFilesystem
        assert seen["root_mount"] == "ro", seen
