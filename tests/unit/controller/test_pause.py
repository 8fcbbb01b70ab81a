"""Pausing an integration (issue 29, item 2): while annotated pagerbridge.io/paused the
operator writes its status and nothing else; unpausing converges."""

from __future__ import annotations

from typing import Any

import kopf
import pytest

from pagerbridge.controller import names as n
from pagerbridge.controller.reconcile.cleanup import release
from pagerbridge.controller.reconcile.reconciler import Reconciler, live_uids
from pagerbridge.controller.render import conditions as c
from pagerbridge.controller.render import pause
from pagerbridge.controller.state.observed import IntegrationInfo, integration_info
from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_API_TOKEN as PD_API_KEY
from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_SERVICE_ID, PagerDutySimulator

from .fake_kube import FakeKube, FakeWorld
from .objects import CLUSTER, NS, ROUTING_KEY, condition, integration, ready_relay, secret, settings

PUBLIC = "https://relay.example.com"
T0, T1 = "2026-12-08T01:00:00Z", "2026-12-08T02:00:00Z"


# -- pure decisions ---------------------------------------------------------------------


def test_the_annotation_values_that_pause() -> None:
    assert pause.paused({n.ANNOTATION_PAUSED: "true"})
    assert pause.paused({n.ANNOTATION_PAUSED: "True "})
    assert not pause.paused({n.ANNOTATION_PAUSED: "false"})
    assert not pause.paused({})


def test_held_conditions_keep_ready_and_note_the_pause_once() -> None:
    ready = {
        "type": c.READY,
        "status": c.TRUE,
        "reason": "Ready",
        "message": "relay ready",
        "lastTransitionTime": T0,
        "observedGeneration": 3,
    }
    held = pause.held_conditions([ready], 4, T1)
    paused = c.find(held, c.PAUSED)
    assert paused is not None
    assert (paused["status"], paused["reason"], paused["lastTransitionTime"]) == (
        c.TRUE,
        "ReconcilePaused",
        T1,
    )
    kept = c.find(held, c.READY)
    assert kept is not None
    assert (kept["status"], kept["reason"], kept["lastTransitionTime"]) == (c.TRUE, "Ready", T0)
    assert kept["observedGeneration"] == 3  # still describes the generation reconciled
    assert kept["message"] == f"Paused since {T1}: not re-checked; last known: relay ready"
    # Held again later: the pause's time stays, the note is not stacked.
    again = pause.held_conditions(held, 5, "2026-12-08T03:00:00Z")
    assert c.find(again, c.PAUSED)["lastTransitionTime"] == T1  # type: ignore[index]
    assert c.find(again, c.READY)["message"] == kept["message"]  # type: ignore[index]
    assert pause.last_known(kept["message"]) == "relay ready"
    assert pause.without_paused(again) == [c.find(again, c.READY)]


def test_paused_before_the_first_reconcile_is_ready_unknown() -> None:
    held = pause.held_conditions([], 1, T1)
    ready = c.find(held, c.READY)
    assert ready is not None
    assert (ready["status"], ready["reason"]) == (c.UNKNOWN, "ReconcilePaused")


# -- the reconciler ---------------------------------------------------------------------


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


def set_annotation(kube: FakeKube, key: str, value: str | None) -> None:
    body = kube.find("PagerDutyIntegration", NS, "pay")
    assert body is not None
    annotations = body["metadata"].setdefault("annotations", {})
    if value is None:
        annotations.pop(key, None)
    else:
        annotations[key] = value


async def test_a_paused_integration_writes_only_its_status_and_unpausing_repairs(
    kube: FakeKube, reconciler: Reconciler, pagerduty: tuple[PagerDutySimulator, str]
) -> None:
    pd, pd_url = pagerduty
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY, "api": PD_API_KEY}), NS)
    kube.put(subscribed(pd_url), NS)
    await reconciler.reconcile_integration(NS, "pay")
    ready_relay(kube)
    await reconciler.reconcile_integration(NS, "pay")
    assert condition(kube.find("PagerDutyIntegration", NS, "pay"))["status"] == c.TRUE

    set_annotation(kube, n.ANNOTATION_PAUSED, "true")
    # While paused: a spec change, a deleted child, and the periodic verification.
    body = kube.find("PagerDutyIntegration", NS, "pay")
    assert body is not None
    body["spec"]["relay"]["replicas"] = 0
    body["metadata"]["generation"] += 1
    del kube.objects[kube._key(kube.resource("ConfigMap"), NS, "pay-relay")]
    writes, calls = len(kube.writes), len(pd.requests.matching(path_prefix="/"))
    for _ in range(3):
        reconciler.integration_changed(NS, "pay", verify=True)
        await reconciler.reconcile_integration(NS, "pay")
    made = kube.writes[writes:]
    assert [(w.verb, w.plural, w.subresource) for w in made] == [
        ("create", "events", None),  # ReconcilePaused, once
        ("patch", "pagerdutyintegrations", "status"),  # once: then unchanged
    ]
    assert len(pd.requests.matching(path_prefix="/")) == calls  # PagerDuty not even read
    assert kube.find("ConfigMap", NS, "pay-relay") is None
    body = kube.find("PagerDutyIntegration", NS, "pay")
    paused = condition(body, c.PAUSED)
    assert (paused["status"], paused["reason"]) == (c.TRUE, "ReconcilePaused")
    ready = condition(body)
    assert (ready["status"], ready["reason"]) == (c.TRUE, "Ready")
    assert ready["message"].startswith("Paused since ")
    assert body["status"]["observedGeneration"] == body["metadata"]["generation"] - 1  # type: ignore[index]

    set_annotation(kube, n.ANNOTATION_PAUSED, None)
    await reconciler.reconcile_integration(NS, "pay")
    assert kube.find("ConfigMap", NS, "pay-relay") is not None  # recreated
    deployment = kube.find("Deployment", NS, "pay-relay")
    assert deployment is not None
    assert deployment["spec"]["replicas"] == 0  # the spec change made while paused
    body = kube.find("PagerDutyIntegration", NS, "pay")
    assert condition(body, c.PAUSED) == {}
    assert body["status"]["observedGeneration"] == body["metadata"]["generation"]  # type: ignore[index]
    # and the first reconcile after the pause verified the subscription in PagerDuty
    assert len(pd.requests.matching(path_prefix="/webhook_subscriptions")) > 0


async def test_deleting_a_paused_integration_waits_and_skip_cleanup_still_lets_go(
    kube: FakeKube, reconciler: Reconciler, pagerduty: tuple[PagerDutySimulator, str]
) -> None:
    pd, pd_url = pagerduty
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY, "api": PD_API_KEY}), NS)
    kube.put(subscribed(pd_url), NS)
    await reconciler.reconcile_integration(NS, "pay")
    stored = FakeWorld(kube).secret(NS, "pay-pd-webhook")
    assert stored is not None
    set_annotation(kube, n.ANNOTATION_PAUSED, "true")
    info = integration_info(kube.find("PagerDutyIntegration", NS, "pay"))  # type: ignore[arg-type]
    involved = {"kind": "PagerDutyIntegration", "namespace": NS, "name": "pay", "uid": info.uid}
    calls = len(pd.requests.matching(path_prefix="/"))
    for retry in (0, 1):
        with pytest.raises(kopf.TemporaryError):
            await release(
                kube, info, involved, stored, retry, policy=settings().egress, cluster_id=CLUSTER
            )
    assert len(pd.requests.matching(path_prefix="/")) == calls
    assert [e["reason"] for e in kube.all("Event", NS)].count("CleanupPaused") == 1
    assert len(pd.webhook_subscription_ids()) == 1

    set_annotation(kube, n.ANNOTATION_SKIP_CLEANUP, "true")
    info = integration_info(kube.find("PagerDutyIntegration", NS, "pay"))  # type: ignore[arg-type]
    await release(kube, info, involved, stored, 2, policy=settings().egress, cluster_id=CLUSTER)
    assert len(pd.webhook_subscription_ids()) == 1  # let go, nothing called
    assert len(pd.requests.matching(path_prefix="/")) == calls


def test_the_orphan_sweep_keeps_a_paused_integrations_children_even_while_deleting() -> None:
    def info(uid: str, *, deleting: bool, paused: bool) -> IntegrationInfo:
        annotations = {n.ANNOTATION_PAUSED: "true"} if paused else {}
        return IntegrationInfo(NS, uid, uid, 1, {}, {}, annotations, deleting)

    found = live_uids(
        [
            info("live", deleting=False, paused=False),
            info("going", deleting=True, paused=False),
            info("held", deleting=True, paused=True),
        ]
    )
    assert found == {"live", "held"}
