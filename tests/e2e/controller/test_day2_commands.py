"""The day-2 commands against the local control plane: ``pagerbridge test-incident`` and
``pagerbridge outbox``, as a user runs them (the real CLI in its own process, with a
kubeconfig), on an integration the real operator runs (its relay a harness-kubelet process)
and the PagerDuty simulator.

The harness kubelet makes no Pod objects, so the API server's pod proxy (the commands'
default way in) has no pod to reach: the commands say so, and ``--url`` reaches the relay
directly. ``test-incident`` also takes the way BigPanda takes: the integration's publicUrl.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from pagerbridge.api.contract import BIGPANDA_WEBHOOK_PATH
from pagerbridge.controller.names import ChildNames, selector_labels
from pagerbridge_devkit.localcluster.kubelet import (
    ANNOTATION_INTERNAL_URL,
    ANNOTATION_URL,
    HarnessKubelet,
)
from pagerbridge_devkit.localcluster.processes import spawn
from pagerbridge_devkit.localcluster.processes import stop as stop_process
from pagerbridge_devkit.ports import free_port
from pagerbridge_devkit.sandbox.pagerduty import (
    DEFAULT_API_TOKEN,
    DEFAULT_ROUTING_KEY,
    PagerDutySimulator,
)

from ..conftest import Cluster
from .conftest import OperatorProcess, condition, get_json, merge_patch, pd_secret, wait_for

pytestmark = pytest.mark.e2e


def _integration(name: str, pd_url: str, *, notes: bool) -> str:
    pager_duty: dict[str, Any] = {
        "routingKey": {"name": "pd-keys", "key": "routing-key"},
        "eventsUrl": pd_url,
    }
    if notes:
        pager_duty |= {
            "apiToken": {"name": "pd-keys", "key": "api-token"},
            "apiUrl": pd_url,
            "fromEmail": "oncall@example.com",
        }
    return yaml.safe_dump(
        {
            "apiVersion": "pagerbridge.io/v1alpha1",
            "kind": "PagerDutyIntegration",
            "metadata": {"name": name},
            "spec": {"pagerDuty": pager_duty, "sync": {"notes": notes}},
        }
    )


def _ready_relay(cluster: Cluster, namespace: str, name: str, manifest: str) -> dict[str, str]:
    """Apply, wait for Ready and the relay running; its harness annotations."""
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=pd_secret())
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=manifest)
    wait_for(
        lambda: condition(get_json(cluster, namespace, "pdi", name)).get("status") == "True",
        90,
        f"{name} Ready",
    )

    def annotations() -> dict[str, str] | None:
        dep = get_json(cluster, namespace, "deployment", ChildNames(name).relay) or {}
        found = (dep.get("metadata") or {}).get("annotations") or {}
        return found if found.get(ANNOTATION_URL) and found.get(ANNOTATION_INTERNAL_URL) else None

    found: dict[str, str] = wait_for(annotations, 60, f"the relay of {name} running")
    return found


def pagerbridge(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it: its own process, the cluster's kubeconfig."""
    return subprocess.run(
        [sys.executable, "-m", "pagerbridge", *args, "--kubeconfig", str(cluster.kubeconfig)],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _secret(cluster: Cluster, namespace: str, name: str, key: str) -> str:
    secret = get_json(cluster, namespace, "secret", name)
    assert secret is not None, f"Secret {name}"
    return base64.b64decode(secret["data"][key]).decode().strip()


def _hops(output: str) -> dict[str, str]:
    """``{hop: ok|skip|FAIL}`` from the command's report lines."""
    hops = {}
    for line in output.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word in {"ok", "skip", "FAIL"}:
            hops[rest.strip().split(":")[0]] = word
    return hops


def test_test_incident_follows_every_hop_and_resolves(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    kubelet: HarnessKubelet,
    pagerduty: tuple[PagerDutySimulator, str],
) -> None:
    pd, pd_url = pagerduty
    found = _ready_relay(cluster, namespace, "probe", _integration("probe", pd_url, notes=True))
    # BigPanda's way in: the public URL (here the harness relay's public port).
    merge_patch(
        cluster,
        namespace,
        "pdi",
        "probe",
        {"spec": {"relay": {"publicUrl": found[ANNOTATION_URL]}}},
    )
    wait_for(
        lambda: (
            (get_json(cluster, namespace, "pdi", "probe")["status"]["bigPandaWebhook"]["url"])
            == found[ANNOTATION_URL] + BIGPANDA_WEBHOOK_PATH
        ),
        60,
        "the webhook URL at the public URL",
    )
    result = pagerbridge(cluster, "test-incident", "probe", "-n", namespace, "--timeout", "60")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _hops(result.stdout) == {
        "accepted": "ok",
        "PagerDuty incident": "ok",
        "note": "ok",
        "resolve": "ok",
    }, result.stdout
    (incident,) = [i for i in pd.incidents() if i.incident_key.startswith("pagerbridge-test-")]
    assert incident.incident_key in result.stdout
    assert incident.status == "resolved"
    assert "[pagerbridge test]" in incident.title
    assert [note.content for note in incident.notes if "[pagerbridge test]" in note.content]
    trigger = next(e for e in incident.events if e["event_action"] == "trigger")
    assert trigger["payload"]["custom_details"]["tags"]["pagerbridge_test"] == "true"
    # No secret in what the command printed.
    inbound = _secret(cluster, namespace, ChildNames("probe").token_secret, "token")
    for secret in (inbound, DEFAULT_API_TOKEN, DEFAULT_ROUTING_KEY):
        assert secret not in result.stdout + result.stderr


def test_test_incident_names_the_hop_that_fails(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    kubelet: HarnessKubelet,
    pagerduty: tuple[PagerDutySimulator, str],
) -> None:
    pd, pd_url = pagerduty
    found = _ready_relay(cluster, namespace, "broken", _integration("broken", pd_url, notes=True))
    pd.faults.fail_next(None, 400, path_prefix="/v2/enqueue", body={"status": "invalid event"})
    result = pagerbridge(
        cluster, "test-incident", "broken", "-n", namespace,
        "--url", found[ANNOTATION_URL], "--timeout", "3",
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    hops = _hops(result.stdout)
    assert hops["accepted"] == "ok"
    assert hops["PagerDuty incident"] == "FAIL"
    assert hops["resolve"] == "FAIL"  # still attempted: nothing is left behind on purpose
    assert "no incident with incident_key pagerbridge-test-" in result.stdout
    assert "hop(s) failed" in result.stdout
    assert pd.incidents() == []


def test_outbox_lists_and_replays_a_dead_letter(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    kubelet: HarnessKubelet,
    pagerduty: tuple[PagerDutySimulator, str],
) -> None:
    pd, pd_url = pagerduty
    found = _ready_relay(cluster, namespace, "queue", _integration("queue", pd_url, notes=False))
    names = ChildNames("queue")
    admin_token = _secret(cluster, namespace, names.admin_secret, "token")
    assert len(admin_token) >= 32
    internal = ["--url", found[ANNOTATION_INTERNAL_URL]]

    # The admin API is on the internal port only, and wants the token.
    assert httpx.get(found[ANNOTATION_URL] + "/admin/v1/pending").status_code == 404
    assert httpx.get(found[ANNOTATION_INTERNAL_URL] + "/admin/v1/pending").status_code == 401

    # Without --url the command goes through the API server's pod proxy: here there is no
    # pod (harness kubelet), and it says what to do.
    result = pagerbridge(cluster, "outbox", "queue", "-n", namespace, "pending")
    assert result.returncode == 1
    assert "no Ready relay pod" in result.stderr
    assert "--url" in result.stderr

    # PagerDuty refuses one trigger for good: a dead letter.
    pd.faults.fail_next(1, 400, path_prefix="/v2/enqueue", body={"status": "invalid event"})
    token = _secret(cluster, namespace, names.token_secret, "token")
    body = {"id": "inc-replay-1", "status": "critical", "updatedOn": 1764140000,
            "alerts": [{"status": "critical", "description": "disk full", "host": "db-1",
                        "primary_property": "host"}]}  # fmt: skip
    accepted = httpx.post(
        found[ANNOTATION_URL] + BIGPANDA_WEBHOOK_PATH,
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert accepted.status_code == 202, accepted.text

    def dead_letters() -> str | None:
        listed = pagerbridge(cluster, "outbox", "queue", "-n", namespace, *internal, "dead-letters")
        assert listed.returncode == 0, listed.stderr
        return listed.stdout if "pd_event" in listed.stdout else None

    listing = wait_for(dead_letters, 60, "the dead letter listed")
    header, row = listing.splitlines()[:2]
    assert header.split()[:4] == ["ID", "KIND", "KEY", "STATUS"]
    job_id, kind, _, status = row.split()[:4]
    assert (kind, status) == ("pd_event", "400")
    assert pd.incident_by_key("inc-replay-1") is None
    pending = pagerbridge(cluster, "outbox", "queue", "-n", namespace, *internal, "pending")
    assert pending.returncode == 0
    assert pending.stdout == "no pending jobs\n"

    replay = pagerbridge(cluster, "outbox", "queue", "-n", namespace, *internal, "replay", job_id)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    wait_for(lambda: pd.incident_by_key("inc-replay-1"), 60, "the replayed trigger in PagerDuty")
    empty = pagerbridge(cluster, "outbox", "queue", "-n", namespace, *internal, "dead-letters")
    assert empty.stdout == "no dead letters\n"
    again = pagerbridge(cluster, "outbox", "queue", "-n", namespace, *internal, "replay", job_id)
    assert again.returncode == 1
    assert "answered 404" in again.stderr
    for result in (pending, replay, empty, again):
        assert admin_token not in result.stdout + result.stderr

    # Rotation: the deleted admin Secret comes back with a new token, which the running
    # relay takes without a restart; the old token no longer opens the admin API.
    cluster.kubectl("delete", "secret", "-n", namespace, names.admin_secret)
    rotated = wait_for(
        lambda: (get_json(cluster, namespace, "secret", names.admin_secret) or {}).get("data"),
        60,
        "the admin Secret recreated",
    )
    new_token = base64.b64decode(rotated["token"]).decode().strip()
    assert new_token != admin_token
    wait_for(
        lambda: (
            pagerbridge(
                cluster, "outbox", "queue", "-n", namespace, *internal, "pending"
            ).returncode
            == 0
        ),
        60,
        "the relay taking the new token",
    )
    old = httpx.get(
        found[ANNOTATION_INTERNAL_URL] + "/admin/v1/pending",
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert old.status_code == 401


def _routable_address() -> str | None:
    """This machine's address on its default route (the API server may proxy to it; it
    refuses loopback), or None without one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))  # no packet is sent
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_outbox_goes_through_the_api_server_pod_proxy_by_default(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    """The default way in: a Ready relay pod's ``internal`` port through the API server.

    The harness kubelet makes no Pod objects, so this test makes the pod's API side itself
    (a Pod with the relay's labels and ports, its status Running and Ready at this
    machine's address) and runs the relay there as a process, as a kubelet would.
    """
    address = _routable_address()
    if address is None:
        pytest.skip("no non-loopback address: the API server does not proxy to loopback")
    names = ChildNames("proxied")
    admin_token = "admin-token-for-the-pod-proxy-test-3xQ9"
    cluster.kubectl(
        "create", "secret", "generic", names.admin_secret, "-n", namespace,
        f"--from-literal=token={admin_token}",
    )  # fmt: skip
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "routing-key").write_text(DEFAULT_ROUTING_KEY)
    (secrets / "webhook-token").write_text("inbound-token-for-the-pod-proxy-test")
    (secrets / "admin-token").write_text(admin_token)
    config = tmp_path / "relay.json"
    config.write_text(
        json.dumps(
            {
                "pagerDuty": {
                    "eventsUrl": "http://127.0.0.1:9",
                    "routingKeyFile": str(secrets / "routing-key"),
                },
                "bigPanda": {"webhookTokenFile": str(secrets / "webhook-token")},
                "outboxPath": str(tmp_path / "outbox.db"),
                "adminTokenFile": str(secrets / "admin-token"),
            }
        )
    )
    public, internal = free_port(address), free_port(address)
    with (tmp_path / "relay.log").open("ab") as log:
        relay = spawn(
            [sys.executable, "-m", "pagerbridge", "relay", "--config", str(config),
             "--host", address, "--port", str(public), "--internal-port", str(internal)],
            stdout=log,
        )  # fmt: skip
    try:
        wait_for(lambda: _answers(f"http://{address}:{internal}/readyz"), 60, "the relay up")
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"{names.relay}-0", "labels": selector_labels(names)},
            "spec": {
                "automountServiceAccountToken": False,
                "containers": [
                    {
                        "name": "relay",
                        "image": "pagerbridge",
                        "ports": [
                            {"name": "http", "containerPort": public},
                            {"name": "internal", "containerPort": internal},
                        ],
                    }
                ],
            },
        }
        # Pod admission wants the namespace's default ServiceAccount, which this control
        # plane's controller manager does not make: make it (a real cluster has it).
        cluster.kubectl("create", "serviceaccount", "default", "-n", namespace, check=False)
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(pod))
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        status = {
            "status": {
                "phase": "Running",
                "podIP": address,
                "podIPs": [{"ip": address}],
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
            }
        }
        merge_patch(cluster, namespace, "pod", f"{names.relay}-0", status, "--subresource=status")

        result = pagerbridge(cluster, "outbox", "proxied", "-n", namespace, "pending")
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout == "no pending jobs\n"
        letters = pagerbridge(
            cluster, "outbox", "proxied", "-n", namespace, "dead-letters", "-o", "json"
        )
        assert json.loads(letters.stdout) == {"deadLetters": []}
        # A wrong token in the Secret: the relay refuses, and the command says so.
        wrong = cluster.kubectl(
            "create", "secret", "generic", names.admin_secret, "-n", namespace,
            "--from-literal=token=not-the-token", "--dry-run=client", "-o", "json",
        ).stdout  # fmt: skip
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=wrong)
        refused = pagerbridge(cluster, "outbox", "proxied", "-n", namespace, "pending")
        assert refused.returncode == 1
        assert "answered 401" in refused.stderr
        assert admin_token not in result.stdout + result.stderr + refused.stderr
    finally:
        stop_process(relay)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_users_secret_named_like_the_admin_secret_is_never_adopted(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    pagerduty: tuple[PagerDutySimulator, str],
) -> None:
    """The admin token Secret follows the never-adopt rule: a namesake is a NameConflict,
    left as it is, and its value never becomes the admin API's token."""
    _, pd_url = pagerduty
    name = ChildNames("taken").admin_secret
    cluster.kubectl(
        "create", "secret", "generic", name, "-n", namespace, "--from-literal=token=theirs"
    )
    before = get_json(cluster, namespace, "secret", name)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=pd_secret())
    cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", input=_integration("taken", pd_url, notes=False)
    )
    wait_for(
        lambda: (
            condition(get_json(cluster, namespace, "pdi", "taken")).get("reason") == "NameConflict"
        ),
        60,
        "NameConflict",
    )
    ready = condition(get_json(cluster, namespace, "pdi", "taken"))
    assert f"Secret {namespace}/{name}" in ready["message"]
    assert "theirs" not in ready["message"]
    after = get_json(cluster, namespace, "secret", name)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert not after["metadata"].get("ownerReferences")
