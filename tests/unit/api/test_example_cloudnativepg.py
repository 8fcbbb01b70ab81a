"""examples/cloudnativepg: one PostgreSQL role per integration, and the pieces agree.

Each integration's schema in the CloudNativePG Database is the one the operator gives its
relay (api.contract.outbox_schema), owned by that integration's own role; its URI Secret
is in its own namespace, named as the chart's "{name}-outbox-db" default makes it, and
logs in as that same role; no role owns two schemas; the integrations parse with the
models."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from pagerbridge.api import PagerDutyIntegrationSpec
from pagerbridge.api.contract import outbox_schema
from pagerbridge.api.integration import RelayStorage
from pagerbridge.controller.settings import DatabaseDefault

EXAMPLE = (
    Path(__file__).resolve().parents[3]
    / "examples"
    / "cloudnativepg"
    / "one-role-per-integration.yaml"
)


def _docs() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(EXAMPLE.read_text()) if doc]


def test_one_role_one_schema_one_secret_per_integration() -> None:
    docs = _docs()
    integrations = [d for d in docs if d["kind"] == "PagerDutyIntegration"]
    assert len(integrations) >= 2
    (database,) = [d for d in docs if d["kind"] == "Database"]
    owners = {s["name"]: s["owner"] for s in database["spec"]["schemas"]}
    (cluster,) = [d for d in docs if d["kind"] == "Cluster"]
    roles = {r["name"]: r for r in cluster["spec"]["managed"]["roles"]}
    secrets = {
        (d["metadata"]["namespace"], d["metadata"]["name"]): d
        for d in docs
        if d["kind"] == "Secret"
    }
    default = DatabaseDefault("{name}-outbox-db")
    seen_roles = set()
    for integration in integrations:
        namespace, name = integration["metadata"]["namespace"], integration["metadata"]["name"]
        spec = PagerDutyIntegrationSpec.model_validate(integration["spec"])
        assert spec.relay.effective_storage is RelayStorage.POSTGRESQL
        schema = outbox_schema(namespace, name)
        role = owners[schema]
        assert role not in seen_roles  # one role per integration
        seen_roles.add(role)
        assert roles[role]["login"] is True
        for power in ("superuser", "createdb", "createrole", "replication", "bypassrls"):
            assert roles[role][power] is False, (role, power)
        uri = secrets[(namespace, default.for_integration(name).name)]["stringData"]["uri"]
        assert urlsplit(uri).username == role
    assert len(owners) == len(integrations)
