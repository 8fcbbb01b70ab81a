"""The Helm chart on a real API server (RBAC on): install, schema, and least privilege.

The chart is installed with the real ``helm install``. The operator then runs as a local
process with the chart's Deployment arguments and a token of the chart's ServiceAccount
instead of admin credentials, so a reconcile only works if the chart's Role/ClusterRole
grants enough. Each namespaced rule is then removed in turn and the same reconcile must
visibly fail, so no rule is dead weight. (The operator's own Deployment never gets a pod:
the control plane has no kubelet, and the harness kubelet only runs relay Deployments.)
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pagerbridge_devkit.localcluster.kubelet import HarnessKubelet
from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_ROUTING_KEY, PagerDutySimulator
from pagerbridge_devkit.sandbox.server import BackgroundServer, free_port, loopback_egress_env

from ..conftest import REPO, Cluster
from .conftest import condition, get_json, start_operator, stop_operator, wait_for

pytestmark = pytest.mark.e2e

CHART = REPO / "charts" / "pagerbridge"
# An RBAC denial as the API server words it (a 403 for a terminating namespace is not one).
PERMISSION_ERROR = re.compile(r'forbidden: User \\?"system:serviceaccount:|Not enough permissions')


@dataclasses.dataclass
class Release:
    name: str
    namespace: str
    service_account: str
    operator_args: list[str]
    kubeconfig: Path  # acts as the chart's ServiceAccount
    role_kind: str
    role_name: str
    role_namespace: str | None


AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"


def _aggregated(doc: dict[str, Any]) -> bool:
    labels = doc["metadata"].get("labels", {})
    return any(label.startswith(AGGREGATE) for label in labels)


def _install(cluster: Cluster, tmp_path: Path, *values: str) -> Iterator[Release]:
    name = f"pb-{uuid.uuid4().hex[:6]}"
    namespace = f"{name}-system"
    cluster.kubectl("create", "namespace", namespace)
    try:
        # The session applied crds/ already (not owned by a release): the chart leaves them.
        cluster.helm(
            "install", name, str(CHART), "--namespace", namespace, "--set", "crds.enabled=false",
            *values,
        )  # fmt: skip
        manifest = cluster.helm("get", "manifest", name, "--namespace", namespace).stdout
        docs = [doc for doc in yaml.safe_load_all(manifest) if doc]
        (account,) = [d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"]
        (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
        roles = [
            d
            for d in docs
            if d["kind"] in {"Role", "ClusterRole"}
            and not _aggregated(d)
            and not d["metadata"]["name"].endswith("-leader-election")
        ]
        assert len(roles) == 1, "one watched namespace or one ClusterRole"
        kubeconfig = cluster.service_account_kubeconfig(
            namespace, account, tmp_path / f"{name}.kubeconfig"
        )
        yield Release(
            name=name,
            namespace=namespace,
            service_account=account,
            operator_args=deployment["spec"]["template"]["spec"]["containers"][0]["args"],
            kubeconfig=kubeconfig,
            role_kind=roles[0]["kind"],
            role_name=roles[0]["metadata"]["name"],
            role_namespace=roles[0]["metadata"].get("namespace"),
        )
    finally:
        cluster.helm("uninstall", name, "--namespace", namespace, check=False)
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@dataclasses.dataclass
class ChartOperator:
    """`pagerbridge <the chart's args>`, as the chart's ServiceAccount, on loopback ports."""

    release: Release
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = []
        for arg in self.release.operator_args:
            if arg.startswith("--liveness="):
                arg = f"--liveness=http://127.0.0.1:{free_port()}/healthz"
            elif arg.startswith("--metrics-port="):
                arg = f"--metrics-port={free_port()}"
            args.append(arg)
        env = {
            **os.environ,
            "KUBECONFIG": str(self.release.kubeconfig),
            "PAGERBRIDGE_RESYNC_SECONDS": "3",
            "PAGERBRIDGE_WATCH_SERVER_TIMEOUT": "30",
            "PAGERBRIDGE_WATCH_CLIENT_TIMEOUT": "45",
            **loopback_egress_env(),
        }
        self.process = start_operator(args, env, self.log_path)

    def stop(self) -> None:
        if self.process is not None:
            stop_operator(self.process)
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def namespaced_release(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[Release]:
    yield from _install(
        cluster,
        tmp_path,
        "--set",
        "rbac.scope=namespace",
        "--set",
        f"watchNamespaces={{{namespace}}}",
    )


@pytest.fixture
def cluster_release(cluster: Cluster, tmp_path: Path) -> Iterator[Release]:
    yield from _install(cluster, tmp_path)


@pytest.fixture
def pd_url() -> Iterator[str]:
    sim = PagerDutySimulator()
    with BackgroundServer(sim.app) as server:
        yield server.url
    sim.close()


@pytest.fixture
def chart_operator(tmp_path: Path) -> Iterator[list[ChartOperator]]:
    started: list[ChartOperator] = []
    yield started
    for proc in started:
        proc.stop()


def run_operator(started: list[ChartOperator], release: Release, log: Path) -> ChartOperator:
    proc = ChartOperator(release, log)
    started.append(proc)
    proc.start()
    return proc


def minimal_example(pd_url: str) -> str:
    """examples/01-minimal.yaml with a sandbox routing key and Events API URL."""
    docs = list(yaml.safe_load_all((REPO / "examples" / "01-minimal.yaml").read_text()))
    for doc in docs:
        if doc["kind"] == "Secret":
            doc["stringData"] = {key: DEFAULT_ROUTING_KEY for key in doc["stringData"]}
        if doc["kind"] == "PagerDutyIntegration":
            doc["spec"]["pagerDuty"]["eventsUrl"] = pd_url
    return yaml.safe_dump_all(docs)


def permission_errors(log: str) -> list[str]:
    return [line for line in log.splitlines() if PERMISSION_ERROR.search(line)]


def can_i(cluster: Cluster, release: Release, *args: str) -> bool:
    result = cluster.kubectl(
        "auth",
        "can-i",
        *args,
        f"--as=system:serviceaccount:{release.namespace}:{release.service_account}",
        check=False,
    )
    return result.stdout.strip() == "yes"


def wait_ready(cluster: Cluster, namespace: str, operator: ChartOperator) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        assert operator.process is not None
        assert operator.process.poll() is None, f"operator exited:\n{operator.log()[-3000:]}"
        body = get_json(cluster, namespace, "pdi", "minimal")
        return body if condition(body).get("status") == "True" else None

    try:
        body: dict[str, Any] = wait_for(ready, 90, "pdi/minimal Ready")
    except AssertionError as exc:
        status = (get_json(cluster, namespace, "pdi", "minimal") or {}).get("status")
        raise AssertionError(f"{exc}\nstatus: {status}\nlog:\n{operator.log()[-4000:]}") from None
    return body


def test_helm_install_rejects_bad_values_with_the_schema_message(cluster: Cluster) -> None:
    name = f"pb-bad-{uuid.uuid4().hex[:6]}"
    result = cluster.helm(
        "install", name, str(CHART), "--namespace", "default", "--set", "replicaCount=-1",
        check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert "- at '/replicaCount': minimum: got -1, want 0" in result.stderr
    listed = cluster.helm("list", "--all-namespaces", "--all", "-o", "json").stdout
    assert name not in {release["name"] for release in json.loads(listed)}


def test_namespaced_chart_operator_reconciles_with_its_service_account(
    cluster: Cluster,
    namespace: str,
    namespaced_release: Release,
    kubelet: HarnessKubelet,
    pd_url: str,
    chart_operator: list[ChartOperator],
    tmp_path: Path,
) -> None:
    release = namespaced_release
    assert release.role_kind == "Role"
    assert release.role_namespace == namespace
    assert f"--namespace={namespace}" in release.operator_args
    # The ServiceAccount reaches Secrets only where it was pointed.
    assert can_i(cluster, release, "get", "secrets", "-n", namespace)
    assert not can_i(cluster, release, "get", "secrets", "-n", "default")
    assert not can_i(cluster, release, "get", "secrets", "-n", release.namespace)
    assert not can_i(cluster, release, "list", "secrets", "--all-namespaces")
    denied = cluster.kubectl(
        "--kubeconfig", str(release.kubeconfig), "get", "secrets", "-n", "default", check=False
    )
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr

    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=minimal_example(pd_url))
    operator = run_operator(chart_operator, release, tmp_path / "operator.log")
    body = wait_ready(cluster, namespace, operator)
    assert body["status"]["observedGeneration"] == body["metadata"]["generation"]
    assert get_json(cluster, namespace, "deployment", "minimal-relay") is not None
    unexpected = permission_errors(operator.log())
    assert not unexpected, "\n".join(unexpected[:5])


def test_cluster_chart_operator_reconciles_without_permission_errors(
    cluster: Cluster,
    namespace: str,
    cluster_release: Release,
    kubelet: HarnessKubelet,
    pd_url: str,
    chart_operator: list[ChartOperator],
    tmp_path: Path,
) -> None:
    release = cluster_release
    assert release.role_kind == "ClusterRole"
    assert "--all-namespaces" in release.operator_args
    assert can_i(cluster, release, "list", "secrets", "--all-namespaces")
    # Nothing cluster-scoped: kopf's CRD and namespace scanning is off.
    assert not can_i(cluster, release, "list", "customresourcedefinitions.apiextensions.k8s.io")
    assert not can_i(cluster, release, "list", "namespaces")
    assert not can_i(cluster, release, "create", "clusterroles.rbac.authorization.k8s.io")
    assert not can_i(cluster, release, "list", "nodes")

    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=minimal_example(pd_url))
    operator = run_operator(chart_operator, release, tmp_path / "operator.log")
    wait_ready(cluster, namespace, operator)
    unexpected = permission_errors(operator.log())
    assert not unexpected, "\n".join(unexpected[:5])


def _rules_of(cluster: Cluster, release: Release) -> list[dict[str, Any]]:
    where = ["-n", release.role_namespace] if release.role_namespace else []
    body = json.loads(
        cluster.kubectl("get", release.role_kind, release.role_name, *where, "-o", "json").stdout
    )
    rules: list[dict[str, Any]] = body["rules"]
    return rules


# rule (first apiGroup/first resource) -> a `kubectl auth can-i` check it alone grants
NAMESPACED_RULES: dict[str, tuple[str, ...]] = {
    "pagerbridge.io/pagerdutyintegrations": ("list", "pagerdutyintegrations.pagerbridge.io"),
    "pagerbridge.io/pagerdutyintegrations/status": (
        "patch",
        "pagerdutyintegrations.pagerbridge.io",
        "--subresource=status",
    ),
    "/configmaps": ("create", "configmaps"),
    "apps/deployments": ("create", "deployments.apps"),
    "/events": ("create", "events"),
}
# Not provable on this control plane: `pagerdutyintegrations/finalizers` (update) is what
# lets the operator set blockOwnerDeletion on its children's ownerReferences when the
# OwnerReferencesPermissionEnforcement admission plugin is on (OpenShift, hardened
# clusters); the local control plane runs without that plugin.


def _remove_rule(cluster: Cluster, release: Release, rule: str, check: tuple[str, ...]) -> None:
    rules = _rules_of(cluster, release)
    keys = [f"{r['apiGroups'][0]}/{r['resources'][0]}" for r in rules]
    assert rule in keys, f"{rule} not in the chart's rules {keys}"
    where = ["-n", release.role_namespace] if release.role_namespace else []
    patch = [{"op": "remove", "path": f"/rules/{keys.index(rule)}"}]
    cluster.kubectl(
        "patch", release.role_kind, release.role_name, *where, "--type=json",
        "-p", json.dumps(patch),
    )  # fmt: skip
    scope = where or ["--all-namespaces"]
    wait_for(
        lambda: not can_i(cluster, release, *check, *scope),
        10,
        f"RBAC to stop granting {check}",
    )


def _permission_error(operator: ChartOperator) -> str | None:
    errors = permission_errors(operator.log())
    return errors[0] if errors else None


@pytest.mark.parametrize("rule", sorted(NAMESPACED_RULES))
def test_every_namespaced_rule_is_needed(
    cluster: Cluster,
    namespace: str,
    namespaced_release: Release,
    kubelet: HarnessKubelet,
    pd_url: str,
    chart_operator: list[ChartOperator],
    tmp_path: Path,
    rule: str,
) -> None:
    """Without the rule, the reconcile above hits a permission error (and so fails)."""
    check = NAMESPACED_RULES[rule]
    assert can_i(cluster, namespaced_release, *check, "-n", namespace)
    _remove_rule(cluster, namespaced_release, rule, check)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=minimal_example(pd_url))
    operator = run_operator(chart_operator, namespaced_release, tmp_path / "operator.log")
    line = wait_for(lambda: _permission_error(operator), 45, f"a permission error without {rule}")
    assert line


# The leader election's Role (in the release namespace): index of the rule -> its check.
LEASE_RULES: dict[int, tuple[str, ...]] = {
    0: ("get", "leases.coordination.k8s.io"),  # get + update, on the release's Lease only
    1: ("create", "leases.coordination.k8s.io"),
}


@pytest.mark.parametrize("index", sorted(LEASE_RULES), ids=["get-update", "create"])
def test_every_leader_election_rule_is_needed(
    cluster: Cluster,
    namespace: str,
    namespaced_release: Release,
    pd_url: str,
    chart_operator: list[ChartOperator],
    tmp_path: Path,
    index: int,
) -> None:
    """Without the rule the operator cannot lead: it says so and reconciles nothing."""
    release = namespaced_release
    role = f"{release.name}-pagerbridge-leader-election"
    check = LEASE_RULES[index]
    lease_name = f"{release.name}-pagerbridge"
    name_check = (f"{check[0]}", f"{check[1]}/{lease_name}") if index == 0 else check
    assert can_i(cluster, release, *name_check, "-n", release.namespace)
    patch = [{"op": "remove", "path": f"/rules/{index}"}]
    cluster.kubectl(
        "patch", "role", role, "-n", release.namespace, "--type=json", "-p", json.dumps(patch)
    )
    wait_for(
        lambda: not can_i(cluster, release, *name_check, "-n", release.namespace),
        10,
        f"RBAC to stop granting {check}",
    )
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=minimal_example(pd_url))
    operator = run_operator(chart_operator, release, tmp_path / "operator.log")
    line = wait_for(lambda: _permission_error(operator), 45, "a permission error on the Lease")
    assert "leases" in line
    assert "became the leader" not in operator.log()
    assert condition(get_json(cluster, namespace, "pdi", "minimal")) == {}
