"""storage PostgreSQL: the relay Deployment, its budget and the database Secret reference."""

from __future__ import annotations

from typing import Any

import pytest

from pagerbridge.api import PagerDutyIntegrationSpec, SecretKeyRef
from pagerbridge.api.contract import OUTBOX_DSN_ENV, OUTBOX_SCHEMA_ENV, outbox_schema
from pagerbridge.controller.errors import DatabaseNotConfigured, SecretNotFound
from pagerbridge.controller.render.children import render_children
from pagerbridge.controller.render.compile import compile_relay_config
from pagerbridge.controller.render.status import storage_condition
from pagerbridge.controller.state.observed import SecretInfo

from .builders import OWNER, SETTINGS, routing_key_secret
from .builders import relay_spec as spec

SECRETS = {
    "pd": routing_key_secret(),
    "db": SecretInfo(keys=frozenset({"uri"})),
    "shared-db": SecretInfo(keys=frozenset({"dsn"})),
}
DEFAULT_DB = SecretKeyRef(name="shared-db", key="dsn")


def children(s: PagerDutyIntegrationSpec, default: SecretKeyRef | None = None) -> Any:
    compiled = compile_relay_config(
        OWNER.namespace,
        OWNER.name,
        s,
        [],
        [],
        SECRETS,
        webhook_secret=False,
        default_database=default,
    )
    return render_children(OWNER, s, compiled, SETTINGS)


POSTGRES = {"storage": "PostgreSQL", "database": {"uriSecretRef": {"name": "db", "key": "uri"}}}


def _container(rendered: Any) -> dict[str, Any]:
    container: dict[str, Any] = rendered.deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def test_the_uri_reaches_the_relay_only_by_secret_reference() -> None:
    rendered = children(spec(**POSTGRES, replicas=3))
    env = {item["name"]: item for item in _container(rendered)["env"]}
    assert env[OUTBOX_DSN_ENV] == {
        "name": OUTBOX_DSN_ENV,
        "valueFrom": {"secretKeyRef": {"name": "db", "key": "uri"}},
    }
    assert env[OUTBOX_SCHEMA_ENV]["value"] == outbox_schema("team-a", "payments")
    # The database Secret is not mounted as a file, and no claim is made.
    volumes = rendered.deployment["spec"]["template"]["spec"]["volumes"]
    assert all(v.get("secret", {}).get("secretName") != "db" for v in volumes)
    assert rendered.outbox_claim is None
    assert rendered.deployment["spec"]["replicas"] == 3


def test_replicas_roll_one_at_a_time_and_drain_before_sigterm() -> None:
    rendered = children(spec(**POSTGRES, replicas=2))
    assert rendered.deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    assert _container(rendered)["lifecycle"]["preStop"]["sleep"]["seconds"] > 0
    budget = rendered.disruption_budget
    assert budget is not None
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"] == rendered.deployment["spec"]["selector"]
    assert budget["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert [m["kind"] for m in rendered.applied()][-1] == "Deployment"
    assert rendered.absent() == []


@pytest.mark.parametrize(
    "relay",
    [{**POSTGRES, "replicas": 1}, {}, {"storage": "Ephemeral"}],
    ids=["postgres-single", "persistent", "ephemeral"],
)
def test_no_budget_without_two_sharing_replicas(relay: dict[str, Any]) -> None:
    rendered = children(spec(**relay))
    assert rendered.disruption_budget is None
    assert rendered.absent() == ["PodDisruptionBudget"]


def test_the_operator_default_database_is_a_secret_of_the_integrations_namespace() -> None:
    rendered = children(spec(storage="PostgreSQL"), default=DEFAULT_DB)
    env = {item["name"]: item for item in _container(rendered)["env"]}
    assert env[OUTBOX_DSN_ENV]["valueFrom"]["secretKeyRef"] == {"name": "shared-db", "key": "dsn"}
    # The integration's own reference wins over the default.
    rendered = children(spec(**POSTGRES), default=DEFAULT_DB)
    env = {item["name"]: item for item in _container(rendered)["env"]}
    assert env[OUTBOX_DSN_ENV]["valueFrom"]["secretKeyRef"]["name"] == "db"


def test_postgres_without_any_database_is_a_named_condition() -> None:
    with pytest.raises(DatabaseNotConfigured, match=r"relay\.database\.uriSecretRef"):
        children(spec(storage="PostgreSQL"))


def test_a_missing_database_secret_or_key_is_named() -> None:
    missing = {
        "storage": "PostgreSQL",
        "database": {"uriSecretRef": {"name": "nope", "key": "uri"}},
    }
    with pytest.raises(SecretNotFound, match=r"nope.*spec\.relay\.database\.uriSecretRef"):
        children(spec(**missing))
    wrong_key = {"storage": "PostgreSQL", "database": {"uriSecretRef": {"name": "db", "key": "x"}}}
    with pytest.raises(SecretNotFound, match="no key 'x'"):
        children(spec(**wrong_key))


def test_schemas_are_distinct_per_integration_and_valid_identifiers() -> None:
    pairs = [("team", "a-x"), ("team-a", "x"), ("a", "b"), ("a", "b" * 253)]
    schemas = {outbox_schema(ns, name) for ns, name in pairs}
    assert len(schemas) == len(pairs)
    for schema in schemas:
        assert len(schema) <= 63
        assert schema.isidentifier()
        assert schema == schema.lower()


def test_outbox_durable_says_postgresql() -> None:
    condition = storage_condition(spec(**POSTGRES).relay.effective_storage)
    assert (condition.status, condition.reason) == ("True", "PostgreSQL")
