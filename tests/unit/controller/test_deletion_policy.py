"""spec.deletionPolicy (issue 29, item 1): Delete removes the external objects, Orphan
leaves them working in PagerDuty and BigPanda (the real simulators over HTTP) without
their ownership stamp, so no integration, not even a namesake, takes them over."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import pytest

from pagerbridge.api import DeletionPolicy, PagerDutyIntegrationSpec
from pagerbridge.api.contract import BIGPANDA_WEBHOOK_PATH, PAGERDUTY_WEBHOOK_PATH
from pagerbridge.clients.pagerduty_subscriptions import WebhookSubscription
from pagerbridge.controller import names as n
from pagerbridge.controller.external.bigpanda_integration import (
    OWNER_HEADER,
    unstamped_headers,
    unstamped_workflow,
)
from pagerbridge.controller.external.subscription import orphaned_description, ours
from pagerbridge.controller.ownership import OwnerStamp
from pagerbridge.controller.reconcile.cleanup import ExternalObject, dispose, release
from pagerbridge.controller.reconcile.reconciler import Reconciler
from pagerbridge.controller.render.children import Owner
from pagerbridge.controller.state.observed import integration_info
from pagerbridge_devkit.sandbox.bigpanda import DEFAULT_API_TOKEN as BP_API_KEY
from pagerbridge_devkit.sandbox.bigpanda import BigPandaSimulator
from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_API_TOKEN as PD_API_KEY
from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_SERVICE_ID, PagerDutySimulator

from .fake_kube import FakeKube, FakeWorld
from .objects import CLUSTER, NS, ROUTING_KEY, integration, secret, settings

PUBLIC = "https://relay.example.com"


# -- pure decisions ---------------------------------------------------------------------


def test_the_default_policy_is_delete() -> None:
    spec = PagerDutyIntegrationSpec.model_validate(
        {"pagerDuty": {"routingKey": {"name": "pd", "key": "k"}}}
    )
    assert spec.deletion_policy is DeletionPolicy.DELETE
    orphan = PagerDutyIntegrationSpec.model_validate(
        {"pagerDuty": {"routingKey": {"name": "pd", "key": "k"}}, "deletionPolicy": "Orphan"}
    )
    assert orphan.deletion_policy is DeletionPolicy.ORPHAN


def test_unstamped_headers_keep_everything_but_the_owner() -> None:
    owner = f'"{OWNER_HEADER}" : "c/uid-1"'
    assert unstamped_headers(owner) is None
    assert unstamped_headers(f'"x-bp-config-pdfield" : "pd_key", {owner}') == (
        '"x-bp-config-pdfield" : "pd_key"'
    )
    assert unstamped_headers(f'{owner}, "x-a" : "1", "x-b" : "2"') == '"x-a" : "1", "x-b" : "2"'
    assert unstamped_headers('"x-a" : "1"') == '"x-a" : "1"'
    assert unstamped_headers(None) is None


def test_an_unstamped_workflow_carries_the_token_bigpanda_sends_never_a_mask() -> None:
    workflow = {
        "config": {"base_url": "https://r/v1/bigpanda/webhook"},
        "events": [
            {
                "trigger": "incident#new",
                "enabled": True,
                "authorization": "********",
                "headers": f'"{OWNER_HEADER}" : "c/u"',
            }
        ],
    }
    out = unstamped_workflow(workflow, "tok")
    assert out["config"] == workflow["config"]
    assert out["events"] == [
        {"trigger": "incident#new", "enabled": True, "authorization": "Bearer tok"}
    ]


def test_an_orphaned_description_is_nobodys() -> None:
    owner = Owner(NS, "pay", "uid-1")
    text = orphaned_description(owner)
    assert OwnerStamp.find(text) is None
    found = WebhookSubscription.model_validate(
        {
            "id": "PSUB1",
            "description": text,
            "delivery_method": {"type": "http_delivery_method", "url": PUBLIC},
            "events": [],
            "filter": {"type": "service_reference", "id": DEFAULT_SERVICE_ID},
            "active": True,
        }
    )
    # not even the integration it came from, with its id recorded (the legacy rule)
    assert not ours(
        found,
        owner,
        OwnerStamp(CLUSTER, "uid-1"),
        recorded_id="PSUB1",
        service_id=DEFAULT_SERVICE_ID,
    )


async def test_dispose_calls_exactly_what_the_policy_says(kube: FakeKube) -> None:
    calls: list[str] = []

    async def delete() -> bool:
        calls.append("delete")
        return True

    async def orphan() -> str | None:
        calls.append("orphan")
        return "X1"

    involved = {"kind": "PagerDutyIntegration", "namespace": NS, "name": "pay", "uid": "u"}
    obj = ExternalObject("thing", delete, orphan)
    await dispose(kube, involved, obj, DeletionPolicy.DELETE)
    assert calls == ["delete"]
    assert kube.all("Event", NS) == []
    await dispose(kube, involved, obj, DeletionPolicy.ORPHAN)
    assert calls == ["delete", "orphan"]
    events = kube.all("Event", NS)
    assert [(e["reason"], e["type"]) for e in events] == [("Orphaned", "Normal")]
    assert "thing X1" in events[0]["message"]


# -- PagerDuty --------------------------------------------------------------------------


def subscribed(pd_url: str, name: str = "pay", **spec: Any) -> dict[str, Any]:
    return integration(
        name,
        pagerDuty={
            "routingKey": {"name": "pd", "key": "routing-key"},
            "apiToken": {"name": "pd", "key": "api"},
            "serviceId": DEFAULT_SERVICE_ID,
            "apiUrl": pd_url,
        },
        relay={"publicUrl": PUBLIC},
        **spec,
    )


def pd_subscription(pd_url: str, subscription_id: str) -> dict[str, Any]:
    response = httpx.get(
        f"{pd_url}/webhook_subscriptions/{subscription_id}",
        headers={"Authorization": f"Token token={PD_API_KEY}"},
    )
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["webhook_subscription"]
    return found


async def test_orphan_leaves_the_subscription_delivering_and_unstamped(
    kube: FakeKube, reconciler: Reconciler, pagerduty: tuple[PagerDutySimulator, str]
) -> None:
    pd, pd_url = pagerduty
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY, "api": PD_API_KEY}), NS)
    obj = kube.put(subscribed(pd_url, deletionPolicy="Orphan"), NS)
    await reconciler.reconcile_integration(NS, "pay")
    stored = FakeWorld(kube).secret(NS, "pay-pd-webhook")
    assert stored is not None
    sub_id = stored.annotations[n.ANNOTATION_SUBSCRIPTION_ID]
    before = pd_subscription(pd_url, sub_id)
    assert OwnerStamp.find(before["description"]) == OwnerStamp(CLUSTER, obj["metadata"]["uid"])

    info = integration_info(kube.find("PagerDutyIntegration", NS, "pay"))  # type: ignore[arg-type]
    involved = {"kind": "PagerDutyIntegration", "namespace": NS, "name": "pay", "uid": info.uid}
    await release(kube, info, involved, stored, 0, policy=settings().egress, cluster_id=CLUSTER)
    assert pd.webhook_subscription_ids() == [sub_id]  # not deleted
    after = pd_subscription(pd_url, sub_id)
    assert OwnerStamp.find(after["description"]) is None
    assert after["active"] is True
    assert after["delivery_method"]["url"] == PUBLIC + PAGERDUTY_WEBHOOK_PATH
    assert after["filter"] == before["filter"]
    assert after["events"] == before["events"]
    orphaned = [e for e in kube.all("Event", NS) if e["reason"] == "Orphaned"]
    assert len(orphaned) == 1
    assert sub_id in orphaned[0]["message"]

    # A new integration of the same name (another UID) does not take it over.
    kube.objects.clear()
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY, "api": PD_API_KEY}), NS)
    kube.put(subscribed(pd_url), NS)
    fresh = Reconciler(kube, settings(), FakeWorld(kube))
    await fresh.reconcile_integration(NS, "pay")
    mine = FakeWorld(kube).secret(NS, "pay-pd-webhook")
    assert mine is not None
    assert mine.annotations[n.ANNOTATION_SUBSCRIPTION_ID] != sub_id
    assert pd_subscription(pd_url, sub_id) == after  # untouched
    assert sorted(pd.webhook_subscription_ids()) == sorted(
        [sub_id, mine.annotations[n.ANNOTATION_SUBSCRIPTION_ID]]
    )


async def test_skip_cleanup_leaves_the_subscription_stamped_whatever_the_policy(
    kube: FakeKube, reconciler: Reconciler, pagerduty: tuple[PagerDutySimulator, str]
) -> None:
    pd, pd_url = pagerduty
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY, "api": PD_API_KEY}), NS)
    obj = subscribed(pd_url, deletionPolicy="Orphan")
    obj["metadata"]["annotations"] = {n.ANNOTATION_SKIP_CLEANUP: "true"}
    kube.put(obj, NS)
    await reconciler.reconcile_integration(NS, "pay")
    stored = FakeWorld(kube).secret(NS, "pay-pd-webhook")
    assert stored is not None
    sub_id = stored.annotations[n.ANNOTATION_SUBSCRIPTION_ID]
    info = integration_info(kube.find("PagerDutyIntegration", NS, "pay"))  # type: ignore[arg-type]
    calls = len(pd.requests.matching(path_prefix="/webhook_subscriptions"))
    await release(kube, info, {}, stored, 0, policy=settings().egress, cluster_id=CLUSTER)
    assert len(pd.requests.matching(path_prefix="/webhook_subscriptions")) == calls
    assert OwnerStamp.find(pd_subscription(pd_url, sub_id)["description"]) is not None


# -- BigPanda ---------------------------------------------------------------------------


def managed(bp_url: str, **spec: Any) -> dict[str, Any]:
    return integration(
        bigPanda={
            "apiUrl": bp_url,
            "apiToken": {"name": "pd", "key": "bp"},
            "webhook": {"mode": "Managed"},
        },
        relay={"publicUrl": PUBLIC},
        **spec,
    )


def inbound_token(kube: FakeKube) -> str:
    found = kube.find("Secret", NS, "pay-relay-token")
    assert found is not None
    return base64.b64decode(found["data"][n.TOKEN_KEY]).decode().strip()


@pytest.mark.parametrize("policy", ["Delete", "Orphan"])
async def test_the_bigpanda_integration_per_policy(
    kube: FakeKube,
    reconciler: Reconciler,
    bigpanda: tuple[BigPandaSimulator, str],
    policy: str,
) -> None:
    bp, bp_url = bigpanda
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY, "bp": BP_API_KEY}), NS)
    obj = kube.put(managed(bp_url, deletionPolicy=policy), NS)
    for _ in range(2):
        await reconciler.reconcile_integration(NS, "pay")
    ident = f"webhook_v2.{n.external_name(NS, 'pay', obj['metadata']['uid'])}"
    created = bp.integration(ident)
    assert created is not None
    before = created.workflow_config.model_dump(by_alias=True, exclude_unset=True)
    assert OWNER_HEADER in before["events"][0]["headers"]

    info = integration_info(kube.find("PagerDutyIntegration", NS, "pay"))  # type: ignore[arg-type]
    involved = {"kind": "PagerDutyIntegration", "namespace": NS, "name": "pay", "uid": info.uid}
    await release(kube, info, involved, None, 0, policy=settings().egress, cluster_id=CLUSTER)
    left = bp.integration(ident)
    if policy == "Delete":
        assert left is None
        assert [e for e in kube.all("Event", NS) if e["reason"] == "Orphaned"] == []
        return
    assert left is not None
    after = left.workflow_config.model_dump(by_alias=True, exclude_unset=True)
    assert after["config"]["base_url"] == PUBLIC + BIGPANDA_WEBHOOK_PATH
    assert [e["trigger"] for e in after["events"]] == [e["trigger"] for e in before["events"]]
    for event in after["events"]:
        assert OWNER_HEADER not in (event.get("headers") or "")
        # still authorised with the token BigPanda sent (stored unmasked in the simulator)
        assert event["authorization"] == f"Bearer {inbound_token(kube)}"
    orphaned = [e for e in kube.all("Event", NS) if e["reason"] == "Orphaned"]
    assert len(orphaned) == 1
    assert ident in orphaned[0]["message"]


async def test_a_reconcile_waits_while_the_finalizer_holds_the_integration(
    kube: FakeKube, reconciler: Reconciler, pagerduty: tuple[PagerDutySimulator, str]
) -> None:
    """The finalizer's cleanup and the reconciles of one integration take turns, so a
    reconcile cannot write an external object back (or re-stamp an orphaned one)."""
    pd, pd_url = pagerduty
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY, "api": PD_API_KEY}), NS)
    kube.put(subscribed(pd_url), NS)
    lock = reconciler.exclusive(NS, "pay")
    assert reconciler.exclusive(NS, "pay") is lock
    assert reconciler.exclusive(NS, "other") is not lock
    async with lock:  # what the finalizer does around its cleanup
        task = asyncio.create_task(reconciler.reconcile_integration(NS, "pay"))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not task.done()
        assert kube.writes == []
        assert pd.webhook_subscription_ids() == []
    await task
    assert len(pd.webhook_subscription_ids()) == 1
