"""Nothing accepted is lost when the relay pod is replaced (issue 12, durable by default).

A burst of incidents is accepted while PagerDuty answers 503, so everything waits in the
outbox; then a rollout replaces the relay pod (a change of the pod template, as an image or
resources change would). After PagerDuty recovers, every incident reaches it exactly once
and in order (trigger before resolve).

The harness kubelet gives a new pod fresh emptyDir volumes and keeps PVC volumes, as a real
kubelet does; the Ephemeral case shows the same rollout losing the pending work, which is
what its ``OutboxDurable=False`` condition warns about (and proves the test can fail).
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from pagerbridge.api.contract import (
    BIGPANDA_WEBHOOK_PATH,
    RELAY_METRICS_PATH,
    RELAY_READINESS_PATH,
)
from pagerbridge_devkit.localcluster.kubelet import (
    ANNOTATION_INTERNAL_URL,
    ANNOTATION_PID,
    ANNOTATION_URL,
    HarnessKubelet,
)
from pagerbridge_devkit.sandbox.pagerduty import PagerDutySimulator

from ..conftest import Cluster
from .conftest import (
    OperatorProcess,
    burst_incident,
    condition,
    get_json,
    inbound_token,
    integration,
    merge_patch,
    pd_secret,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

INCIDENTS = 8


def incident(n: int, status: str) -> dict[str, Any]:
    return burst_incident("durable", n, status)


def relay_endpoint(cluster: Cluster, namespace: str, name: str) -> tuple[str, str, str]:
    """The running relay's local public URL, pid and internal URL (from the harness
    kubelet's annotations)."""

    def running() -> tuple[str, str, str] | None:
        dep = get_json(cluster, namespace, "deployment", f"{name}-relay") or {}
        annotations = (dep.get("metadata") or {}).get("annotations") or {}
        url, pid = annotations.get(ANNOTATION_URL), annotations.get(ANNOTATION_PID)
        internal = annotations.get(ANNOTATION_INTERNAL_URL)
        return (url, pid, internal) if url and pid and internal else None

    found: tuple[str, str, str] = wait_for(running, 60, "the relay running")
    return found


def pending(internal_url: str) -> float:
    text = httpx.get(internal_url + RELAY_METRICS_PATH, timeout=5).text
    match = re.search(r"^pagerbridge_relay_outbox_pending (\S+)$", text, re.MULTILINE)
    assert match, "the relay exports pagerbridge_relay_outbox_pending"
    return float(match.group(1))


def burst_then_rollout(
    cluster: Cluster,
    namespace: str,
    name: str,
    pd: PagerDutySimulator,
    pd_url: str,
    *,
    storage: str | None,
) -> tuple[str, str]:
    """Accept 2*INCIDENTS webhooks while PagerDuty fails, then roll the relay pod.

    Returns the new relay's internal URL and its pid.
    """
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=pd_secret())
    cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=integration(name, pd_url, {} if storage is None else {"storage": storage}),
    )
    wait_for(
        lambda: condition(get_json(cluster, namespace, "pdi", name)).get("status") == "True",
        90,
        "integration Ready",
    )
    url, pid, internal = relay_endpoint(cluster, namespace, name)
    token = inbound_token(cluster, namespace, name)
    pd.faults.fail_next(None, 503, path_prefix="/v2/enqueue")
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
        for n in range(INCIDENTS):
            assert (
                client.post(url + BIGPANDA_WEBHOOK_PATH, json=incident(n, "critical")).status_code
                == 202
            )
            assert (
                client.post(url + BIGPANDA_WEBHOOK_PATH, json=incident(n, "ok")).status_code == 202
            )
    wait_for(lambda: pending(internal) >= INCIDENTS, 30, "the burst waiting in the outbox")

    # A rollout: a new pod template (here its resources), so a new pod replaces the old.
    merge_patch(
        cluster,
        namespace,
        "pdi",
        name,
        {"spec": {"relay": {"resources": {"requests": {"cpu": "11m"}}}}},
    )
    _, new_pid, new_internal = wait_for(
        lambda: (found := relay_endpoint(cluster, namespace, name))[1] != pid and found,
        90,
        "a new relay pod",
    )
    wait_for(lambda: _healthy(new_internal), 60, "the new relay serving")
    return new_internal, new_pid


def _healthy(internal_url: str) -> bool:
    try:
        return httpx.get(internal_url + RELAY_READINESS_PATH, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_a_rollout_during_an_outage_loses_and_duplicates_nothing(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    kubelet: HarnessKubelet,
    pagerduty: tuple[PagerDutySimulator, str],
) -> None:
    pd, pd_url = pagerduty
    new_url, _ = burst_then_rollout(cluster, namespace, "durable", pd, pd_url, storage=None)
    pdi = get_json(cluster, namespace, "pdi", "durable")
    assert condition(pdi, "OutboxDurable")["status"] == "True"
    deployment = get_json(cluster, namespace, "deployment", "durable-relay")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    claim = get_json(cluster, namespace, "pvc", "durable-outbox")
    assert claim is not None, "the default storage is a PersistentVolumeClaim"

    pd.faults.clear()
    for n in range(INCIDENTS):
        wait_for(
            lambda n=n: (
                (i := pd.incident_by_key(incident(n, "ok")["id"])) and i.status == "resolved"
            ),
            90,
            f"incident {n} resolved in PagerDuty",
        )
    wait_for(lambda: pending(new_url) == 0, 30, "the outbox drained")
    for n in range(INCIDENTS):
        found = pd.incident_by_key(incident(n, "ok")["id"])
        assert found is not None
        actions = [event["event_action"] for event in found.events]
        assert actions == ["trigger", "resolve"], (n, actions)


def test_an_ephemeral_outbox_says_what_it_risks_and_loses_pending_work_on_a_rollout(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    kubelet: HarnessKubelet,
    pagerduty: tuple[PagerDutySimulator, str],
) -> None:
    pd, pd_url = pagerduty
    new_url, _ = burst_then_rollout(cluster, namespace, "fleeting", pd, pd_url, storage="Ephemeral")
    durable = condition(get_json(cluster, namespace, "pdi", "fleeting"), "OutboxDurable")
    assert durable["status"] == "False"
    assert durable["reason"] == "EphemeralStorage"
    assert "lost" in durable["message"]
    assert get_json(cluster, namespace, "pvc", "fleeting-outbox") is None
    # The new pod started with an empty outbox: the burst is gone.
    assert pending(new_url) == 0
    assert pd.incidents() == []
