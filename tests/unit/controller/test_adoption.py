"""Explicit adoption by id (issue 29, item 3) against the real simulators over HTTP: an
unstamped PagerDuty subscription or BigPanda integration named by ``adopt`` is taken over,
another owner's is refused (NameConflict) and left untouched, a missing id is
AdoptionTargetNotFound. Never-adopt stays the default (test_never_adopt)."""

from __future__ import annotations

import base64
from typing import Any

import httpx

from pagerbridge.api import PagerDutyIntegrationSpec
from pagerbridge.api.contract import BIGPANDA_WEBHOOK_PATH, PAGERDUTY_WEBHOOK_PATH
from pagerbridge.controller import names as n
from pagerbridge.controller.external.bigpanda_integration import OWNER_HEADER
from pagerbridge.controller.external.subscription import ANNOTATION_ADOPTED_FROM, adoption_pending
from pagerbridge.controller.ownership import OwnerStamp
from pagerbridge.controller.reconcile.cleanup import release
from pagerbridge.controller.reconcile.reconciler import Reconciler
from pagerbridge.controller.render import conditions as c
from pagerbridge.controller.state.observed import SecretState, integration_info
from pagerbridge_devkit.sandbox.bigpanda import DEFAULT_API_TOKEN as BP_API_KEY
from pagerbridge_devkit.sandbox.bigpanda import BigPandaSimulator
from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_API_TOKEN as PD_API_KEY
from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_SERVICE_ID, PagerDutySimulator

from .fake_kube import FakeKube
from .objects import CLUSTER, NS, ROUTING_KEY, condition, integration, ready_relay, secret, settings

PUBLIC = "https://relay.example.com"
INTEGRATIONS = "/resources/v2.1/integrations"


# -- pure decisions ---------------------------------------------------------------------


def spec_adopting(subscription_id: str | None) -> PagerDutyIntegrationSpec:
    pager_duty: dict[str, Any] = {"routingKey": {"name": "pd", "key": "k"}}
    if subscription_id is not None:
        pager_duty["webhookSubscription"] = {"adopt": {"subscriptionId": subscription_id}}
    return PagerDutyIntegrationSpec.model_validate({"pagerDuty": pager_duty})


def stored(**annotations: str) -> SecretState:
    return SecretState(NS, "pay-pd-webhook", "uid-s", "uid-1", annotations=annotations)


def test_adoption_is_pending_only_for_an_id_neither_ours_nor_adopted() -> None:
    assert adoption_pending(spec_adopting(None), None) is None  # never adopt by default
    assert adoption_pending(spec_adopting("POLD"), None) == "POLD"
    recorded = stored(**{n.ANNOTATION_SUBSCRIPTION_ID: "PNEW", ANNOTATION_ADOPTED_FROM: "POLD"})
    assert adoption_pending(spec_adopting("POLD"), recorded) is None  # done
    assert adoption_pending(spec_adopting("PNEW"), recorded) is None  # ours already
    assert adoption_pending(spec_adopting("POTHER"), recorded) == "POTHER"  # another one


def test_the_bigpanda_adopt_id_names_the_managed_integration() -> None:
    spec = PagerDutyIntegrationSpec.model_validate(
        {
            "pagerDuty": {"routingKey": {"name": "pd", "key": "k"}},
            "bigPanda": {"webhook": {"adopt": {"webhookIntegrationId": "webhook_v2.hand.made"}}},
        }
    )
    assert spec.big_panda.webhook.adopted_name == "hand.made"


# -- PagerDuty --------------------------------------------------------------------------


def subscribed(pd_url: str, adopt: str) -> dict[str, Any]:
    return integration(
        pagerDuty={
            "routingKey": {"name": "pd", "key": "routing-key"},
            "apiToken": {"name": "pd", "key": "api"},
            "serviceId": DEFAULT_SERVICE_ID,
            "apiUrl": pd_url,
            "webhookSubscription": {"adopt": {"subscriptionId": adopt}},
        },
        relay={"publicUrl": PUBLIC},
    )


def writes_to(pd: PagerDutySimulator, subscription_id: str) -> list[str]:
    return [
        r.method
        for r in pd.requests.matching(path_prefix=f"/webhook_subscriptions/{subscription_id}")
        if r.method in ("PUT", "DELETE")
    ]


def description_of(pd_url: str, subscription_id: str) -> str:
    response = httpx.get(
        f"{pd_url}/webhook_subscriptions/{subscription_id}",
        headers={"Authorization": f"Token token={PD_API_KEY}"},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["webhook_subscription"]["description"])


async def test_a_hand_made_subscription_is_adopted_and_its_secret_replaced(
    kube: FakeKube, reconciler: Reconciler, pagerduty: tuple[PagerDutySimulator, str]
) -> None:
    pd, pd_url = pagerduty
    url = PUBLIC + PAGERDUTY_WEBHOOK_PATH
    old, old_secret = pd.create_subscription(
        "https://old.example.com/hook", DEFAULT_SERVICE_ID, description="made by hand"
    )
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY, "api": PD_API_KEY}), NS)
    obj = kube.put(subscribed(pd_url, old), NS)
    await reconciler.reconcile_integration(NS, "pay")
    ready_relay(kube)  # the status is written once the relay is up (or after its grace)
    await reconciler.reconcile_integration(NS, "pay")
    mine = kube.find("Secret", NS, "pay-pd-webhook")
    assert mine is not None
    annotations = mine["metadata"]["annotations"]
    new = annotations[n.ANNOTATION_SUBSCRIPTION_ID]
    assert new != old
    assert annotations[ANNOTATION_ADOPTED_FROM] == old
    new_secret = base64.b64decode(mine["data"][n.WEBHOOK_SECRET_KEY]).decode()
    assert new_secret
    assert new_secret != old_secret
    assert pd.webhook_subscription_ids() == [new]  # the adopted one replaced
    assert writes_to(pd, old) == ["PUT", "DELETE"]  # stamped first, then deleted
    assert OwnerStamp.find(description_of(pd_url, new)) == OwnerStamp(
        CLUSTER, obj["metadata"]["uid"]
    )
    body = kube.find("PagerDutyIntegration", NS, "pay")
    assert condition(body, c.SUBSCRIPTION_READY)["status"] == c.TRUE
    assert url in condition(body, c.SUBSCRIPTION_READY)["message"]
    adopted = [e for e in kube.all("Event", NS) if e["reason"] == "SubscriptionAdopted"]
    assert len(adopted) == 1
    assert old in adopted[0]["message"]
    assert new in adopted[0]["message"]
    assert new_secret not in adopted[0]["message"]

    # Verified later, with adopt still in the spec: nothing adopted or created again.
    posts = len(pd.requests.matching("POST", "/webhook_subscriptions"))
    reconciler.integration_changed(NS, "pay", verify=True)
    await reconciler.reconcile_integration(NS, "pay")
    assert len(pd.requests.matching("POST", "/webhook_subscriptions")) == posts
    assert pd.webhook_subscription_ids() == [new]


async def test_another_owners_subscription_is_refused_and_left_untouched(
    kube: FakeKube, reconciler: Reconciler, pagerduty: tuple[PagerDutySimulator, str]
) -> None:
    pd, pd_url = pagerduty
    theirs_stamp = OwnerStamp("other-cluster", "their-uid")
    theirs, _ = pd.create_subscription(
        PUBLIC + PAGERDUTY_WEBHOOK_PATH,
        DEFAULT_SERVICE_ID,
        description=f"PagerBridge x/y ({theirs_stamp.text})",
    )
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY, "api": PD_API_KEY}), NS)
    kube.put(subscribed(pd_url, theirs), NS)
    await reconciler.reconcile_integration(NS, "pay")
    body = kube.find("PagerDutyIntegration", NS, "pay")
    found = condition(body, c.SUBSCRIPTION_READY)
    assert (found["status"], found["reason"]) == (c.FALSE, "NameConflict")
    assert theirs in found["message"]
    assert (condition(body)["status"], condition(body)["reason"]) == (c.FALSE, "NameConflict")
    assert writes_to(pd, theirs) == []
    assert pd.webhook_subscription_ids() == [theirs]
    assert not pd.requests.matching("POST", "/webhook_subscriptions")
    assert OwnerStamp.find(description_of(pd_url, theirs)) == theirs_stamp


async def test_a_missing_subscription_id_is_adoption_target_not_found(
    kube: FakeKube, reconciler: Reconciler, pagerduty: tuple[PagerDutySimulator, str]
) -> None:
    pd, pd_url = pagerduty
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY, "api": PD_API_KEY}), NS)
    kube.put(subscribed(pd_url, "PNOSUCH"), NS)
    await reconciler.reconcile_integration(NS, "pay")
    found = condition(kube.find("PagerDutyIntegration", NS, "pay"), c.SUBSCRIPTION_READY)
    assert (found["status"], found["reason"]) == (c.FALSE, "AdoptionTargetNotFound")
    assert "PNOSUCH" in found["message"]
    assert pd.webhook_subscription_ids() == []  # nothing made meanwhile


# -- BigPanda ---------------------------------------------------------------------------


def managed(bp_url: str, adopt: str) -> dict[str, Any]:
    return integration(
        bigPanda={
            "apiUrl": bp_url,
            "apiToken": {"name": "pd", "key": "bp"},
            "webhook": {"mode": "Managed", "adopt": {"webhookIntegrationId": adopt}},
        },
        relay={"publicUrl": PUBLIC},
    )


def put_bigpanda(bp_url: str, name: str, headers: str | None = None) -> None:
    event: dict[str, Any] = {
        "trigger": "incident#new",
        "enabled": True,
        "method": "POST",
        "authorization": "Bearer hand-made",
    }
    if headers:
        event["headers"] = headers
    body = {
        "name": name,
        "parent_system_id": "webhook_v2",
        "workflow_config": {"config": {"base_url": "https://old.example.com"}, "events": [event]},
    }
    response = httpx.post(
        f"{bp_url}{INTEGRATIONS}", json=body, headers={"Authorization": f"Bearer {BP_API_KEY}"}
    )
    assert response.status_code == 201, response.text


def touched(bp: BigPandaSimulator, ident: str) -> list[str]:
    return [
        r.method
        for r in bp.requests.matching(path_prefix=f"{INTEGRATIONS}/{ident}")
        if r.method in ("PATCH", "DELETE")
    ]


async def test_a_hand_made_bigpanda_integration_is_adopted_under_its_name(
    kube: FakeKube, reconciler: Reconciler, bigpanda: tuple[BigPandaSimulator, str]
) -> None:
    bp, bp_url = bigpanda
    put_bigpanda(bp_url, "hand-made")
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY, "bp": BP_API_KEY}), NS)
    obj = kube.put(managed(bp_url, "webhook_v2.hand-made"), NS)
    for _ in range(2):
        await reconciler.reconcile_integration(NS, "pay")
    ready_relay(kube)
    await reconciler.reconcile_integration(NS, "pay")
    stored_ = bp.integration("webhook_v2.hand-made")
    assert stored_ is not None
    workflow = stored_.workflow_config.model_dump(by_alias=True, exclude_unset=True)
    assert workflow["config"]["base_url"] == PUBLIC + BIGPANDA_WEBHOOK_PATH
    uid = obj["metadata"]["uid"]
    assert all(f'"{OWNER_HEADER}" : "{CLUSTER}/{uid}"' in e["headers"] for e in workflow["events"])
    token = kube.find("Secret", NS, "pay-relay-token")
    assert token is not None
    value = base64.b64decode(token["data"][n.TOKEN_KEY]).decode().strip()
    assert {e["authorization"] for e in workflow["events"]} == {f"Bearer {value}"}
    body = kube.find("PagerDutyIntegration", NS, "pay")
    assert condition(body, c.BIGPANDA_WEBHOOK)["status"] == c.TRUE
    assert body["status"]["bigPandaWebhook"]["integrationId"] == "webhook_v2.hand-made"  # type: ignore[index]
    assert "BigPandaIntegrationAdopted" in [e["reason"] for e in kube.all("Event", NS)]
    assert len(bp.requests.matching("POST", INTEGRATIONS)) == 1  # only the hand-made one


async def test_bigpanda_adoption_of_another_owners_or_a_missing_id_is_refused(
    kube: FakeKube, reconciler: Reconciler, bigpanda: tuple[BigPandaSimulator, str]
) -> None:
    bp, bp_url = bigpanda
    put_bigpanda(bp_url, "theirs", f'"{OWNER_HEADER}" : "other-cluster/their-uid"')
    before = bp.integration("webhook_v2.theirs")
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY, "bp": BP_API_KEY}), NS)
    kube.put(managed(bp_url, "webhook_v2.theirs"), NS)
    kube.put(managed(bp_url, "webhook_v2.nosuch") | {"metadata": {"name": "two"}}, NS)
    for name in ("pay", "pay", "two", "two"):
        await reconciler.reconcile_integration(NS, name)
    refused = condition(kube.find("PagerDutyIntegration", NS, "pay"), c.BIGPANDA_WEBHOOK)
    assert (refused["status"], refused["reason"]) == (c.FALSE, "NameConflict")
    assert touched(bp, "webhook_v2.theirs") == []
    assert bp.integration("webhook_v2.theirs") == before
    missing = condition(kube.find("PagerDutyIntegration", NS, "two"), c.BIGPANDA_WEBHOOK)
    assert (missing["status"], missing["reason"]) == (c.FALSE, "AdoptionTargetNotFound")
    assert bp.integration("webhook_v2.nosuch") is None  # not created instead


async def test_a_migration_orphan_here_then_adopt_there(
    kube: FakeKube, reconciler: Reconciler, bigpanda: tuple[BigPandaSimulator, str]
) -> None:
    """The migration the controls are for: an integration deleted with Orphan leaves its
    BigPanda integration unstamped; another integration adopts it by id."""
    bp, bp_url = bigpanda
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY, "bp": BP_API_KEY}), NS)
    old = integration(
        "old",
        bigPanda={
            "apiUrl": bp_url,
            "apiToken": {"name": "pd", "key": "bp"},
            "webhook": {"mode": "Managed"},
        },
        relay={"publicUrl": "https://old.example.com"},
        deletionPolicy="Orphan",
    )
    old_uid = kube.put(old, NS)["metadata"]["uid"]
    for _ in range(2):
        await reconciler.reconcile_integration(NS, "old")
    ident = f"webhook_v2.{n.external_name(NS, 'old', old_uid)}"
    assert bp.integration(ident) is not None
    info = integration_info(kube.find("PagerDutyIntegration", NS, "old"))  # type: ignore[arg-type]
    involved = {"kind": "PagerDutyIntegration", "namespace": NS, "name": "old", "uid": old_uid}
    await release(kube, info, involved, None, 0, policy=settings().egress, cluster_id=CLUSTER)
    orphaned = bp.integration(ident)
    assert orphaned is not None
    assert OWNER_HEADER not in str(orphaned.workflow_config.model_dump())

    new = managed(bp_url, ident) | {"metadata": {"name": "new"}}
    new_uid = kube.put(new, NS)["metadata"]["uid"]
    for _ in range(2):
        await reconciler.reconcile_integration(NS, "new")
    adopted = bp.integration(ident)
    assert adopted is not None
    headers = adopted.workflow_config.model_dump()["events"][0]["headers"]
    assert f'"{OWNER_HEADER}" : "{CLUSTER}/{new_uid}"' in headers
    assert adopted.workflow_config.config.base_url == PUBLIC + BIGPANDA_WEBHOOK_PATH
