"""Two operator processes on the real API server: one leads (a coordination.k8s.io Lease),
the other stands by; exactly one set of external side effects (PagerDuty subscription,
BigPanda integration, Events), and a takeover without duplicates when the leader dies."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from pagerbridge_devkit.localcluster.kubelet import HarnessKubelet
from pagerbridge_devkit.ports import free_port
from pagerbridge_devkit.sandbox.bigpanda import DEFAULT_API_TOKEN as BP_API_KEY
from pagerbridge_devkit.sandbox.bigpanda import BigPandaSimulator
from pagerbridge_devkit.sandbox.pagerduty import (
    DEFAULT_API_TOKEN,
    DEFAULT_ROUTING_KEY,
    DEFAULT_SERVICE_ID,
    PagerDutySimulator,
)

from ..conftest import Cluster
from .conftest import OperatorProcess, condition, get_json, wait_for

pytestmark = pytest.mark.e2e


def manifest(name: str, pd_url: str, bp_url: str) -> dict[str, Any]:
    """An integration with both external side effects: a PagerDuty webhook subscription
    and a Managed BigPanda Webhook v2 integration."""
    return {
        "apiVersion": "pagerbridge.io/v1alpha1",
        "kind": "PagerDutyIntegration",
        "metadata": {"name": name},
        "spec": {
            "pagerDuty": {
                "routingKey": {"name": "keys", "key": "routing-key"},
                "apiToken": {"name": "keys", "key": "api-token"},
                "serviceId": DEFAULT_SERVICE_ID,
                "eventsUrl": pd_url,
                "apiUrl": pd_url,
            },
            "bigPanda": {
                "apiUrl": bp_url,
                "apiToken": {"name": "keys", "key": "bp-token"},
                "environmentId": "env1",
                "webhook": {"mode": "Managed", "integrationName": f"pb-{name}"},
            },
            "relay": {"publicUrl": f"https://{name}.relay.example.com"},
            "sync": {"notes": False},
        },
    }


def keys() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "keys"},
        "stringData": {
            "routing-key": DEFAULT_ROUTING_KEY,
            "api-token": DEFAULT_API_TOKEN,
            "bp-token": BP_API_KEY,
        },
    }


def lease_holder(cluster: Cluster, namespace: str) -> str:
    lease = get_json(cluster, namespace, "lease", "pagerbridge-operator") or {}
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def events_of(cluster: Cluster, namespace: str, name: str) -> list[dict[str, Any]]:
    listing = json.loads(
        cluster.kubectl(
            "get", "events", "-n", namespace,
            f"--field-selector=involvedObject.name={name}", "-o", "json",
        ).stdout
    )  # fmt: skip
    items: list[dict[str, Any]] = listing["items"]
    return items


def test_two_operators_one_set_of_side_effects_and_a_clean_takeover(
    cluster: Cluster,
    namespace: str,
    kubelet: HarnessKubelet,
    pagerduty: tuple[PagerDutySimulator, str],
    bigpanda: tuple[BigPandaSimulator, str],
    tmp_path: Path,
) -> None:
    pd, pd_url = pagerduty
    bp, bp_url = bigpanda
    first = OperatorProcess(cluster, namespace, tmp_path / "a.log", free_port(), free_port())
    second = OperatorProcess(cluster, namespace, tmp_path / "b.log", free_port(), free_port())
    try:
        first.start()
        wait_for(lambda: "became the leader" in first.log(), 60, "the first operator to lead")
        second.start()
        wait_for(lambda: "standing by" in second.log(), 60, "the second operator to stand by")
        # The follower's liveness probe answers while it waits.
        probe = httpx.get(f"http://127.0.0.1:{second.liveness_port}/healthz", timeout=5)
        assert probe.status_code == 200

        docs = [keys(), manifest("one", pd_url, bp_url)]
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(docs))
        cluster.kubectl(
            "wait", "-n", namespace, "--for=condition=Ready", "pdi/one", "--timeout=90s",
            timeout=100,
        )  # fmt: skip
        # Several resyncs (3 s in the tests) later, still one of each.
        resyncs = len(pd.requests.matching("GET", "/webhook_subscriptions"))
        wait_for(
            lambda: len(pd.requests.matching("GET", "/webhook_subscriptions")) >= resyncs + 2,
            60,
            "two subscription checks",
        )
        assert len(pd.requests.matching("POST", "/webhook_subscriptions")) == 1
        assert len(bp.integrations.all()) == 1
        assert "became the leader" not in second.log()
        before_takeover = events_of(cluster, namespace, "one")
        reasons = [event["reason"] for event in before_takeover]
        assert len(reasons) == len(set(reasons)), f"an Event posted twice: {reasons}"

        # The leader dies without a word (no release): the follower takes over once the
        # lease has run out, and finds the subscription and integration already there.
        holder = lease_holder(cluster, namespace)
        assert first.process is not None
        os.killpg(first.process.pid, signal.SIGKILL)
        first.process.wait(timeout=30)
        wait_for(lambda: "became the leader" in second.log(), 90, "the follower to take over")
        assert lease_holder(cluster, namespace) not in ("", holder)

        cluster.kubectl(
            "apply", "-n", namespace, "-f", "-",
            input=yaml.safe_dump(manifest("two", pd_url, bp_url)),
        )  # fmt: skip
        cluster.kubectl(
            "wait", "-n", namespace, "--for=condition=Ready", "pdi/two", "--timeout=90s",
            timeout=100,
        )  # fmt: skip
        checks = len(pd.requests.matching("GET", "/webhook_subscriptions"))
        wait_for(
            lambda: len(pd.requests.matching("GET", "/webhook_subscriptions")) >= checks + 2,
            60,
            "two subscription checks by the new leader",
        )
        assert condition(get_json(cluster, namespace, "pdi", "one")).get("status") == "True"
        # One subscription and one BigPanda integration per integration, ever.
        assert len(pd.requests.matching("POST", "/webhook_subscriptions")) == 2
        assert len(bp.integrations.all()) == 2
        urls = sorted(
            str(sub["delivery_method"]["url"])
            for sub in httpx.get(
                f"{pd_url}/webhook_subscriptions",
                headers={
                    "Authorization": f"Token token={DEFAULT_API_TOKEN}",
                    "Accept": "application/vnd.pagerduty+json;version=2",
                },
            ).json()["webhook_subscriptions"]
        )
        assert urls == [
            "https://one.relay.example.com/v1/pagerduty/webhook",
            "https://two.relay.example.com/v1/pagerduty/webhook",
        ]

        # A clean shutdown releases the Lease at once.
        second.stop()
        assert lease_holder(cluster, namespace) == ""
        assert "released leadership" in second.log()
    finally:
        first.stop()
        second.stop()
