"""The managed routing key (``pagerDuty.routingKey.managed``): the pure decisions, then
the lifecycle against the real PagerDuty simulator over HTTP (the in-memory Kubernetes
API the only double), including a crash between the create and the Secret write."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml
from pydantic import ValidationError

from pagerbridge.api import ConditionReason as Reason
from pagerbridge.api import PagerDutyIntegrationSpec
from pagerbridge.api.crdgen import render_all
from pagerbridge.clients.kubernetes import KubernetesError, Resource
from pagerbridge.clients.pagerduty_service_integrations import ServiceIntegration
from pagerbridge.controller import names as n
from pagerbridge.controller.errors import KubernetesUnavailable, NameConflict
from pagerbridge.controller.external import routing_key
from pagerbridge.controller.ownership import OwnerStamp
from pagerbridge.controller.reconcile.cleanup import needs_finalizer
from pagerbridge.controller.reconcile.reconciler import Reconciler
from pagerbridge.controller.render import conditions as c
from pagerbridge.controller.render.children import Owner
from pagerbridge.controller.settings import OperatorSettings
from pagerbridge.controller.state.observed import SecretInfo, SecretState
from pagerbridge.controller.steps.managed_routing_key import decide_without_calls
from pagerbridge_devkit.sandbox.pagerduty import (
    DEFAULT_API_TOKEN,
    DEFAULT_SERVICE_ID,
    PagerDutySimulator,
)
from pagerbridge_devkit.sandbox.server import BackgroundServer, loopback_egress_policy

from .builders import OWNER, SECRETS, compiled_for
from .fake_kube import FakeKube, FakeWorld
from .objects import NS, condition, ready_relay, secret

STAMP = OwnerStamp("cluster-1", OWNER.uid)
POLICY = loopback_egress_policy()


def managed_spec(api_url: str = "https://api.pagerduty.com", **pager_duty: Any) -> dict[str, Any]:
    return {
        "pagerDuty": {
            "routingKey": {"managed": True},
            "serviceId": DEFAULT_SERVICE_ID,
            "apiToken": {"name": "pd", "key": "api-token"},
            "apiUrl": api_url,
            **pager_duty,
        },
        "sync": {"notes": False},
    }


# -- the API shape -------------------------------------------------------------------


def test_routing_key_is_a_secret_key_or_managed_never_both_or_neither() -> None:
    parse = PagerDutyIntegrationSpec.model_validate
    assert parse(managed_spec()).pager_duty.routing_key.secret_ref is None
    ref = parse({"pagerDuty": {"routingKey": {"name": "pd", "key": "k"}}})
    assert ref.pager_duty.routing_key.secret_ref is not None
    for bad in (
        {"managed": True, "name": "pd", "key": "k"},
        {"managed": True, "key": "k"},
        {},
        {"name": "pd"},
        {"managed": False},
    ):
        with pytest.raises(ValidationError, match="either name and key"):
            parse({"pagerDuty": {"routingKey": bad}})


def test_the_crd_carries_both_rules_for_the_api_server() -> None:
    crd = yaml.safe_load(render_all()["pagerbridge.io_pagerdutyintegrations.yaml"])
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    routing = schema["properties"]["pagerDuty"]["properties"]["routingKey"]
    assert set(routing["properties"]) == {"name", "key", "managed"}
    assert "required" not in routing
    rules = routing["x-kubernetes-validations"]
    assert any("either name and key" in r["message"] for r in rules)
    # a Secret reference missing its key is reported on the key, as "Required value"
    assert {(r.get("fieldPath"), r.get("reason")) for r in rules} >= {
        (".key", "FieldValueRequired"),
        (".name", "FieldValueRequired"),
    }
    assert "Events API v2 integration" in routing["properties"]["managed"]["description"]
    rules = [r["message"] for r in schema["x-kubernetes-validations"]]
    assert any(
        m.startswith("pagerDuty.routingKey.managed needs pagerDuty.serviceId") for m in rules
    )


# -- pure decisions ------------------------------------------------------------------


def integration_of(id_: str, name: str, key: str | None = None) -> ServiceIntegration:
    return ServiceIntegration(id=id_, name=name, integration_key=key)


def test_sort_out_takes_ours_by_stamp_and_flags_an_unstamped_namesake() -> None:
    mine = routing_key.integration_name(OWNER, STAMP)
    other_cluster = routing_key.integration_name(OWNER, OwnerStamp("cluster-2", OWNER.uid))
    found = routing_key.sort_out(
        [
            integration_of("PB", mine),
            integration_of("PA", mine),
            integration_of("PC", other_cluster),
            integration_of("PD", "Datadog"),
        ],
        OWNER,
        STAMP,
    )
    assert found.mine is not None
    assert found.mine.id == "PA"
    assert found.duplicates == ("PB",)
    assert found.unstamped is None  # another owner's stamp is not a conflict

    bare = routing_key.sort_out(
        [integration_of("PE", routing_key.unstamped_name(OWNER))], OWNER, STAMP
    )
    assert bare.mine is None
    assert bare.unstamped == "PE"


def stored(**annotations: str) -> SecretState:
    return SecretState(
        NS,
        OWNER.names.routing_key_secret,
        SecretInfo(keys=frozenset({n.ROUTING_KEY_KEY})),
        OWNER.name,
        annotations=annotations,
        owner_uid=OWNER.uid,
    )


def test_a_secret_recording_the_spec_service_needs_no_call() -> None:
    current = routing_key.Recorded.of(
        stored(
            **{n.ANNOTATION_ROUTING_KEY_INTEGRATION: "PA", n.ANNOTATION_ROUTING_KEY_SERVICE: "PS"}
        )
    )
    assert current.current("PS")
    assert not current.current("POTHER")  # serviceId changed: a new integration
    assert not routing_key.Recorded.of(None).current("PS")
    assert not routing_key.Recorded.of(stored()).current("PS")


def test_without_a_rest_token_the_condition_names_it_and_nothing_is_called() -> None:
    assert decide_without_calls(False, False) is None
    assert decide_without_calls(True, True) is None
    verdict = decide_without_calls(True, False)
    assert verdict is not None
    assert (verdict.type, verdict.status, verdict.reason) == (
        c.ROUTING_KEY_READY,
        c.FALSE,
        Reason.API_TOKEN_REQUIRED,
    )


def test_a_managed_key_compiles_to_the_operators_secret_and_needs_a_finalizer() -> None:
    spec = PagerDutyIntegrationSpec.model_validate(managed_spec())
    compiled = compiled_for(spec)
    name = OWNER.names.routing_key_secret
    assert compiled.config.pager_duty.routing_key_file == n.secret_file(name, n.ROUTING_KEY_KEY)
    assert name in compiled.mounted_secrets
    assert "pd" in compiled.mounted_secrets  # the REST token's Secret
    assert needs_finalizer({"pagerDuty": {"routingKey": {"managed": True}}})
    assert needs_finalizer({}, {"pagerDutyRoutingKey": {"integrationId": "PA"}})
    assert not needs_finalizer({"pagerDuty": {"routingKey": {"name": "pd", "key": "k"}}})
    assert set(SECRETS)  # the user's routing key Secret is not needed by a managed key


# -- against the PagerDuty simulator -------------------------------------------------


@pytest.fixture
def pagerduty() -> Iterator[tuple[PagerDutySimulator, str]]:
    sim = PagerDutySimulator(strict_routing_keys=True)
    with BackgroundServer(sim.app) as server:
        yield sim, server.url
    sim.close()


class CrashingKube(FakeKube):
    """The operator dies (here: its writes fail) right after PagerDuty answered the create:
    the next Secret write fails once."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_secret_writes = 0

    async def create(self, manifest: dict[str, Any], resource: Resource | None = None) -> Any:
        if manifest.get("kind") == "Secret" and self.fail_secret_writes:
            self.fail_secret_writes -= 1
            raise KubernetesError("connection reset", 503)
        return await super().create(manifest, resource)


def held_key(kube: FakeKube, owner: Owner = OWNER) -> str | None:
    body = kube.find("Secret", owner.namespace, owner.names.routing_key_secret)
    if body is None:
        return None
    return base64.b64decode(body["data"][n.ROUTING_KEY_KEY]).decode()


def secret_state_of(kube: FakeKube, owner: Owner = OWNER) -> SecretState | None:
    return FakeWorld(kube).secret(owner.namespace, owner.names.routing_key_secret)


async def ensure(
    kube: FakeKube, url: str, *, verify: bool = False, stamp: OwnerStamp = STAMP
) -> routing_key.RoutingKeyOutcome:
    spec = PagerDutyIntegrationSpec.model_validate(managed_spec(url))
    return await routing_key.ensure(
        kube, OWNER, spec, secret_state_of(kube), verify=verify, policy=POLICY, stamp=stamp
    )


def events_land_on(pd: PagerDutySimulator, url: str, key: str, dedup: str) -> str | None:
    """Send a trigger with ``key``: the service of the incident it opened (None: refused)."""
    response = httpx.post(
        f"{url}/v2/enqueue",
        json={
            "routing_key": key,
            "event_action": "trigger",
            "dedup_key": dedup,
            "payload": {"summary": "disk full", "source": "db-1", "severity": "critical"},
        },
    )
    if response.status_code != 202:
        return None
    incident = pd.incident_by_key(dedup)
    return incident.service_id if incident is not None else None


async def test_created_once_its_key_held_and_routed_to_the_service(
    pagerduty: tuple[PagerDutySimulator, str],
) -> None:
    pd, url = pagerduty
    kube = FakeKube()
    kube.put(secret("pd", **{"api-token": DEFAULT_API_TOKEN}), NS)
    outcome = await ensure(kube, url)
    assert outcome.created
    assert not outcome.recreated
    (made,) = pd.service_integrations(DEFAULT_SERVICE_ID)
    assert made.type == "events_api_v2_inbound_integration"
    assert OwnerStamp.find(made.name) == STAMP
    key = held_key(kube)
    assert key == made.integration_key
    assert events_land_on(pd, url, key, "e1") == DEFAULT_SERVICE_ID

    # The Secret records it: no call at all the next time, one read at a verification.
    pd.requests.clear()
    assert not (await ensure(kube, url)).created
    assert pd.requests.entries == []
    again = await ensure(kube, url, verify=True)
    assert again.checked
    assert not again.created
    assert not again.restored
    assert [r.method for r in pd.requests.entries] == ["GET"]
    assert len(pd.service_integrations(DEFAULT_SERVICE_ID)) == 1


async def test_a_crash_between_create_and_secret_write_makes_no_duplicate(
    pagerduty: tuple[PagerDutySimulator, str],
) -> None:
    pd, url = pagerduty
    kube = CrashingKube()
    kube.put(secret("pd", **{"api-token": DEFAULT_API_TOKEN}), NS)
    kube.fail_secret_writes = 1
    with pytest.raises(KubernetesUnavailable):
        await ensure(kube, url)
    (made,) = pd.service_integrations(DEFAULT_SERVICE_ID)  # created, key nowhere yet
    assert held_key(kube) is None

    # The restarted operator (a fresh call, nothing remembered) finds it by its stamp.
    outcome = await ensure(kube, url)
    assert not outcome.created
    assert outcome.restored
    assert [i.id for i in pd.service_integrations(DEFAULT_SERVICE_ID)] == [made.id]
    assert held_key(kube) == made.integration_key


async def test_drift_is_repaired_deleted_integration_and_deleted_secret(
    pagerduty: tuple[PagerDutySimulator, str],
) -> None:
    pd, url = pagerduty
    kube = FakeKube()
    kube.put(secret("pd", **{"api-token": DEFAULT_API_TOKEN}), NS)
    await ensure(kube, url)
    (first,) = pd.service_integrations(DEFAULT_SERVICE_ID)
    old_key = held_key(kube)
    assert old_key is not None

    pd.delete_integration(first.id)  # a person deletes it in PagerDuty
    assert events_land_on(pd, url, old_key, "old") is None  # its key routes nothing now
    outcome = await ensure(kube, url, verify=True)
    assert outcome.created
    assert outcome.recreated
    (second,) = pd.service_integrations(DEFAULT_SERVICE_ID)
    assert second.id != first.id
    new_key = held_key(kube)
    assert new_key == second.integration_key
    assert new_key != old_key
    assert events_land_on(pd, url, new_key, "new") == DEFAULT_SERVICE_ID

    await kube.delete(Resource.builtin("Secret"), NS, OWNER.names.routing_key_secret)
    restored = await ensure(kube, url)  # the Secret's deletion triggers a reconcile
    assert restored.restored
    assert not restored.created
    assert held_key(kube) == new_key
    assert [i.id for i in pd.service_integrations(DEFAULT_SERVICE_ID)] == [second.id]


async def test_an_unstamped_namesake_is_never_adopted(
    pagerduty: tuple[PagerDutySimulator, str],
) -> None:
    pd, url = pagerduty
    kube = FakeKube()
    kube.put(secret("pd", **{"api-token": DEFAULT_API_TOKEN}), NS)
    pd.state.add_integration(
        DEFAULT_SERVICE_ID, "events_api_v2_inbound_integration", routing_key.unstamped_name(OWNER)
    )
    with pytest.raises(NameConflict, match="not created by this PagerDutyIntegration"):
        await ensure(kube, url)
    assert len(pd.service_integrations(DEFAULT_SERVICE_ID)) == 1
    assert held_key(kube) is None


async def test_remove_deletes_ours_and_orphan_leaves_it_working_unstamped(
    pagerduty: tuple[PagerDutySimulator, str],
) -> None:
    pd, url = pagerduty
    kube = FakeKube()
    kube.put(secret("pd", **{"api-token": DEFAULT_API_TOKEN}), NS)
    spec = PagerDutyIntegrationSpec.model_validate(managed_spec(url))
    foreign = pd.state.add_integration(DEFAULT_SERVICE_ID, "events_api_v2_inbound_integration", "x")

    await ensure(kube, url)
    key = held_key(kube)
    assert key is not None
    (made,) = [i for i in pd.service_integrations(DEFAULT_SERVICE_ID) if i.id != foreign.id]
    orphaned = await routing_key.orphan(kube, OWNER, spec, policy=POLICY, stamp=STAMP)
    assert orphaned == made.id
    names = {i.id: i.name for i in pd.service_integrations(DEFAULT_SERVICE_ID)}
    assert len(names) == 2
    assert routing_key.unstamped_name(OWNER) in names.values()
    assert events_land_on(pd, url, key, "orphan") == DEFAULT_SERVICE_ID

    pd.delete_integration(next(i for i, name in names.items() if i != foreign.id))
    await kube.delete(Resource.builtin("Secret"), NS, OWNER.names.routing_key_secret)
    await ensure(kube, url)
    assert await routing_key.remove(kube, OWNER, spec, policy=POLICY, stamp=STAMP)
    assert [i.id for i in pd.service_integrations(DEFAULT_SERVICE_ID)] == [foreign.id]
    assert not await routing_key.remove(kube, OWNER, spec, policy=POLICY, stamp=STAMP)


async def test_the_reconciler_writes_status_and_the_key_goes_nowhere_else(
    pagerduty: tuple[PagerDutySimulator, str],
) -> None:
    pd, url = pagerduty
    kube = FakeKube()
    kube.put(secret("pd", **{"api-token": DEFAULT_API_TOKEN}), NS)
    body = {
        "apiVersion": "pagerbridge.io/v1alpha1",
        "kind": "PagerDutyIntegration",
        "metadata": {"name": OWNER.name},
        "spec": managed_spec(url),
    }
    body["spec"]["relay"] = {"publicUrl": "https://relay.example.com"}
    body["spec"]["bigPanda"] = {
        "apiToken": {"name": "pd", "key": "api-token"},
        "environmentId": "e",
    }
    kube.put(body, NS)
    integration = kube.find("PagerDutyIntegration", NS, OWNER.name)
    assert integration is not None
    owner = Owner(NS, OWNER.name, integration["metadata"]["uid"])
    settings = OperatorSettings(resync_seconds=300.0, egress=POLICY, cluster_id="cluster-1")
    reconciler = Reconciler(kube, settings, FakeWorld(kube))
    await reconciler.reconcile_integration(NS, OWNER.name)
    ready_relay(kube, OWNER.name)
    await reconciler.reconcile_integration(NS, OWNER.name)

    status = kube.find("PagerDutyIntegration", NS, OWNER.name)
    (made,) = pd.service_integrations(DEFAULT_SERVICE_ID)
    assert condition(status, c.ROUTING_KEY_READY)["reason"] == Reason.ROUTING_KEY_MANAGED
    assert status is not None
    assert status["status"]["pagerDutyRoutingKey"] == {
        "integrationId": made.id,
        "serviceId": DEFAULT_SERVICE_ID,
        "secretName": owner.names.routing_key_secret,
    }
    key = held_key(kube, owner)
    assert key == made.integration_key
    config_map = kube.find("ConfigMap", NS, owner.names.relay)
    assert config_map is not None
    config = json.loads(config_map["data"][n.CONFIG_FILE_KEY])
    assert config["pagerDuty"]["routingKeyFile"] == n.secret_file(
        owner.names.routing_key_secret, n.ROUTING_KEY_KEY
    )
    deployment = kube.find("Deployment", NS, owner.names.relay)
    assert owner.names.routing_key_secret in json.dumps(deployment)
    events = kube.all("Event", NS)
    assert "RoutingKeyCreated" in [e["reason"] for e in events]
    for obj in (status, config_map, deployment, *events):
        assert key not in json.dumps(obj)

    # No REST token (the API server requires one with serviceId today; an account may
    # supply it later): Ready names the reason, PagerDuty is not called, status keeps
    # the record of what exists.
    pd.requests.clear()

    def edit(change: Any) -> None:
        current = kube.find("PagerDutyIntegration", NS, OWNER.name)
        assert current is not None
        change(current["spec"]["pagerDuty"])
        kube.put(current, NS)

    api_token = kube.find("PagerDutyIntegration", NS, OWNER.name)["spec"]["pagerDuty"]["apiToken"]  # type: ignore[index]
    edit(lambda pager_duty: pager_duty.pop("apiToken"))
    reconciler.integration_changed(NS, OWNER.name, verify=True)
    await reconciler.reconcile_integration(NS, OWNER.name)
    after = kube.find("PagerDutyIntegration", NS, OWNER.name)
    assert condition(after, c.READY)["reason"] == Reason.API_TOKEN_REQUIRED
    assert [r for r in pd.requests.entries if "/integrations" in r.path] == []
    assert after is not None
    assert after["status"]["pagerDutyRoutingKey"]["integrationId"] == made.id

    # Back to a Secret of the user's: ours is deleted in PagerDuty, with our Secret.
    kube.put(secret("pd", **{"api-token": DEFAULT_API_TOKEN, "routing-key": "a" * 32}), NS)
    edit(
        lambda pager_duty: pager_duty.update(
            apiToken=api_token, routingKey={"name": "pd", "key": "routing-key"}
        )
    )
    await reconciler.reconcile_integration(NS, OWNER.name)
    assert pd.service_integrations(DEFAULT_SERVICE_ID) == []
    assert held_key(kube, owner) is None
    final = kube.find("PagerDutyIntegration", NS, OWNER.name)
    assert final is not None
    assert "pagerDutyRoutingKey" not in final["status"]
