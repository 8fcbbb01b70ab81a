"""Two relay replicas of one integration on a real PostgreSQL outbox, run by the real
operator (harness kubelet: one local process per replica).

A burst is accepted while PagerDuty answers 503, so everything waits in the shared outbox.
In the middle of the burst the relay is rolled out (a new pod template: the harness
replaces one replica at a time, as the rendered RollingUpdate maxUnavailable 0 does), and
after the rollout one replica is SIGKILLed. The burst goes on against whichever replica
answers (as the Service would route it); an event counts once a replica answered 202.
After PagerDuty recovers every incident was triggered and resolved exactly once, in that
order, and no webhook was refused during the rollout.
"""

from __future__ import annotations

import base64
import os
import signal
import time
from typing import Any

import httpx
import pytest
import yaml

from pagerbridge.api.contract import BIGPANDA_WEBHOOK_PATH
from pagerbridge_devkit.localcluster.kubelet import ANNOTATION_PIDS, ANNOTATION_URLS, HarnessKubelet
from pagerbridge_devkit.sandbox.pagerduty import PagerDutySimulator

from ..conftest import Cluster
from .conftest import (
    OperatorProcess,
    burst_incident,
    condition,
    get_json,
    inbound_token,
    merge_patch,
    pd_secret,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

INCIDENTS = 16
NAME = "shared"


def _manifests(pd_url: str, dsn: str) -> str:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "outbox-db"},
        "data": {"uri": base64.b64encode(dsn.encode()).decode()},
    }
    integration = {
        "apiVersion": "pagerbridge.io/v1alpha1",
        "kind": "PagerDutyIntegration",
        "metadata": {"name": NAME},
        "spec": {
            "pagerDuty": {
                "routingKey": {"name": "pd-keys", "key": "routing-key"},
                "eventsUrl": pd_url,
            },
            "sync": {"notes": False},
            "relay": {
                "replicas": 2,
                "storage": "PostgreSQL",
                "database": {"uriSecretRef": {"name": "outbox-db", "key": "uri"}},
            },
        },
    }
    return yaml.safe_dump_all([secret, integration])


def _incident(n: int, status: str) -> dict[str, Any]:
    return burst_incident("shared", n, status)


def _replicas(cluster: Cluster, namespace: str) -> list[tuple[str, str]]:
    """(URL, pid) of every running replica, from the harness kubelet's annotations."""
    dep = get_json(cluster, namespace, "deployment", f"{NAME}-relay") or {}
    annotations = (dep.get("metadata") or {}).get("annotations") or {}
    urls = (annotations.get(ANNOTATION_URLS) or "").split(",")
    pids = (annotations.get(ANNOTATION_PIDS) or "").split(",")
    return [(u, p) for u, p in zip(urls, pids, strict=False) if u and p]


class Sender:
    """Posts each event to a running replica until one answers 202, counting refusals."""

    def __init__(self, cluster: Cluster, namespace: str, token: str) -> None:
        self.cluster, self.namespace = cluster, namespace
        self.client = httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=10)
        self.refused = 0
        self.turn = 0

    def send(self, body: dict[str, Any]) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            replicas = _replicas(self.cluster, self.namespace)
            if replicas:
                self.turn += 1
                url, _ = replicas[self.turn % len(replicas)]
                try:
                    if self.client.post(url + BIGPANDA_WEBHOOK_PATH, json=body).status_code == 202:
                        return
                except httpx.TransportError:
                    pass
                self.refused += 1
            time.sleep(0.2)
        raise AssertionError(f"no replica accepted {body['id']} within 90 s")


def test_two_replicas_on_postgresql_lose_and_duplicate_nothing_through_a_rollout_and_a_kill(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    kubelet: HarnessKubelet,
    pagerduty: tuple[PagerDutySimulator, str],
    pg_dsn: str,
) -> None:
    pd, pd_url = pagerduty
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=pd_secret())
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=_manifests(pd_url, pg_dsn))
    wait_for(
        lambda: condition(get_json(cluster, namespace, "pdi", NAME)).get("status") == "True",
        120,
        "integration Ready",
    )
    first = wait_for(
        lambda: len(r := _replicas(cluster, namespace)) == 2 and r, 60, "two relay replicas"
    )
    sender = Sender(cluster, namespace, inbound_token(cluster, namespace, NAME))
    pd.faults.fail_next(None, 503, path_prefix="/v2/enqueue")

    for n in range(INCIDENTS):
        if n == INCIDENTS // 4:
            # A rollout: a new pod template (here its resources), replica by replica.
            merge_patch(
                cluster,
                namespace,
                "pdi",
                NAME,
                {"spec": {"relay": {"resources": {"requests": {"cpu": "11m"}}}}},
            )
        if n == 3 * INCIDENTS // 4:
            rolled = wait_for(
                lambda: (
                    len(r := _replicas(cluster, namespace)) == 2
                    and not {pid for _, pid in r} & {pid for _, pid in first}
                    and r
                ),
                120,
                "both replicas replaced by the rollout",
            )
            refused_in_rollout = sender.refused
            os.kill(int(rolled[0][1]), signal.SIGKILL)
        sender.send(_incident(n, "critical"))
        sender.send(_incident(n, "ok"))
    assert refused_in_rollout == 0, "a webhook was refused during the rolling update"

    pd.faults.clear()
    for n in range(INCIDENTS):
        wait_for(
            lambda n=n: (
                (i := pd.incident_by_key(_incident(n, "ok")["id"])) and i.status == "resolved"
            ),
            120,
            f"incident {n} resolved in PagerDuty",
        )
    for n in range(INCIDENTS):
        found = pd.incident_by_key(_incident(n, "ok")["id"])
        assert found is not None
        actions = [event["event_action"] for event in found.events]
        assert actions == ["trigger", "resolve"], (n, actions)
