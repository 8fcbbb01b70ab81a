"""Never adopt (issue 18, item 4): objects by our names that are not ours are reported and
left untouched, in the cluster (the in-memory API server) and in BigPanda and PagerDuty
(the real simulators over HTTP, whose request logs show what was called)."""

from __future__ import annotations

import copy
import re
from typing import Any

import httpx
import pytest

from pagerbridge.api.contract import BIGPANDA_WEBHOOK_PATH, PAGERDUTY_WEBHOOK_PATH
from pagerbridge.controller import names as n
from pagerbridge.controller.errors import NameConflict
from pagerbridge.controller.external.bigpanda_integration import OWNER_HEADER
from pagerbridge.controller.external.subscription import ANNOTATION_URL
from pagerbridge.controller.ownership import OwnerStamp, cluster_identity, write_child
from pagerbridge.controller.reconcile.cleanup import release
from pagerbridge.controller.reconcile.reconciler import Reconciler
from pagerbridge.controller.render import conditions as c
from pagerbridge.controller.state.observed import integration_info
from pagerbridge_devkit.sandbox.bigpanda import DEFAULT_API_TOKEN as BP_API_KEY
from pagerbridge_devkit.sandbox.bigpanda import BigPandaSimulator
from pagerbridge_devkit.sandbox.pagerduty import (
    DEFAULT_API_TOKEN as PD_API_KEY,
)
from pagerbridge_devkit.sandbox.pagerduty import (
    DEFAULT_SERVICE_ID,
    PagerDutySimulator,
)

from .fake_kube import FakeKube, FakeWorld
from .objects import CLUSTER, NS, ROUTING_KEY, condition, integration, ready_relay, secret, settings

PUBLIC = "https://relay.example.com"
INTEGRATIONS = "/resources/v2.1/integrations"


def users_config_map(name: str = "pay-relay") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"team": "payments"}},
        "data": {"settings": "the user's own"},
    }


# -- names ------------------------------------------------------------------------------


def test_external_names_are_unambiguous_readable_and_within_limits() -> None:
    one = n.external_name("team", "a-x", "uid-1")
    other = n.external_name("team-a", "x", "uid-2")
    # the old scheme gave both the same name
    assert n.legacy_external_name("team", "a-x") == n.legacy_external_name("team-a", "x")
    assert one != other
    assert one.startswith("pagerbridge-team-a-x-")
    # same namespace and name, another integration (recreated): another object
    assert n.external_name("team", "a-x", "uid-3") != one
    assert n.external_name("team", "a-x", "uid-1") == one  # stable
    long = n.external_name("n" * 63, "x" * 253, "uid")
    assert len(long) <= n.EXTERNAL_NAME_LIMIT
    assert re.fullmatch(r"[A-Za-z0-9_.\-]+", long)


def test_stamps_round_trip_and_tell_owners_apart() -> None:
    stamp = OwnerStamp(CLUSTER, "3f1c-uid")
    assert OwnerStamp.find(f"PagerBridge ns/x ({stamp.text})") == stamp
    assert OwnerStamp.find("PagerBridge ns/x") is None
    assert OwnerStamp.find(OwnerStamp("other-cluster", "3f1c-uid").text) != stamp
    assert OwnerStamp.find(OwnerStamp("", "3f1c-uid").text) == OwnerStamp("", "3f1c-uid")


# -- children ---------------------------------------------------------------------------


async def test_a_users_config_map_is_reported_and_never_touched(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY}), NS)
    kube.put(integration(), NS)
    theirs = kube.put(users_config_map(), NS)
    before = copy.deepcopy(kube.find("ConfigMap", NS, "pay-relay"))
    await reconciler.reconcile_integration(NS, "pay")
    assert kube.find("ConfigMap", NS, "pay-relay") == before == theirs
    assert not [w for w in kube.writes if w.name == "pay-relay" and w.plural == "configmaps"]
    assert kube.find("Deployment", NS, "pay-relay") is None  # it would mount their ConfigMap
    body = kube.find("PagerDutyIntegration", NS, "pay")
    ready = condition(body)
    assert (ready["status"], ready["reason"]) == (c.FALSE, "NameConflict")
    assert f"ConfigMap {NS}/pay-relay" in ready["message"]
    assert condition(body, c.RELAY_AVAILABLE)["reason"] == "NameConflict"

    # Their object goes away: ours is created, and the relay follows.
    del kube.objects[next(k for k in kube.objects if k[1] == "configmaps")]
    await reconciler.reconcile_integration(NS, "pay")
    ours = kube.find("ConfigMap", NS, "pay-relay")
    assert ours is not None
    assert ours["metadata"]["ownerReferences"][0]["uid"] == body["metadata"]["uid"]  # type: ignore[index]
    ready_relay(kube)
    await reconciler.reconcile_integration(NS, "pay")
    assert condition(kube.find("PagerDutyIntegration", NS, "pay"))["status"] == c.TRUE


async def test_a_namesake_token_secret_is_never_read_nor_written(
    kube: FakeKube, reconciler: Reconciler, bigpanda: tuple[BigPandaSimulator, str]
) -> None:
    bp, bp_url = bigpanda
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY, "bp": BP_API_KEY}), NS)
    kube.put(secret("pay-relay-token", token="chosen-by-someone-else"), NS)
    before = copy.deepcopy(kube.find("Secret", NS, "pay-relay-token"))
    kube.put(
        integration(
            bigPanda={
                "apiUrl": bp_url,
                "apiToken": {"name": "pd", "key": "bp"},
                "webhook": {"mode": "Managed"},
            },
            relay={"publicUrl": PUBLIC},
        ),
        NS,
    )
    for _ in range(2):
        await reconciler.reconcile_integration(NS, "pay")
    assert kube.find("Secret", NS, "pay-relay-token") == before
    ready = condition(kube.find("PagerDutyIntegration", NS, "pay"))
    assert (ready["reason"], f"Secret {NS}/pay-relay-token" in ready["message"]) == (
        "NameConflict",
        True,
    )
    assert "chosen-by-someone-else" not in str(kube.find("PagerDutyIntegration", NS, "pay"))
    assert not bp.requests.matching("POST", INTEGRATIONS)  # their token never reaches BigPanda


async def test_a_child_replaced_between_read_and_write_is_not_applied(kube: FakeKube) -> None:
    """The apply carries the UID of the object we own: a replacement is refused."""
    owner_uid = "integration-uid"
    manifest = users_config_map()
    manifest["metadata"] |= {
        "namespace": NS,
        "ownerReferences": [
            {
                "apiVersion": "pagerbridge.io/v1alpha1",
                "kind": "PagerDutyIntegration",
                "name": "pay",
                "uid": owner_uid,
                "controller": True,
            }
        ],
    }
    ours = await write_child(kube, manifest, owner_uid)  # absent: created
    assert ours["metadata"]["ownerReferences"][0]["uid"] == owner_uid
    del kube.objects[next(k for k in kube.objects if k[1] == "configmaps")]
    theirs = kube.put(users_config_map(), NS)  # someone else's, same name
    with pytest.raises(NameConflict):
        await write_child(kube, manifest, owner_uid, known_uid=ours["metadata"]["uid"])
    with pytest.raises(NameConflict):  # not known: create, 409, not ours
        await write_child(kube, manifest, owner_uid)
    assert kube.find("ConfigMap", NS, "pay-relay") == theirs


# -- BigPanda ---------------------------------------------------------------------------


def managed(bp_url: str, **webhook: Any) -> dict[str, Any]:
    return integration(
        bigPanda={
            "apiUrl": bp_url,
            "apiToken": {"name": "pd", "key": "bp"},
            "webhook": {"mode": "Managed", **webhook},
        },
        relay={"publicUrl": PUBLIC},
    )


def put_bigpanda(bp_url: str, name: str, base_url: str, headers: str | None = None) -> None:
    event: dict[str, Any] = {"trigger": "incident#new", "enabled": True, "method": "POST"}
    if headers:
        event["headers"] = headers
    body = {
        "name": name,
        "parent_system_id": "webhook_v2",
        "workflow_config": {"config": {"base_url": base_url}, "events": [event]},
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


async def test_another_tenants_bigpanda_integration_is_never_patched_nor_deleted(
    kube: FakeKube, reconciler: Reconciler, bigpanda: tuple[BigPandaSimulator, str]
) -> None:
    bp, bp_url = bigpanda
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY, "bp": BP_API_KEY}), NS)
    # Another tenant's, by the name this integration asks for (stamped as theirs).
    put_bigpanda(
        bp_url, "shared", "https://theirs.example.com/hook", f'"{OWNER_HEADER}" : "{CLUSTER}/x"'
    )
    # And an unstamped one pointing at our relay: not recorded by us, so not ours either.
    put_bigpanda(bp_url, "unstamped", PUBLIC + BIGPANDA_WEBHOOK_PATH)
    before = bp.integration("webhook_v2.shared")
    kube.put(managed(bp_url, integrationName="shared"), NS)
    kube.put(managed(bp_url, integrationName="unstamped") | {"metadata": {"name": "two"}}, NS)
    for name in ("pay", "pay", "two", "two"):
        await reconciler.reconcile_integration(NS, name)
    for name, ident in (("pay", "webhook_v2.shared"), ("two", "webhook_v2.unstamped")):
        body = kube.find("PagerDutyIntegration", NS, name)
        found = condition(body, c.BIGPANDA_WEBHOOK)
        assert (found["status"], found["reason"]) == (c.FALSE, "NameConflict")
        assert ident in found["message"]
        assert "integrationId" not in (body.get("status") or {}).get("bigPandaWebhook", {})  # type: ignore[union-attr]
    assert bp.integration("webhook_v2.shared") == before

    # The integration is deleted: the finalizer's cleanup leaves theirs in place.
    for name in ("pay", "two"):
        info = integration_info(kube.find("PagerDutyIntegration", NS, name))  # type: ignore[arg-type]
        await release(kube, info, {}, None, 0, policy=settings().egress, cluster_id=CLUSTER)
    assert touched(bp, "webhook_v2.shared") == []
    assert touched(bp, "webhook_v2.unstamped") == []
    assert bp.integration("webhook_v2.shared") == before
    assert bp.integration("webhook_v2.unstamped") is not None


async def test_our_bigpanda_integration_is_stamped_found_again_and_deleted(
    kube: FakeKube, reconciler: Reconciler, bigpanda: tuple[BigPandaSimulator, str]
) -> None:
    bp, bp_url = bigpanda
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY, "bp": BP_API_KEY}), NS)
    obj = kube.put(managed(bp_url), NS)
    uid = obj["metadata"]["uid"]
    for _ in range(2):
        await reconciler.reconcile_integration(NS, "pay")
    name = n.external_name(NS, "pay", uid)
    stored = bp.integration(f"webhook_v2.{name}")
    assert stored is not None
    headers = stored.workflow_config.model_dump()["events"][0]["headers"]
    assert f'"{OWNER_HEADER}" : "{CLUSTER}/{uid}"' in headers
    ready_relay(kube)
    await reconciler.reconcile_integration(NS, "pay")
    body = kube.find("PagerDutyIntegration", NS, "pay")
    assert body["status"]["bigPandaWebhook"]["integrationId"] == f"webhook_v2.{name}"  # type: ignore[index]

    # The same name found again with our stamp (e.g. after a lost status write): ours.
    reconciler.memories.forget(NS, "pay")
    await reconciler.reconcile_integration(NS, "pay")
    assert (
        condition(kube.find("PagerDutyIntegration", NS, "pay"), c.BIGPANDA_WEBHOOK)["status"]
        == c.TRUE
    )
    info = integration_info(kube.find("PagerDutyIntegration", NS, "pay"))  # type: ignore[arg-type]
    await release(kube, info, {}, None, 0, policy=settings().egress, cluster_id=CLUSTER)
    assert bp.integration(f"webhook_v2.{name}") is None


async def test_upgrade_a_legacy_bigpanda_integration_of_ours_keeps_its_name_and_is_stamped(
    kube: FakeKube, reconciler: Reconciler, bigpanda: tuple[BigPandaSimulator, str]
) -> None:
    """Made by the operator before stamps: recorded in status, pointing at our relay."""
    bp, bp_url = bigpanda
    legacy = n.legacy_external_name(NS, "pay")
    put_bigpanda(bp_url, legacy, PUBLIC + BIGPANDA_WEBHOOK_PATH)
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY, "bp": BP_API_KEY}), NS)
    obj = kube.put(
        managed(bp_url)
        | {"status": {"bigPandaWebhook": {"integrationId": f"webhook_v2.{legacy}"}}},
        NS,
    )
    for _ in range(2):
        await reconciler.reconcile_integration(NS, "pay")
    stored = bp.integration(f"webhook_v2.{legacy}")
    assert stored is not None
    headers = stored.workflow_config.model_dump()["events"][0]["headers"]
    assert f'"{OWNER_HEADER}" : "{CLUSTER}/{obj["metadata"]["uid"]}"' in headers
    assert len(bp.requests.matching("POST", INTEGRATIONS)) == 1  # the test's own: no new one
    events = [e["reason"] for e in kube.all("Event", NS)]
    assert "BigPandaIntegrationStamped" in events
    body = kube.find("PagerDutyIntegration", NS, "pay")
    assert body["status"]["bigPandaWebhook"]["integrationId"] == f"webhook_v2.{legacy}"  # type: ignore[index]


async def test_upgrade_a_legacy_name_pointing_elsewhere_is_not_claimed(
    kube: FakeKube, reconciler: Reconciler, bigpanda: tuple[BigPandaSimulator, str]
) -> None:
    """``team``/``a-x`` and ``team-a``/``x`` shared the old name: the one whose relay it
    does not point at never takes it over, even if its status names it."""
    bp, bp_url = bigpanda
    legacy = n.legacy_external_name(NS, "pay")
    put_bigpanda(bp_url, legacy, "https://the-other-tenant.example.com/v1/bigpanda/webhook")
    before = bp.integration(f"webhook_v2.{legacy}")
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY, "bp": BP_API_KEY}), NS)
    kube.put(
        managed(bp_url)
        | {"status": {"bigPandaWebhook": {"integrationId": f"webhook_v2.{legacy}"}}},
        NS,
    )
    for _ in range(2):
        await reconciler.reconcile_integration(NS, "pay")
    assert (
        condition(kube.find("PagerDutyIntegration", NS, "pay"), c.BIGPANDA_WEBHOOK)["reason"]
        == "NameConflict"
    )
    assert touched(bp, f"webhook_v2.{legacy}") == []
    assert bp.integration(f"webhook_v2.{legacy}") == before


# -- PagerDuty --------------------------------------------------------------------------


def subscribed(pd_url: str) -> dict[str, Any]:
    return integration(
        pagerDuty={
            "routingKey": {"name": "pd", "key": "routing-key"},
            "apiToken": {"name": "pd", "key": "api"},
            "serviceId": DEFAULT_SERVICE_ID,
            "apiUrl": pd_url,
        },
        relay={"publicUrl": PUBLIC},
    )


def hits(pd: PagerDutySimulator, subscription_id: str) -> list[str]:
    return [
        r.method
        for r in pd.requests.matching(path_prefix=f"/webhook_subscriptions/{subscription_id}")
        if r.method in ("PUT", "DELETE")
    ]


async def test_another_tenants_subscription_to_the_same_url_is_never_touched(
    kube: FakeKube, reconciler: Reconciler, pagerduty: tuple[PagerDutySimulator, str]
) -> None:
    pd, pd_url = pagerduty
    url = PUBLIC + PAGERDUTY_WEBHOOK_PATH
    theirs, _ = pd.create_subscription(url, DEFAULT_SERVICE_ID, description="someone else's")
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY, "api": PD_API_KEY}), NS)
    obj = kube.put(subscribed(pd_url), NS)
    for _ in range(3):
        reconciler.integration_changed(NS, "pay", verify=True)
        await reconciler.reconcile_integration(NS, "pay")
    mine = kube.find("Secret", NS, "pay-pd-webhook")
    assert mine is not None
    mine_id = mine["metadata"]["annotations"][n.ANNOTATION_SUBSCRIPTION_ID]
    assert mine_id != theirs
    listed = {
        s["id"]: s
        for s in httpx.get(
            f"{pd_url}/webhook_subscriptions",
            headers={"Authorization": f"Token token={PD_API_KEY}"},
        ).json()["webhook_subscriptions"]
    }
    assert set(listed) == {theirs, mine_id}
    assert OwnerStamp.find(listed[mine_id]["description"]) == OwnerStamp(
        CLUSTER, obj["metadata"]["uid"]
    )
    assert "ForeignSubscription" in [e["reason"] for e in kube.all("Event", NS)]

    info = integration_info(kube.find("PagerDutyIntegration", NS, "pay"))  # type: ignore[arg-type]
    stored = FakeWorld(kube).secret(NS, "pay-pd-webhook")
    await release(kube, info, {}, stored, 0, policy=settings().egress, cluster_id=CLUSTER)
    assert hits(pd, theirs) == []
    assert hits(pd, mine_id) == ["DELETE"]
    assert pd.webhook_subscription_ids() == [theirs]


async def test_a_namesake_webhook_secret_cannot_point_us_at_another_subscription(
    kube: FakeKube, reconciler: Reconciler, pagerduty: tuple[PagerDutySimulator, str]
) -> None:
    """A Secret named like ours, recording someone else's subscription id: never used."""
    pd, pd_url = pagerduty
    theirs, _ = pd.create_subscription("https://theirs.example.com/hook", DEFAULT_SERVICE_ID)
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY, "api": PD_API_KEY}), NS)
    planted = secret("pay-pd-webhook", secret="x")
    planted["metadata"]["annotations"] = {
        n.ANNOTATION_SUBSCRIPTION_ID: theirs,
        ANNOTATION_URL: PUBLIC + PAGERDUTY_WEBHOOK_PATH,
    }
    kube.put(planted, NS)
    before = copy.deepcopy(kube.find("Secret", NS, "pay-pd-webhook"))
    kube.put(subscribed(pd_url), NS)
    await reconciler.reconcile_integration(NS, "pay")
    found = condition(kube.find("PagerDutyIntegration", NS, "pay"), c.SUBSCRIPTION_READY)
    assert (found["reason"], f"Secret {NS}/pay-pd-webhook" in found["message"]) == (
        "NameConflict",
        True,
    )
    assert kube.find("Secret", NS, "pay-pd-webhook") == before
    assert not pd.requests.matching("POST", "/webhook_subscriptions")  # nothing made for us
    info = integration_info(kube.find("PagerDutyIntegration", NS, "pay"))  # type: ignore[arg-type]
    stored = FakeWorld(kube).secret(NS, "pay-pd-webhook")
    await release(kube, info, {}, stored, 0, policy=settings().egress, cluster_id=CLUSTER)
    assert hits(pd, theirs) == []
    assert pd.webhook_subscription_ids() == [theirs]


async def test_upgrade_a_legacy_subscription_of_ours_is_kept_and_stamped(
    kube: FakeKube, reconciler: Reconciler, pagerduty: tuple[PagerDutySimulator, str]
) -> None:
    pd, pd_url = pagerduty
    url = PUBLIC + PAGERDUTY_WEBHOOK_PATH
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY, "api": PD_API_KEY}), NS)
    obj = kube.put(subscribed(pd_url), NS)
    legacy, signing = pd.create_subscription(
        url, DEFAULT_SERVICE_ID, description=f"PagerBridge {NS}/pay"
    )
    ours = secret("pay-pd-webhook", secret=signing)
    ours["metadata"] |= {
        "annotations": {n.ANNOTATION_SUBSCRIPTION_ID: legacy, ANNOTATION_URL: url},
        "ownerReferences": [
            {
                "apiVersion": "pagerbridge.io/v1alpha1",
                "kind": "PagerDutyIntegration",
                "name": "pay",
                "uid": obj["metadata"]["uid"],
                "controller": True,
            }
        ],
    }
    kube.put(ours, NS)
    reconciler.integration_changed(NS, "pay", verify=True)
    await reconciler.reconcile_integration(NS, "pay")
    assert pd.webhook_subscription_ids() == [legacy]  # kept: not recreated
    assert hits(pd, legacy) == ["PUT"]
    listed = httpx.get(
        f"{pd_url}/webhook_subscriptions/{legacy}",
        headers={"Authorization": f"Token token={PD_API_KEY}"},
    ).json()["webhook_subscription"]
    assert OwnerStamp.find(listed["description"]) == OwnerStamp(CLUSTER, obj["metadata"]["uid"])
    assert "SubscriptionStamped" in [e["reason"] for e in kube.all("Event", NS)]


async def test_cluster_identity_is_the_configured_one_else_kube_system_uid(
    kube: FakeKube,
) -> None:
    assert await cluster_identity(kube, "") == ""  # not readable: no cluster part
    namespace = await kube.create(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}}
    )
    assert await cluster_identity(kube, "") == namespace["metadata"]["uid"]
    assert await cluster_identity(kube, "pinned") == "pinned"


class BlindWorld(FakeWorld):
    """An index that has not seen any child yet (another replica created them meanwhile)."""

    def child(self, kind: str, namespace: str, owner: str) -> Any:
        return None

    def secret(self, namespace: str, name: str) -> Any:
        return None if name.startswith("pay-") else super().secret(namespace, name)


async def test_two_operators_racing_to_create_the_children_both_converge(
    kube: FakeKube,
) -> None:
    """Another replica created the children after our index was read: our POSTs get 409,
    the objects are read back, found ours by owner UID, and applied with their UID; no
    NameConflict, nothing created twice."""
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY}), NS)
    kube.put(integration(), NS)
    first = Reconciler(kube, settings(), FakeWorld(kube))
    second = Reconciler(kube, settings(), BlindWorld(kube))
    await first.reconcile_integration(NS, "pay")
    before = len(kube.writes)
    await second.reconcile_integration(NS, "pay")
    applied = {(w.verb, w.plural) for w in kube.writes[before:] if w.name == "pay-relay"}
    assert applied == {("apply", "configmaps"), ("apply", "services"), ("apply", "deployments")}
    ready_relay(kube)
    await first.reconcile_integration(NS, "pay")
    assert condition(kube.find("PagerDutyIntegration", NS, "pay"))["reason"] == "Ready"
    creates = [w for w in kube.writes if w.verb == "create" and w.name == "pay-relay"]
    assert sorted(w.plural for w in creates) == ["configmaps", "deployments", "services"]


async def test_a_disabled_or_edited_subscription_is_set_right_at_the_next_verification(
    kube: FakeKube, reconciler: Reconciler, pagerduty: tuple[PagerDutySimulator, str]
) -> None:
    """Issue 27: the operator reads ``active``, events and filter of its subscription,
    re-enables and restores it, and condition SubscriptionActive says what it found."""
    pd, pd_url = pagerduty
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY, "api": PD_API_KEY}), NS)
    # Resolve, notes and acknowledgements on: the subscription needs all three types.
    manifest = subscribed(pd_url)
    manifest["spec"]["pagerDuty"]["fromEmail"] = "oncall@example.com"
    manifest["spec"]["sync"] = {"acknowledge": True}
    kube.put(manifest, NS)
    reconciler.integration_changed(NS, "pay")
    await reconciler.reconcile_integration(NS, "pay")
    ready_relay(kube)
    reconciler.integration_changed(NS, "pay", verify=True)
    await reconciler.reconcile_integration(NS, "pay")
    mine = kube.find("Secret", NS, "pay-pd-webhook")
    assert mine is not None
    sub_id = mine["metadata"]["annotations"][n.ANNOTATION_SUBSCRIPTION_ID]
    found = condition(kube.find("PagerDutyIntegration", NS, "pay"), c.SUBSCRIPTION_ACTIVE)
    assert found["reason"] == "Active"
    headers = {
        "Authorization": f"Token token={PD_API_KEY}",
        "Accept": "application/vnd.pagerduty+json;version=2",
    }
    # PagerDuty (after failed deliveries) or a person disables it, and drops an event.
    answer = httpx.put(
        f"{pd_url}/webhook_subscriptions/{sub_id}",
        json={"webhook_subscription": {"active": False, "events": ["incident.resolved"]}},
        headers=headers,
    )
    assert answer.status_code == 200
    reconciler.integration_changed(NS, "pay", verify=True)  # the periodic resync
    await reconciler.reconcile_integration(NS, "pay")
    current = httpx.get(f"{pd_url}/webhook_subscriptions/{sub_id}", headers=headers).json()
    assert current["webhook_subscription"]["active"] is True
    assert set(current["webhook_subscription"]["events"]) >= {
        "incident.resolved",
        "incident.annotated",
        "incident.acknowledged",
    }
    assert current["webhook_subscription"]["filter"] == {
        "type": "service_reference",
        "id": DEFAULT_SERVICE_ID,
    }
    found = condition(kube.find("PagerDutyIntegration", NS, "pay"), c.SUBSCRIPTION_ACTIVE)
    assert (found["status"], found["reason"]) == ("True", "Reenabled")
    assert "was inactive" in found["message"]
    assert "SubscriptionRepaired" in [e["reason"] for e in kube.all("Event", NS)]
    assert pd.webhook_subscription_ids() == [sub_id]  # the same one, not a new one
    # Next verification: nothing wrong, nothing written.
    puts = len(hits(pd, sub_id))
    reconciler.integration_changed(NS, "pay", verify=True)
    await reconciler.reconcile_integration(NS, "pay")
    found = condition(kube.find("PagerDutyIntegration", NS, "pay"), c.SUBSCRIPTION_ACTIVE)
    assert found["reason"] == "Active"
    assert len(hits(pd, sub_id)) == puts


async def test_webhook_scope_team_and_the_admins_bound(
    kube: FakeKube, reconciler: Reconciler, pagerduty: tuple[PagerDutySimulator, str]
) -> None:
    """Issue 27 item 1: the subscription covers a team (the default key's and the key
    overrides' services); the account only where the cluster admin allows it."""
    _pd, pd_url = pagerduty
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY, "api": PD_API_KEY}), NS)
    obj = subscribed(pd_url)
    obj["spec"]["pagerDuty"]["webhookScope"] = {"type": "Team", "teamId": "PTEAM01"}
    kube.put(obj, NS)
    reconciler.integration_changed(NS, "pay")
    await reconciler.reconcile_integration(NS, "pay")
    ready_relay(kube)
    reconciler.integration_changed(NS, "pay", verify=True)
    await reconciler.reconcile_integration(NS, "pay")
    headers = {"Authorization": f"Token token={PD_API_KEY}"}
    (listed,) = httpx.get(f"{pd_url}/webhook_subscriptions", headers=headers).json()[
        "webhook_subscriptions"
    ]
    assert listed["filter"] == {"type": "team_reference", "id": "PTEAM01"}
    found = condition(kube.find("PagerDutyIntegration", NS, "pay"), c.SUBSCRIPTION_ACTIVE)
    assert found["reason"] == "Active"
    # Account: refused by the default policy (Service and Team), nothing changed upstream.
    current = kube.find("PagerDutyIntegration", NS, "pay")
    assert current is not None
    current["spec"]["pagerDuty"]["webhookScope"] = {"type": "Account"}
    current["metadata"]["generation"] += 1
    reconciler.integration_changed(NS, "pay", verify=True)
    await reconciler.reconcile_integration(NS, "pay")
    ready = condition(kube.find("PagerDutyIntegration", NS, "pay"))
    assert ready["reason"] == "WebhookScopeNotAllowed"
    assert "relayPolicy.allowedWebhookScopes" in ready["message"]
    (unchanged,) = httpx.get(f"{pd_url}/webhook_subscriptions", headers=headers).json()[
        "webhook_subscriptions"
    ]
    assert unchanged["filter"] == {"type": "team_reference", "id": "PTEAM01"}
