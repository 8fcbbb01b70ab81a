"""The reconciler against an in-memory Kubernetes API (the only double: everything of
ours is real, and BigPanda is the real simulator over HTTP)."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from pagerbridge.controller.names import FINALIZER
from pagerbridge.controller.reconcile.queue import WorkQueue
from pagerbridge.controller.reconcile.reconciler import Reconciler
from pagerbridge.controller.render import conditions as c
from pagerbridge.controller.render.children import ANNOTATION_ENV_SECRET_VERSION
from pagerbridge.controller.settings import OperatorSettings
from pagerbridge.controller.state.observed import integration_info
from pagerbridge_devkit.sandbox.bigpanda import DEFAULT_API_TOKEN as BP_API_KEY
from pagerbridge_devkit.sandbox.bigpanda import BigPandaSimulator
from pagerbridge_devkit.sandbox.server import loopback_egress_policy

from .fake_kube import FakeKube, FakeWorld, Write
from .objects import NS, ROUTING_KEY, condition, integration, override, ready_relay, secret


@pytest.fixture
def reconciler(kube: FakeKube) -> Reconciler:
    settings = OperatorSettings(resync_seconds=300.0, egress=loopback_egress_policy())
    return Reconciler(kube, settings, FakeWorld(kube))


async def test_plain_integration_converges_then_writes_nothing(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY}), NS)
    kube.put(integration(), NS)
    assert await reconciler.reconcile_integration(NS, "pay") is None
    made = {(w.verb, w.plural) for w in kube.writes}
    # absent children are created (never applied over whatever might be there)
    assert {("create", "configmaps"), ("create", "services"), ("create", "deployments")} <= made
    assert not {w for w in made if w[0] == "apply"}
    assert ("create", "secrets") in made  # the inbound token, created once
    # A relay created moments ago: the first "starting" status is held back.
    assert kube.find("PagerDutyIntegration", NS, "pay").get("status") is None  # type: ignore[union-attr]

    ready_relay(kube)
    await reconciler.reconcile_integration(NS, "pay")
    body = kube.find("PagerDutyIntegration", NS, "pay")
    assert (condition(body)["status"], condition(body)["reason"]) == (c.TRUE, "Ready")
    internal = condition(body, c.RELAY_PUBLIC)
    assert (internal["status"], internal["reason"]) == (c.FALSE, "ClusterInternalUrl")
    assert body["status"]["relay"]["readyReplicas"] == 1  # type: ignore[index]
    assert [e for e in kube.all("Event", NS) if e["reason"] == "Ready"]

    # At rest: reconciling again writes nothing at all (not even an Event).
    before = list(kube.writes)
    for _ in range(3):
        await reconciler.reconcile_integration(NS, "pay")
    assert kube.writes == before


async def test_the_echo_of_our_own_status_write_queues_no_reconcile(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY}), NS)
    kube.put(integration(), NS)
    await reconciler.reconcile_integration(NS, "pay")
    ready_relay(kube)
    await reconciler.reconcile_integration(NS, "pay")
    body = kube.find("PagerDutyIntegration", NS, "pay")
    assert body is not None
    assert condition(body)["status"] == c.TRUE

    def event(obj: dict[str, Any], deleted: bool = False) -> bool:
        """Whether the watch event of ``obj`` queued a reconcile."""
        reconciler.integration_event(integration_info(obj), deleted)
        queued = not reconciler.queue.idle
        reconciler.queue = WorkQueue(reconciler._handle, 1)  # empty again
        return queued

    assert not event(body)  # only our own write: nothing to do
    assert event(body, deleted=True)
    changed = copy.deepcopy(body)
    changed["metadata"]["generation"] = 2
    changed["spec"]["sync"] = {"notes": False}
    assert event(changed)
    annotated = copy.deepcopy(body)
    annotated["metadata"]["annotations"] = {"pagerbridge.io/rotate-token": "now"}
    assert event(annotated)
    rewritten = copy.deepcopy(body)  # someone else changed the status
    rewritten["status"]["conditions"] = []
    assert event(rewritten)
    # A reconcile that starts expects no echo until it writes again.
    memory = reconciler.memories.get(NS, "pay")
    assert memory is not None
    assert memory.echo is not None
    kube.put(secret("pd"), NS)  # the routing key is gone: the reconcile stops early
    await reconciler.reconcile_integration(NS, "pay")
    assert memory.echo is None or memory.echo[1]["conditions"] != body["status"]["conditions"]
    assert event(body)


async def test_a_periodic_resync_reapplies_and_adds_no_finalizer(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY}), NS)
    kube.put(integration(), NS)
    reconciler.resync_due(now=1e12)  # nothing reconciled yet: nothing to re-check
    assert reconciler.queue.idle
    await reconciler.reconcile_integration(NS, "pay")
    memory = reconciler.memories.get(NS, "pay")
    assert memory is not None
    assert memory.next_resync is not None
    reconciler.resync_due(now=memory.next_resync)
    assert memory.resync_now
    assert not reconciler.queue.idle
    kube.writes.clear()
    await reconciler.reconcile_integration(NS, "pay")
    assert {w.plural for w in kube.writes if w.verb == "apply"} >= {"configmaps", "deployments"}
    body = kube.find("PagerDutyIntegration", NS, "pay")
    assert body is not None
    assert "finalizers" not in body["metadata"]


async def test_missing_secret_then_override_names_the_failing_integration(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    kube.put(integration(), NS)
    kube.put(override("by-tag"), NS)
    await reconciler.reconcile_integration(NS, "pay")
    body = kube.find("PagerDutyIntegration", NS, "pay")
    assert (condition(body)["status"], condition(body)["reason"]) == (c.FALSE, "SecretNotFound")
    ref = condition(kube.find("PagerDutyKeyOverride", NS, "by-tag"))
    assert (ref["status"], ref["reason"]) == (c.FALSE, "IntegrationNotReady")
    assert ref["message"].startswith(
        f"PagerDutyIntegration {NS}/pay is not Ready: SecretsResolved=False (SecretNotFound: "
    )
    assert not kube.find("Deployment", NS, "pay-relay")  # nothing rendered without the key

    kube.put(secret("pd", **{"routing-key": ROUTING_KEY}), NS)
    await reconciler.reconcile_integration(NS, "pay")
    ready_relay(kube)
    await reconciler.reconcile_integration(NS, "pay")
    ref = condition(kube.find("PagerDutyKeyOverride", NS, "by-tag"))
    assert (ref["status"], ref["reason"]) == (c.TRUE, "Applied")


async def test_override_of_a_missing_integration_says_so(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    kube.put(override("ghost", target="nobody"), NS)
    await reconciler.reconcile_ref("PagerDutyKeyOverride", NS, "ghost")
    ref = condition(kube.find("PagerDutyKeyOverride", NS, "ghost"))
    assert (ref["status"], ref["reason"]) == (c.FALSE, "IntegrationNotFound")


async def test_deleted_integration_is_forgotten_and_skip_cleanup_lets_go(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY}), NS)
    kube.put(integration(), NS)
    await reconciler.reconcile_integration(NS, "pay")
    assert reconciler.memories.get(NS, "pay") is not None

    body = kube.find("PagerDutyIntegration", NS, "pay")
    assert body is not None
    body["metadata"].update(
        deletionTimestamp="2026-01-01T00:00:00Z",
        finalizers=[FINALIZER, "example.com/other"],
        annotations={"pagerbridge.io/skip-cleanup": "true"},
    )
    await reconciler.reconcile_integration(NS, "pay")
    assert reconciler.memories.get(NS, "pay") is None
    assert body is not kube.find("PagerDutyIntegration", NS, "pay")
    after = kube.find("PagerDutyIntegration", NS, "pay")
    assert after is not None
    assert after["metadata"]["finalizers"] == ["example.com/other"]  # only ours removed
    assert [e["reason"] for e in kube.all("Event", NS)] == ["CleanupSkipped"]


async def test_managed_bigpanda_is_written_once_and_rests_against_masked_reads(
    kube: FakeKube, reconciler: Reconciler, bigpanda: tuple[BigPandaSimulator, str]
) -> None:
    bp, bp_url = bigpanda
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY, "bp": BP_API_KEY}), NS)
    kube.put(
        integration(
            bigPanda={
                "apiUrl": bp_url,
                "apiToken": {"name": "pd", "key": "bp"},
                "webhook": {"mode": "Managed", "integrationName": "pb-pay"},
            },
            relay={"publicUrl": "https://relay.example.com"},
        ),
        NS,
    )
    await reconciler.reconcile_integration(NS, "pay")  # children + token Secret
    await reconciler.reconcile_integration(NS, "pay")  # BigPanda, with the token
    ready_relay(kube)
    await reconciler.reconcile_integration(NS, "pay")
    body = kube.find("PagerDutyIntegration", NS, "pay")
    assert condition(body, c.BIGPANDA_WEBHOOK)["status"] == c.TRUE
    assert body["status"]["bigPandaWebhook"]["authorizationDigest"].startswith("sha256:")  # type: ignore[index]
    assert condition(body, c.RELAY_PUBLIC)["status"] == c.TRUE

    def writes() -> list[str]:
        return [r.method for r in bp.requests.entries if r.method in ("POST", "PATCH")]

    assert writes() == ["POST"]
    for _ in range(5):  # periodic re-checks: each reads BigPanda (masked), none writes
        reconciler.integration_changed(NS, "pay", verify=True)
        await reconciler.reconcile_integration(NS, "pay")
    assert len(bp.requests.matching("GET", "/resources/v2.1/integrations/")) >= 5
    assert writes() == ["POST"]

    # A new reconciler (an operator restart): the digest in status, still no write.
    fresh = Reconciler(kube, OperatorSettings(), FakeWorld(kube))
    fresh.integration_changed(NS, "pay", verify=True)
    await fresh.reconcile_integration(NS, "pay")
    assert writes() == ["POST"]
    assert Write("apply", "deployments", "pay-relay") in kube.writes


async def check_queues_a_reconcile(kube: FakeKube, reconciler: Reconciler) -> bool:
    """Run the secret check of pay with a fresh queue (sharing the memories): queued?"""
    checker = Reconciler(kube, reconciler.settings, reconciler.world)
    checker.memories = reconciler.memories
    assert await checker.check_secrets(NS, "pay") is None
    return not checker.queue.idle


async def test_referenced_secrets_are_read_by_name_and_a_rotation_is_seen_by_the_check(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    """User Secrets never reach the operator's index (its watch selects our own Secrets):
    the reconcile reads them by name, and the periodic check notices a rotated value."""
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY}), NS)
    kube.put(integration(), NS)
    assert reconciler.world.secret(NS, "pd") is None  # not in the (label-selected) index
    await reconciler.reconcile_integration(NS, "pay")
    ready_relay(kube)
    await reconciler.reconcile_integration(NS, "pay")
    assert condition(kube.find("PagerDutyIntegration", NS, "pay"))["status"] == c.TRUE

    # Nothing changed: the check queues nothing and writes nothing.
    before = list(kube.writes)
    assert not await check_queues_a_reconcile(kube, reconciler)
    assert kube.writes == before

    # The routing key is rotated to a value that is not a key: the check queues a
    # reconcile, which says InvalidKey (and never shows the value).
    bad = {"data": {"routing-key": base64.b64encode(b"not-a-routing-key").decode()}}
    await kube.merge_patch(FakeKube.resource("Secret"), NS, "pd", bad)
    assert await check_queues_a_reconcile(kube, reconciler)
    await reconciler.reconcile_integration(NS, "pay")
    body = kube.find("PagerDutyIntegration", NS, "pay")
    resolved = condition(body, c.SECRETS_RESOLVED)
    assert (resolved["status"], resolved["reason"]) == (c.FALSE, "InvalidKey")
    assert "not-a-routing-key" not in str(body)
    assert not await check_queues_a_reconcile(kube, reconciler)

    # Deleted, then created again with a good key: each is a change; Ready once more.
    await kube.delete(FakeKube.resource("Secret"), NS, "pd")
    assert await check_queues_a_reconcile(kube, reconciler)
    await reconciler.reconcile_integration(NS, "pay")
    resolved = condition(kube.find("PagerDutyIntegration", NS, "pay"), c.SECRETS_RESOLVED)
    assert resolved["reason"] == "SecretNotFound"
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY}), NS)
    assert await check_queues_a_reconcile(kube, reconciler)
    await reconciler.reconcile_integration(NS, "pay")
    assert condition(kube.find("PagerDutyIntegration", NS, "pay"))["status"] == c.TRUE


async def test_the_secret_check_is_scheduled_per_integration(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY}), NS)
    kube.put(integration(), NS)
    await reconciler.reconcile_integration(NS, "pay")
    memory = reconciler.memories.get(NS, "pay")
    assert memory is not None
    assert memory.next_secret_check is not None
    stored = kube.find("Secret", NS, "pd")
    assert stored is not None
    assert memory.secret_versions == {"pd": stored["metadata"]["resourceVersion"]}
    due = memory.next_secret_check
    reconciler.resync_due(now=due - 0.001)
    assert reconciler.queue.idle
    reconciler.resync_due(now=due)
    assert not reconciler.queue.idle
    assert memory.next_secret_check == due + reconciler.settings.secret_check_seconds


def _pod_annotations(kube: FakeKube, name: str = "pay") -> dict[str, str]:
    deployment = kube.find("Deployment", NS, f"{name}-relay")
    assert deployment is not None
    annotations: dict[str, str] = deployment["spec"]["template"]["metadata"]["annotations"]
    return annotations


async def test_a_rotated_secret_rolls_the_relay_only_when_it_is_in_its_environment(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    """Mounted Secrets (routing key) reach running relays as file updates: no roll. The
    database URI is an environment variable: its rotation rolls the pods."""
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY}), NS)
    kube.put(secret("db", uri="postgresql://relay:one@db.example:5432/pb"), NS)
    postgres = {"storage": "PostgreSQL", "database": {"uriSecretRef": {"name": "db", "key": "uri"}}}
    kube.put(integration(relay=postgres, sync={"notes": False}), NS)
    await reconciler.reconcile_integration(NS, "pay")
    first = _pod_annotations(kube)
    db = kube.find("Secret", NS, "db")
    assert db is not None
    assert first[ANNOTATION_ENV_SECRET_VERSION] == db["metadata"]["resourceVersion"]

    other_key = "fedcba9876543210fedcba9876543210"
    await kube.merge_patch(
        FakeKube.resource("Secret"),
        NS,
        "pd",
        {"data": {"routing-key": base64.b64encode(other_key.encode()).decode()}},
    )
    assert await check_queues_a_reconcile(kube, reconciler)
    await reconciler.reconcile_integration(NS, "pay")
    assert _pod_annotations(kube) == first  # a mounted file: the kubelet updates it

    new_uri = base64.b64encode(b"postgresql://relay:two@db.example:5432/pb").decode()
    await kube.merge_patch(FakeKube.resource("Secret"), NS, "db", {"data": {"uri": new_uri}})
    assert await check_queues_a_reconcile(kube, reconciler)
    await reconciler.reconcile_integration(NS, "pay")
    rolled = _pod_annotations(kube)
    assert rolled[ANNOTATION_ENV_SECRET_VERSION] != first[ANNOTATION_ENV_SECRET_VERSION]
    assert "two@" not in str(kube.find("Deployment", NS, "pay-relay"))


async def test_a_relay_that_refuses_its_outbox_says_why_on_the_integration(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    """storage PostgreSQL, the relay unready: the operator reads its /readyz through the
    API server's pod proxy and reports the refusal line as RelayAvailable OutboxNotOwned;
    once the relay serves, RelayReady again."""
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY}), NS)
    kube.put(secret("db", uri="postgresql://victim:pw@db.example:5432/pb"), NS)
    postgres = {"storage": "PostgreSQL", "database": {"uriSecretRef": {"name": "db", "key": "uri"}}}
    kube.put(integration(relay=postgres, sync={"notes": False}), NS)
    await reconciler.reconcile_integration(NS, "pay")
    deployment = kube.find("Deployment", NS, "pay-relay")
    assert deployment is not None
    deployment["status"] = {
        "observedGeneration": deployment["metadata"]["generation"],
        "replicas": 1,
        "readyReplicas": 0,
        "conditions": [
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}
        ],
    }
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    kube.put(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "pay-relay-abc12", "labels": labels},
            "status": {"phase": "Running"},
        },
        NS,
    )
    line = (
        "outbox refused: schema pagerbridge_0123 is owned by role 'squatter', not by the "
        "relay's role 'victim'; give the integration a schema its own role created (one "
        "PostgreSQL role per integration)"
    )
    readyz = f"/api/v1/namespaces/{NS}/pods/pay-relay-abc12:9090/proxy/readyz"
    kube.proxied[readyz] = (503, {"ready": False, "outbox": line})
    await reconciler.reconcile_integration(NS, "pay")
    body = kube.find("PagerDutyIntegration", NS, "pay")
    relay = condition(body, c.RELAY_AVAILABLE)
    assert (relay["status"], relay["reason"], relay["message"]) == (c.FALSE, "OutboxNotOwned", line)
    assert condition(body)["status"] == c.FALSE
    assert ("GET", readyz) in kube.requests

    # The platform team fixes it; the relay serves and the Deployment says so.
    kube.proxied[readyz] = (200, {"ready": True, "outbox": "writable"})
    ready_relay(kube)
    await reconciler.reconcile_integration(NS, "pay")
    relay = condition(kube.find("PagerDutyIntegration", NS, "pay"), c.RELAY_AVAILABLE)
    assert (relay["status"], relay["reason"]) == (c.TRUE, "RelayReady")


async def test_a_sqlite_relay_is_never_probed(kube: FakeKube, reconciler: Reconciler) -> None:
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY}), NS)
    kube.put(integration(), NS)
    await reconciler.reconcile_integration(NS, "pay")
    await reconciler.reconcile_integration(NS, "pay")
    assert kube.requests == []
