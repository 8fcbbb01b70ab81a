"""Nothing accepted is lost when a real relay pod is lost in the middle of a burst (a
forced delete), or when all its processes die at once as in a node crash.

PagerDuty answers 503 throughout the burst, so every accepted event waits in the outbox
(the default ``Persistent`` storage: a PersistentVolumeClaim). Half-way through, the relay
pod is deleted with ``--force --grace-period=0``: its API object goes at once, the kubelet
kills the container, and the Deployment controller starts a new pod on the same claim.
The burst goes on against whichever relay pod is Ready (as a Service would route it);
an event counts as sent once a relay answered 202. After PagerDuty recovers, every
incident was triggered and resolved exactly once, in that order.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx

from pagerbridge.api.contract import BIGPANDA_WEBHOOK_PATH

from .bed import REPO, Bed
from .conftest import PodEnvironment
from .pods import apply, sandboxed, wait_for, wait_ready

INCIDENTS = 12


def _incident(n: int, status: str) -> dict[str, Any]:
    return {
        "id": f"podloss{n:017d}",
        "status": status,
        "active": status != "ok",
        "updatedOn": 1764140000 + n * 10 + (1 if status == "ok" else 0),
        "alerts": [
            {
                "status": status,
                "description": "disk full",
                "primary_property": "host",
                "host": f"db-{n}",
            }
        ],
    }


def _inbound_token(bed: Bed, namespace: str, integration: str) -> str:
    pdi = bed.get(namespace, "pdi", integration)
    headers = {h["name"]: h for h in pdi["status"]["bigPandaWebhook"]["headers"]}
    ref = headers["Authorization"]["valueFrom"]
    secret = bed.get(namespace, "secret", ref["name"])
    return base64.b64decode(secret["data"][ref["key"]]).decode()


def _send_until_accepted(
    bed: Bed, namespace: str, integration: str, token: str, body: dict[str, Any]
) -> None:
    """Post to the Ready relay pod until one answers 202 (a refused or failed post is
    not accepted work: the sender still holds it)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        pod = bed.ready_relay_pod(namespace, integration)
        ip = pod and pod["status"].get("podIP")
        if ip:
            try:
                answer = httpx.post(
                    f"http://{ip}:8080{BIGPANDA_WEBHOOK_PATH}",
                    json=body,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=10,
                )
            except httpx.TransportError:
                answer = None
            if answer is not None and answer.status_code == 202:
                return
        time.sleep(0.5)
    raise AssertionError(f"no relay pod accepted incident {body['id']} within 180 s")


class Burst:
    """One integration (examples/01-minimal) with PagerDuty refusing events, so that every
    accepted event waits in the relay's outbox."""

    def __init__(self, bed: Bed, pod_env: PodEnvironment) -> None:
        assert pod_env.sandbox is not None
        assert pod_env.pagerduty is not None
        self.bed, self.pagerduty, self.ns = bed, pod_env.pagerduty, pod_env.namespace
        docs = sandboxed(REPO / "examples" / "01-minimal.yaml", pod_env.sandbox)
        (self.integration,) = [
            d["metadata"]["name"] for d in docs if d["kind"] == "PagerDutyIntegration"
        ]
        pod_env.integration = self.integration
        apply(bed, self.ns, docs)
        self.first_pod = wait_ready(bed, self.ns, self.integration)
        self.token = _inbound_token(bed, self.ns, self.integration)
        self.pagerduty.faults.fail_next(None, 503, path_prefix="/v2/enqueue")

    def send(self, n: int) -> None:
        """Incident ``n``'s trigger, then its resolve, each until a relay pod accepted it."""
        for status in ("critical", "ok"):
            _send_until_accepted(
                self.bed, self.ns, self.integration, self.token, _incident(n, status)
            )

    def recover_and_check(self) -> None:
        """PagerDuty recovers: every incident triggered and resolved exactly once, in order."""
        self.pagerduty.faults.clear()
        for n in range(INCIDENTS):
            wait_for(
                lambda n=n: (
                    (i := self.pagerduty.incident_by_key(_incident(n, "ok")["id"]))
                    and i.status == "resolved"
                ),
                120,
                f"incident {n} resolved in PagerDuty",
            )
        for n in range(INCIDENTS):
            found = self.pagerduty.incident_by_key(_incident(n, "ok")["id"])
            assert found is not None
            actions = [event["event_action"] for event in found.events]
            assert actions == ["trigger", "resolve"], (n, actions)


def test_a_forced_pod_delete_mid_burst_loses_and_duplicates_nothing(
    bed: Bed, pod_env: PodEnvironment
) -> None:
    burst = Burst(bed, pod_env)
    first = burst.first_pod
    for n in range(INCIDENTS):
        if n == INCIDENTS // 2:
            bed.kubectl(
                "delete", "pod", "-n", burst.ns, first["metadata"]["name"],
                "--force", "--grace-period=0",
            )  # fmt: skip
        burst.send(n)
    second = wait_ready(bed, burst.ns, burst.integration)
    assert second["metadata"]["uid"] != first["metadata"]["uid"], "a new relay pod serves"
    burst.recover_and_check()


def _pod_processes(pod_uid: str) -> list[int]:
    """Host PIDs of every process of a pod (its sandbox and containers), by cgroup."""
    marks = (f"pod{pod_uid}", f"pod{pod_uid.replace('-', '_')}")
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cgroup = (entry / "cgroup").read_text()
        except OSError:
            continue
        if any(mark in cgroup for mark in marks):
            pids.append(int(entry.name))
    return pids


def test_every_process_of_the_relay_pod_killed_with_work_pending_loses_nothing(
    bed: Bed, pod_env: PodEnvironment
) -> None:
    """What a node crash does to a pod: its sandbox and container processes die at once
    (SIGKILL from the host, no SIGTERM, no drain). The kubelet starts the pod again on
    the same claim, and the work accepted before is delivered once."""
    burst = Burst(bed, pod_env)
    pod = burst.first_pod
    for n in range(INCIDENTS):
        burst.send(n)

    victims = _pod_processes(pod["metadata"]["uid"])
    assert victims, "found the relay pod's processes on the host"
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    restarted = wait_for(
        lambda: (
            (p := bed.ready_relay_pod(burst.ns, burst.integration))
            and p["status"]["containerStatuses"][0]["restartCount"] > 0
            and p
        ),
        180,
        "the relay container started again and Ready",
    )
    assert restarted["metadata"]["uid"] == pod["metadata"]["uid"], "the same pod, restarted"
    burst.recover_and_check()
