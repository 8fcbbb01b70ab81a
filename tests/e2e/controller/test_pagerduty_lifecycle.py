"""Issue 28 (PagerDuty → BigPanda) against the local control plane: the operator, a real
relay Pod (harness kubelet) and both simulators. ``sync.pagerDutyEvents`` chooses which
PagerDuty incident changes become BigPanda comments: the operator subscribes PagerDuty to
exactly those types (plus resolve), each enabled change arrives as exactly one comment, a
disabled one as none, and changing the matrix updates the live subscription and the relay."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import yaml

from pagerbridge_devkit.localcluster.kubelet import (
    ANNOTATION_INTERNAL_URL,
    ANNOTATION_URL,
    HarnessKubelet,
)
from pagerbridge_devkit.sandbox.bigpanda import DEFAULT_API_TOKEN as BP_API_TOKEN
from pagerbridge_devkit.sandbox.bigpanda import DEFAULT_ENVIRONMENT_ID, BigPandaSimulator
from pagerbridge_devkit.sandbox.pagerduty import (
    DEFAULT_API_TOKEN,
    DEFAULT_ROUTING_KEY,
    DEFAULT_SERVICE_ID,
    PagerDutySimulator,
)

from ..conftest import Cluster
from ..kube import merge_patch
from .conftest import OperatorProcess, get_json, signed_probe, wait_for

pytestmark = pytest.mark.e2e

WEBHOOK_PATH = "/v1/pagerduty/webhook"
NAME = "life"
MATRIX = {
    "acknowledged": True,
    "unacknowledged": True,
    "reassigned": True,
    "escalated": False,
    "delegated": True,
    "priorityUpdated": True,
    "statusUpdatePublished": True,
    "responderAdded": True,
    "reopened": True,
}


def _manifests(pd_url: str, bp_url: str) -> str:
    docs = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "keys"},
            "stringData": {
                "routing-key": DEFAULT_ROUTING_KEY,
                "api-token": DEFAULT_API_TOKEN,
                "bp-token": BP_API_TOKEN,
            },
        },
        {
            "apiVersion": "pagerbridge.io/v1alpha1",
            "kind": "PagerDutyIntegration",
            "metadata": {"name": NAME},
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
                    "environmentId": DEFAULT_ENVIRONMENT_ID,
                },
                "relay": {"publicUrl": "https://relay.example.com"},
                "sync": {"notes": False, "pagerDutyEvents": MATRIX},
            },
        },
    ]
    return yaml.safe_dump_all(docs)


def test_lifecycle_matrix_comments_and_subscription(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    kubelet: HarnessKubelet,
    pagerduty: tuple[PagerDutySimulator, str],
    bigpanda: tuple[BigPandaSimulator, str],
) -> None:
    pd, pd_url = pagerduty
    bp, bp_url = bigpanda
    bp.set_rate_limit(None)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=_manifests(pd_url, bp_url))
    cluster.kubectl(
        "wait",
        "-n",
        namespace,
        "--for=condition=Ready",
        f"pdi/{NAME}",
        "--timeout=90s",
        timeout=100,
    )
    dep = get_json(cluster, namespace, "deployment", f"{NAME}-relay")
    assert dep is not None
    relay_url = dep["metadata"]["annotations"][ANNOTATION_URL]
    internal_url = dep["metadata"]["annotations"][ANNOTATION_INTERNAL_URL]
    # PagerDuty reaches the relay where the harness kubelet runs it.
    merge_patch(cluster, namespace, "pdi", NAME, {"spec": {"relay": {"publicUrl": relay_url}}})

    rest = httpx.Client(
        base_url=pd_url,
        headers={
            "Authorization": f"Token token={DEFAULT_API_TOKEN}",
            "Accept": "application/vnd.pagerduty+json;version=2",
        },
    )

    def subscribed() -> dict[str, Any] | None:
        subs = rest.get("/webhook_subscriptions").json()["webhook_subscriptions"]
        mine = [s for s in subs if s["delivery_method"]["url"] == relay_url + WEBHOOK_PATH]
        return mine[0] if mine else None

    subscription = wait_for(subscribed, 60, "a subscription delivering to the relay")
    wanted = {"incident.resolved"} | {
        "incident.responder.added" if k == "responderAdded" else "incident." + _snake(k)
        for k, on in MATRIX.items()
        if on
    }
    assert set(subscription["events"]) == wanted  # exactly what the matrix needs

    def probe(event_type: str) -> Callable[[], bool]:
        """A signed webhook about no incident of ours: accepted once the relay holds the
        subscription's secret and has ``event_type`` turned on (it then writes nothing)."""

        def accepted() -> bool:
            answer = signed_probe(cluster, namespace, f"{NAME}-pd-webhook", relay_url, event_type)
            return (
                answer is not None
                and answer.status_code == 200
                and answer.json()["status"] == "accepted"
            )

        return accepted

    wait_for(probe("incident.acknowledged"), 60, "the relay verifying the new subscription")

    pdi = get_json(cluster, namespace, "pdi", NAME)
    assert pdi is not None
    webhook = pdi["status"]["bigPandaWebhook"]
    token_ref = next(h for h in webhook["headers"] if h["name"] == "Authorization")["valueFrom"]
    token_secret = get_json(cluster, namespace, "secret", token_ref["name"])
    assert token_secret is not None
    token = base64.b64decode(token_secret["data"][token_ref["key"]]).decode()
    headers = {"Authorization": f"Bearer {token}"}
    headers.update({h["name"]: h["value"] for h in webhook["headers"] if "valueFrom" not in h})
    bp.add_webhook_target(relay_url + "/v1/bigpanda/webhook", headers)

    incident = bp.open_incident([{"status": "critical", "host": "db-1", "description": "disk"}])
    pd_incident = wait_for(lambda: pd.incident_by_key(incident.id), 60, "PagerDuty incident")
    pd_id = pd_incident.id

    def comments() -> list[str]:
        return [c.text.split("\n\n")[0] for c in bp.api_comments(incident.id)]

    def settled() -> None:
        assert pd.wait_webhooks_idle(30)
        wait_for(
            lambda: _metric(internal_url, "pagerbridge_relay_outbox_pending") == 0,
            60,
            "relay outbox drained",
        )

    pd.acknowledge(pd_id, by_email="jane@example.com")
    pd.unacknowledge(pd_id, by_email="jane@example.com")
    pd.reassign(pd_id, ["bob@example.com"], by_email="jane@example.com")
    pd.escalate(pd_id, ["carol@example.com"], by_email="jane@example.com")  # off: nothing
    pd.delegate(
        pd_id, "Payments on-call", by_email="bob@example.com", assignees=["dan@example.com"]
    )
    pd.set_priority(pd_id, "P2", by_email="dan@example.com")
    pd.publish_status_update(pd_id, "Rolled back", by_email="dan@example.com")
    pd.add_responder(pd_id, "erin@example.com", by_email="dan@example.com")
    expected = [
        "Acknowledged in PagerDuty by jane",
        "Unacknowledged in PagerDuty by jane",
        "Reassigned in PagerDuty to bob (escalation policy Default) by jane",
        "Delegated in PagerDuty to escalation policy Payments on-call, assigned to dan by bob",
        "Priority set to P2 in PagerDuty by dan",
        "Status update published in PagerDuty by dan: Rolled back",
        "Responder erin added in PagerDuty by dan",
    ]
    wait_for(lambda: len(comments()) >= len(expected), 60, "the lifecycle comments")
    settled()
    # The escalation was never subscribed to: PagerDuty did not even send it.
    escalations = [d for d in pd.webhook_deliveries if d.event_type == "incident.escalated"]
    assert escalations == []
    assert comments() == expected

    # The matrix changes: escalations on, priority updates off.
    merge_patch(
        cluster,
        namespace,
        "pdi",
        NAME,
        {"spec": {"sync": {"pagerDutyEvents": {"escalated": True, "priorityUpdated": False}}}},
    )
    wanted = (wanted | {"incident.escalated"}) - {"incident.priority_updated"}
    wait_for(
        lambda: (s := subscribed()) is not None and set(s["events"]) == wanted,
        60,
        "the live subscription updated to the new matrix",
    )
    assert subscribed()["id"] == subscription["id"]  # updated in place, not recreated
    wait_for(probe("incident.escalated"), 60, "the relay reloading the new matrix")
    pd.escalate(pd_id, ["carol@example.com"], by_email="bob@example.com")
    pd.set_priority(pd_id, "P1", by_email="bob@example.com")  # now off: nothing
    wait_for(lambda: len(comments()) > len(expected), 60, "the escalation comment")
    settled()
    assert comments() == [
        *expected,
        "Escalated in PagerDuty to carol (escalation policy Payments on-call) by bob",
    ]
    # Resolved in PagerDuty (sync.resolve), then reopened there: one more comment.
    pd.resolve(pd_id, by_email="bob@example.com")
    wait_for(lambda: not bp.incident(incident.id).active, 60, "BigPanda resolved")
    pd.reopen(pd_id, by_email="bob@example.com")
    wait_for(lambda: len(comments()) > len(expected) + 1, 60, "the reopen comment")
    settled()
    assert comments() == [
        *expected,
        "Escalated in PagerDuty to carol (escalation policy Payments on-call) by bob",
        "Reopened in PagerDuty by bob",
    ]
    events = cluster.kubectl("get", "events", "-n", namespace, "-o", "yaml").stdout
    assert "SubscriptionUpdated" in events


def _snake(camel: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in camel)


def _metric(internal_url: str, name: str) -> float:
    total = 0.0
    for line in httpx.get(internal_url + "/metrics", timeout=5).text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            head, _, value = line.rpartition(" ")
            if head.split("{")[0] == name:
                total += float(value)
    return total
