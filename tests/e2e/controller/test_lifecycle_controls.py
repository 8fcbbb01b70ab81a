"""Lifecycle controls (issue 29, items 1-3) against the real API server, the real operator
process and the simulators: deletionPolicy Orphan leaves the external objects delivering
and unstamped (Delete deletes them), a paused integration writes nothing until it is
unpaused, and adoption by id takes a hand-made subscription over with a new signing
secret the relay verifies (the old one refused), refusing another owner's."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from pagerbridge.api.contract import BIGPANDA_WEBHOOK_PATH, PAGERDUTY_WEBHOOK_PATH
from pagerbridge.controller.external.bigpanda_integration import OWNER_HEADER
from pagerbridge.controller.ownership import OwnerStamp
from pagerbridge_devkit.localcluster.kubelet import ANNOTATION_URL, HarnessKubelet
from pagerbridge_devkit.sandbox.bigpanda import DEFAULT_API_TOKEN as BP_API_KEY
from pagerbridge_devkit.sandbox.bigpanda import BigPandaSimulator
from pagerbridge_devkit.sandbox.pagerduty import (
    DEFAULT_API_TOKEN,
    DEFAULT_ROUTING_KEY,
    DEFAULT_SERVICE_ID,
    PagerDutySimulator,
)
from pagerbridge_devkit.sandbox.server import BackgroundServer

from ..conftest import Cluster
from .conftest import OperatorProcess, condition, get_json, merge_patch, wait_for

pytestmark = pytest.mark.e2e

INTEGRATIONS = "/resources/v2.1/integrations"


@dataclass
class Receiver:
    """Where an orphaned subscription and BigPanda integration keep delivering: records
    every request (path, headers, body)."""

    url: str = ""
    seen: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def at(self, path: str) -> list[tuple[dict[str, str], bytes]]:
        with self.lock:
            return [(h, b) for p, h, b in self.seen if p == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()

    async def record(request: Request) -> JSONResponse:
        body = await request.body()
        with found.lock:
            found.seen.append((request.url.path, dict(request.headers), body))
        return JSONResponse({"ok": True}, status_code=202)

    app = Starlette(routes=[Route("/{path:path}", record, methods=["POST", "PUT", "PATCH"])])
    with BackgroundServer(app) as server:
        found.url = server.url
        yield found


def keys() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "keys"},
        "stringData": {
            "routing-key": DEFAULT_ROUTING_KEY,
            "pd-api": DEFAULT_API_TOKEN,
            "bp-api": BP_API_KEY,
        },
    }


def pdi(name: str, pd_url: str, public_url: str | None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "pagerDuty": {
            "routingKey": {"name": "keys", "key": "routing-key"},
            "eventsUrl": pd_url,
            "apiUrl": pd_url,
        },
        "sync": {"notes": False},
        # Ephemeral: the local control plane runs no pvc-protection controller.
        "relay": {"storage": "Ephemeral"},
    }
    if public_url is not None:
        body["pagerDuty"] |= {
            "apiToken": {"name": "keys", "key": "pd-api"},
            "serviceId": DEFAULT_SERVICE_ID,
        }
        body["bigPanda"] = {"apiToken": {"name": "keys", "key": "bp-api"}, "environmentId": "env1"}
        body["relay"]["publicUrl"] = public_url
    for key, value in spec.items():
        if isinstance(value, dict) and isinstance(body.get(key), dict):
            body[key] = {**body[key], **value}
        else:
            body[key] = value
    return {
        "apiVersion": "pagerbridge.io/v1alpha1",
        "kind": "PagerDutyIntegration",
        "metadata": {"name": name},
        "spec": body,
    }


def apply(cluster: Cluster, namespace: str, *docs: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(docs))


def status_of(cluster: Cluster, namespace: str, name: str, type_: str) -> dict[str, Any]:
    return condition(get_json(cluster, namespace, "pdi", name), type_)


def pd_subscription(pd_url: str, subscription_id: str) -> dict[str, Any] | None:
    response = httpx.get(
        f"{pd_url}/webhook_subscriptions/{subscription_id}",
        headers={"Authorization": f"Token token={DEFAULT_API_TOKEN}"},
    )
    if response.status_code == 404:
        return None
    found: dict[str, Any] = response.json()["webhook_subscription"]
    return found


def secret_value(cluster: Cluster, namespace: str, name: str, key: str) -> str:
    data = get_json(cluster, namespace, "secret", name)["data"]
    return base64.b64decode(data[key]).decode()


def signature(secret: str, body: bytes) -> str:
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def resolve_in_pagerduty(pd: PagerDutySimulator, pd_url: str, dedup_key: str) -> None:
    """An incident on the default service, resolved by a person: PagerDuty delivers
    incident.resolved (an event every subscription of ours carries: sync.resolve)."""
    response = httpx.post(
        f"{pd_url}/v2/enqueue",
        json={
            "routing_key": DEFAULT_ROUTING_KEY,
            "event_action": "trigger",
            "dedup_key": dedup_key,
            "payload": {"summary": "disk full", "source": "db-1", "severity": "critical"},
        },
    )
    assert response.status_code == 202, response.text
    incident = wait_for(lambda: pd.incident_by_key(dedup_key), 10, "the incident")
    pd.resolve(incident.id)


# -- deletionPolicy ----------------------------------------------------------------------


def test_orphan_leaves_the_external_objects_delivering_and_unstamped_delete_deletes(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    pagerduty: tuple[PagerDutySimulator, str],
    bigpanda: tuple[BigPandaSimulator, str],
    receiver: Receiver,
) -> None:
    pd, pd_url = pagerduty
    bp, bp_url = bigpanda
    managed = {"apiUrl": bp_url, "webhook": {"mode": "Managed"}}
    keep = pdi("keep", pd_url, f"{receiver.url}/keep", deletionPolicy="Orphan", bigPanda=managed)
    drop = pdi("drop", pd_url, f"{receiver.url}/drop", bigPanda=managed)
    apply(cluster, namespace, keys(), keep, drop)
    for name in ("keep", "drop"):
        for type_ in ("SubscriptionReady", "BigPandaWebhookConfigured"):
            wait_for(
                lambda n=name, t=type_: status_of(cluster, namespace, n, t).get("status") == "True",
                90,
                f"{name} {type_}",
            )

    def external(name: str) -> tuple[str, str]:
        secret = get_json(cluster, namespace, "secret", f"{name}-pd-webhook")
        status = get_json(cluster, namespace, "pdi", name)["status"]
        subscription_id = secret["metadata"]["annotations"]["pagerbridge.io/subscription-id"]
        return subscription_id, status["bigPandaWebhook"]["integrationId"]

    keep_sub, keep_bp = external("keep")
    drop_sub, drop_bp = external("drop")
    keep_secret = secret_value(cluster, namespace, "keep-pd-webhook", "secret")
    keep_token = secret_value(cluster, namespace, "keep-relay-token", "token").strip()
    keep_uid = get_json(cluster, namespace, "pdi", "keep")["metadata"]["uid"]
    before = pd_subscription(pd_url, keep_sub)
    assert before is not None
    assert OwnerStamp.find(before["description"]) is not None

    cluster.kubectl("delete", "-n", namespace, "pdi", "keep", "drop", "--wait=true", timeout=120)

    # Delete: both gone.
    assert pd_subscription(pd_url, drop_sub) is None
    assert bp.integration(drop_bp) is None
    # Orphan: both there, unstamped, as they were otherwise.
    after = pd_subscription(pd_url, keep_sub)
    assert after is not None
    assert OwnerStamp.find(after["description"]) is None
    assert after["active"] is True
    assert after["delivery_method"]["url"] == f"{receiver.url}/keep{PAGERDUTY_WEBHOOK_PATH}"
    assert (after["filter"], after["events"]) == (before["filter"], before["events"])
    left = bp.integration(keep_bp)
    assert left is not None
    workflow = left.workflow_config.model_dump(by_alias=True, exclude_unset=True)
    assert workflow["config"]["base_url"] == f"{receiver.url}/keep{BIGPANDA_WEBHOOK_PATH}"
    assert OWNER_HEADER not in json.dumps(workflow)
    assert keep_uid not in json.dumps(workflow)
    events = json.loads(cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout)[
        "items"
    ]
    orphaned = [e["message"] for e in events if e["reason"] == "Orphaned"]
    assert len(orphaned) == 2
    assert any(keep_sub in m for m in orphaned)
    assert any(keep_bp in m for m in orphaned)

    # Still working: PagerDuty delivers, signed with the secret it had; BigPanda shares,
    # with the token it sent.
    resolve_in_pagerduty(pd, pd_url, "orphan-check-1")
    try:
        hooks = wait_for(
            lambda: receiver.at(f"/keep{PAGERDUTY_WEBHOOK_PATH}"), 30, "PagerDuty delivering"
        )
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}; deliveries: {pd.webhook_deliveries}; subscriptions: "
            f"{pd.webhook_subscription_ids()}; received: {[p for p, _, _ in receiver.seen]}"
        ) from None
    headers, body = hooks[0]
    assert headers["x-pagerduty-signature"] == signature(keep_secret, body)
    assert receiver.at(f"/drop{PAGERDUTY_WEBHOOK_PATH}") == []
    bp.open_incident([{"status": "critical", "host": "web-1", "description": "after orphan"}])
    shared = wait_for(lambda: receiver.at(f"/keep{BIGPANDA_WEBHOOK_PATH}"), 30, "BigPanda sharing")
    assert shared[0][0]["authorization"] == f"Bearer {keep_token}"
    assert receiver.at(f"/drop{BIGPANDA_WEBHOOK_PATH}") == []


# -- pause ------------------------------------------------------------------------------


CHILDREN = (
    ("deployment", "p-relay"),
    ("service", "p-relay"),
    ("configmap", "p-relay"),
    ("secret", "p-relay-token"),
    ("secret", "p-relay-admin"),
    ("secret", "p-pd-webhook"),
)


def versions(cluster: Cluster, namespace: str) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for kind, name in CHILDREN:
        body = get_json(cluster, namespace, kind, name)
        found[f"{kind}/{name}"] = body["metadata"]["resourceVersion"] if body else None
    return found


def resyncs(operator: OperatorProcess) -> float:
    text = httpx.get(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith("pagerbridge_operator_resyncs_total"):
            return float(line.split()[-1])
    return 0.0


def test_a_paused_integration_writes_nothing_and_unpausing_repairs(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    pagerduty: tuple[PagerDutySimulator, str],
    bigpanda: tuple[BigPandaSimulator, str],
    receiver: Receiver,
) -> None:
    pd, pd_url = pagerduty
    bp, bp_url = bigpanda
    managed = {"apiUrl": bp_url, "webhook": {"mode": "Managed"}}
    apply(cluster, namespace, keys(), pdi("p", pd_url, f"{receiver.url}/p", bigPanda=managed))
    for type_ in ("SubscriptionReady", "BigPandaWebhookConfigured"):
        wait_for(
            lambda t=type_: status_of(cluster, namespace, "p", t).get("status") == "True",
            90,
            type_,
        )
    wait_for(lambda: all(versions(cluster, namespace).values()), 60, "every child")
    cluster.kubectl("annotate", "-n", namespace, "pdi", "p", "pagerbridge.io/paused=true")
    paused = wait_for(
        lambda: (
            status_of(cluster, namespace, "p", "Paused").get("status") == "True"
            and status_of(cluster, namespace, "p", "Paused")
        ),
        30,
        "Paused",
    )
    assert paused["reason"] == "ReconcilePaused"
    body = get_json(cluster, namespace, "pdi", "p")
    frozen_status = body["metadata"]["resourceVersion"]
    before = versions(cluster, namespace)
    calls = len(pd.requests.matching(path_prefix="/webhook_subscriptions"))
    bp_calls = len(bp.requests.matching(path_prefix=INTEGRATIONS))
    config = get_json(cluster, namespace, "configmap", "p-relay")["data"]

    # While paused: a spec change, a deleted child, a token rotation request, several
    # resyncs and verifications.
    merge_patch(cluster, namespace, "pdi", "p", {"spec": {"severityMap": {"critical": "error"}}})
    cluster.kubectl("delete", "-n", namespace, "configmap", "p-relay", "--wait=true")
    cluster.kubectl("annotate", "-n", namespace, "pdi", "p", "pagerbridge.io/rotate-token=r1")
    patched = get_json(cluster, namespace, "pdi", "p")["metadata"]["resourceVersion"]
    start = resyncs(operator)
    wait_for(lambda: resyncs(operator) >= start + 3, 60, "three resyncs while paused")
    now = versions(cluster, namespace)
    assert now.pop("configmap/p-relay") is None  # stays absent
    assert now == {k: v for k, v in before.items() if k != "configmap/p-relay"}
    assert len(pd.requests.matching(path_prefix="/webhook_subscriptions")) == calls
    assert len(bp.requests.matching(path_prefix=INTEGRATIONS)) == bp_calls  # not even read
    body = get_json(cluster, namespace, "pdi", "p")
    assert body["status"]["observedGeneration"] == body["metadata"]["generation"] - 1
    # The user's spec patch was the last write to the integration: no status write since.
    assert int(patched) > int(frozen_status)
    assert body["metadata"]["resourceVersion"] == patched
    ready = condition(body, "Ready")
    assert ready["message"].startswith("Paused since ")
    assert condition(body, "Paused")["lastTransitionTime"] == paused["lastTransitionTime"]

    cluster.kubectl("annotate", "-n", namespace, "pdi", "p", "pagerbridge.io/paused-")
    repaired = wait_for(
        lambda: get_json(cluster, namespace, "configmap", "p-relay"), 30, "ConfigMap recreated"
    )
    assert repaired["data"] != config
    relay_config = json.loads(repaired["data"]["relay.json"])
    assert relay_config["severityMap"]["critical"] == "error"  # the change made while paused

    def caught_up() -> bool:
        body = get_json(cluster, namespace, "pdi", "p")
        return (
            body["status"].get("observedGeneration") == body["metadata"]["generation"]
            and condition(body, "Paused") == {}
        )

    wait_for(caught_up, 30, "status caught up, Paused gone")
    # The rotation requested while paused starts now (the token Secret: old and new).
    wait_for(
        lambda: (
            get_json(cluster, namespace, "secret", "p-relay-token")["metadata"]
            .get("annotations", {})
            .get("pagerbridge.io/rotate-token")
            == "r1"
        ),
        30,
        "the rotation under way",
    )


def test_deleting_a_paused_integration_waits_for_the_pause_to_end(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    pagerduty: tuple[PagerDutySimulator, str],
    receiver: Receiver,
) -> None:
    pd, pd_url = pagerduty
    apply(cluster, namespace, keys(), pdi("held", pd_url, f"{receiver.url}/held"))
    wait_for(
        lambda: status_of(cluster, namespace, "held", "SubscriptionReady").get("status") == "True",
        90,
        "subscribed",
    )
    (subscription_id,) = pd.webhook_subscription_ids()
    cluster.kubectl("annotate", "-n", namespace, "pdi", "held", "pagerbridge.io/paused=true")
    wait_for(
        lambda: status_of(cluster, namespace, "held", "Paused").get("status") == "True",
        30,
        "Paused",
    )
    cluster.kubectl("delete", "-n", namespace, "pdi", "held", "--wait=false")

    def reasons() -> list[str]:
        items = json.loads(cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout)
        return [str(e["reason"]) for e in items["items"]]

    wait_for(lambda: "CleanupPaused" in reasons(), 60, "the CleanupPaused Event")
    body = get_json(cluster, namespace, "pdi", "held")
    assert body is not None
    assert body["metadata"].get("deletionTimestamp")
    assert pd.webhook_subscription_ids() == [subscription_id]
    assert not pd.requests.matching("DELETE", "/webhook_subscriptions")

    cluster.kubectl("annotate", "-n", namespace, "pdi", "held", "pagerbridge.io/paused-")
    # The finalizer re-checks every PAUSED_CLEANUP_RECHECK (15 s) while paused.
    wait_for(lambda: get_json(cluster, namespace, "pdi", "held") is None, 60, "deleted")
    assert pd.webhook_subscription_ids() == []  # per deletionPolicy Delete


# -- adoption ---------------------------------------------------------------------------


def ping(secret: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "event": {
                "id": f"01PING{int(time.time() * 1000)}",
                "event_type": "pagey.ping",
                "resource_type": "pagey",
                "occurred_at": datetime.now(UTC).isoformat(),
                "data": {"message": "Hello from your friend Pagey!", "type": "ping"},
            }
        }
    ).encode()
    return body, {
        "Content-Type": "application/json",
        "X-PagerDuty-Signature": signature(secret, body),
    }


def test_adoption_by_id_replaces_the_secret_and_refuses_another_owners(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    kubelet: HarnessKubelet,
    pagerduty: tuple[PagerDutySimulator, str],
) -> None:
    pd, pd_url = pagerduty
    apply(cluster, namespace, keys(), pdi("mine", pd_url, None))
    relay_url = wait_for(
        lambda: (
            (get_json(cluster, namespace, "deployment", "mine-relay") or {})
            .get("metadata", {})
            .get("annotations", {})
            .get(ANNOTATION_URL)
        ),
        90,
        "the relay running",
    )
    hook = relay_url + PAGERDUTY_WEBHOOK_PATH
    hand_made, old_secret = pd.create_subscription(
        hook, DEFAULT_SERVICE_ID, description="made by hand before PagerBridge"
    )
    theirs, _ = pd.create_subscription(
        hook,
        DEFAULT_SERVICE_ID,
        description=f"PagerBridge x/y ({OwnerStamp('other-cluster', 'their-uid').text})",
    )
    adopted = pdi("mine", pd_url, relay_url)
    adopted["spec"]["pagerDuty"]["webhookSubscription"] = {"adopt": {"subscriptionId": hand_made}}
    other = pdi("other", pd_url, relay_url)
    other["spec"]["pagerDuty"]["webhookSubscription"] = {"adopt": {"subscriptionId": theirs}}
    apply(cluster, namespace, adopted, other)

    wait_for(
        lambda: status_of(cluster, namespace, "mine", "SubscriptionReady").get("status") == "True",
        90,
        "mine subscribed",
    )
    refused = wait_for(
        lambda: (
            status_of(cluster, namespace, "other", "Ready").get("reason") == "NameConflict"
            and status_of(cluster, namespace, "other", "Ready")
        ),
        90,
        "other refused",
    )
    assert refused["status"] == "False"
    assert theirs in status_of(cluster, namespace, "other", "SubscriptionReady")["message"]
    for method in ("PUT", "DELETE"):
        assert not pd.requests.matching(method, f"/webhook_subscriptions/{theirs}")

    secret = get_json(cluster, namespace, "secret", "mine-pd-webhook")
    new_id = secret["metadata"]["annotations"]["pagerbridge.io/subscription-id"]
    assert secret["metadata"]["annotations"]["pagerbridge.io/adopted-from"] == hand_made
    assert pd_subscription(pd_url, hand_made) is None  # replaced
    new = pd_subscription(pd_url, new_id)
    assert new is not None
    assert new["delivery_method"]["url"] == hook
    mine_uid = get_json(cluster, namespace, "pdi", "mine")["metadata"]["uid"]
    assert OwnerStamp.find(new["description"]).uid == mine_uid  # type: ignore[union-attr]
    new_secret = base64.b64decode(secret["data"]["secret"]).decode()
    assert new_secret != old_secret

    # The relay verifies the new secret (once its mounted config has it) and refuses the old.
    def answer(with_secret: str) -> int:
        body, headers = ping(with_secret)
        try:
            return httpx.post(hook, content=body, headers=headers, timeout=10).status_code
        except httpx.TransportError:  # the relay restarting with its new config
            return 0

    wait_for(lambda: answer(new_secret) == 200, 60, "the relay verifying the new secret")
    # An answer, whatever it is (the relay may be rolling once more): never a 2xx.
    assert wait_for(lambda: answer(old_secret), 60, "an answer to the old secret") == 401
    # And PagerDuty's own deliveries through the new subscription are accepted.
    resolve_in_pagerduty(pd, pd_url, "adopted-1")
    wait_for(
        lambda: any(d.subscription_id == new_id and d.status == 200 for d in pd.webhook_deliveries),
        30,
        "a delivery accepted by the relay",
    )


# -- the API: kubectl explain and the API server's rules ---------------------------------


@pytest.mark.parametrize(
    ("field", "words"),
    [
        ("pdi.spec.deletionPolicy", "Orphan: they are left in place"),
        ("pdi.spec.pagerDuty.webhookSubscription.adopt", "Take over an existing subscription"),
        (
            "pdi.spec.pagerDuty.webhookSubscription.adopt.subscriptionId",
            "has no call to rotate it",
        ),
        ("pdi.spec.bigPanda.webhook.adopt.webhookIntegrationId", "webhook_v2.<name>"),
        ("pdi.status.conditions.type", "Paused (set only while the annotation"),
    ],
)
def test_kubectl_explain_describes_the_lifecycle_fields(
    cluster: Cluster, field: str, words: str
) -> None:
    result = wait_for(
        lambda: (r := cluster.kubectl("explain", field, check=False)).returncode == 0 and r,
        30,
        f"kubectl explain {field}",
    )
    assert words in " ".join(result.stdout.split())


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"bigPanda": {"webhook": {"adopt": {"webhookIntegrationId": "webhook_v2.x"}}}},
            "webhook.adopt needs webhook.mode Managed",
        ),
        (
            {
                "bigPanda": {
                    "apiToken": {"name": "keys", "key": "bp-api"},
                    "webhook": {
                        "mode": "Managed",
                        "integrationName": "x",
                        "adopt": {"webhookIntegrationId": "webhook_v2.y"},
                    },
                },
                "relay": {"publicUrl": "https://relay.example.com"},
            },
            "leave webhook.integrationName unset",
        ),
        (
            {"pagerDuty": {"webhookSubscription": {"adopt": {"subscriptionId": "PABC"}}}},
            "pagerDuty.webhookSubscription.adopt needs pagerDuty.serviceId",
        ),
        ({"deletionPolicy": "Retain"}, 'Unsupported value: "Retain"'),
    ],
)
def test_the_api_server_refuses_inconsistent_lifecycle_fields(
    cluster: Cluster, namespace: str, spec: dict[str, Any], message: str
) -> None:
    manifest = pdi("bad", "http://127.0.0.1:9", None)
    for key, value in spec.items():
        if isinstance(value, dict) and isinstance(manifest["spec"].get(key), dict):
            manifest["spec"][key] = {**manifest["spec"][key], **value}
        else:
            manifest["spec"][key] = value
    result = cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest), check=False
    )
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
