"""storage PostgreSQL on a real API server: what the API server refuses, and the children
the real operator keeps (relay Deployment with the database by Secret reference, rolling
updates, a PodDisruptionBudget only while two or more replicas share the outbox)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import yaml

from pagerbridge.api.contract import OUTBOX_DSN_ENV, OUTBOX_SCHEMA_ENV, outbox_schema
from pagerbridge.controller.settings import RELAY_DATABASE_KEY_ENV, RELAY_DATABASE_SECRET_ENV

from ..conftest import Cluster
from .conftest import (
    OperatorProcess,
    condition,
    get_json,
    integration,
    merge_patch,
    pd_secret,
    wait_for,
)

pytestmark = pytest.mark.e2e

DSN = "postgresql://relay:s3cr3t-db-password@db.example:5432/pagerbridge"


def db_secret(name: str, key: str = "uri") -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name},
            "data": {key: base64.b64encode(DSN.encode()).decode()},
        }
    )


def test_replicas_above_one_need_a_shared_outbox(
    cluster: Cluster, namespace: str, pagerduty: tuple[Any, str]
) -> None:
    _, pd_url = pagerduty
    refused = cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=integration("two-files", pd_url, {"replicas": 2}),
        check=False,
    )
    assert refused.returncode != 0
    assert "relay.replicas above 1 needs relay.storage PostgreSQL" in refused.stderr
    accepted = cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=integration("two-shared", pd_url, {"replicas": 2, "storage": "PostgreSQL"}),
        check=False,
    )
    assert accepted.returncode == 0, accepted.stderr


def _relay_container(deployment: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def test_the_operator_runs_replicas_on_the_database_and_budgets_their_disruptions(
    cluster: Cluster, namespace: str, operator: OperatorProcess, pagerduty: tuple[Any, str]
) -> None:
    _, pd_url = pagerduty
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=pd_secret())
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=db_secret("orders-db"))
    relay = {
        "replicas": 2,
        "storage": "PostgreSQL",
        "database": {"uriSecretRef": {"name": "orders-db", "key": "uri"}},
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=integration("orders", pd_url, relay))

    deployment = wait_for(
        lambda: get_json(cluster, namespace, "deployment", "orders-relay"),
        timeout=60.0,
        what="relay Deployment",
    )
    env = {item["name"]: item for item in _relay_container(deployment).get("env", [])}
    assert env[OUTBOX_DSN_ENV]["valueFrom"] == {"secretKeyRef": {"name": "orders-db", "key": "uri"}}
    assert env[OUTBOX_SCHEMA_ENV]["value"] == outbox_schema(namespace, "orders")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert _relay_container(deployment)["lifecycle"]["preStop"]["sleep"]["seconds"] > 0

    budget = wait_for(
        lambda: get_json(cluster, namespace, "poddisruptionbudget", "orders-relay"),
        timeout=60.0,
        what="relay PodDisruptionBudget",
    )
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"] == deployment["spec"]["selector"]
    owner = get_json(cluster, namespace, "pagerdutyintegration", "orders")
    assert budget["metadata"]["ownerReferences"][0]["uid"] == owner["metadata"]["uid"]
    durable = wait_for(
        lambda: (
            (
                c := condition(
                    get_json(cluster, namespace, "pagerdutyintegration", "orders"), "OutboxDurable"
                )
            )
            and c.get("reason") == "PostgreSQL"
            and c
        ),
        timeout=60.0,
        what="OutboxDurable PostgreSQL",
    )
    assert durable["status"] == "True"

    # Down to one replica: the budget goes (it could only block drains).
    merge_patch(
        cluster, namespace, "pagerdutyintegration", "orders", {"spec": {"relay": {"replicas": 1}}}
    )
    wait_for(
        lambda: get_json(cluster, namespace, "poddisruptionbudget", "orders-relay") is None,
        timeout=60.0,
        what="PodDisruptionBudget removed",
    )

    # The URI is only ever referenced: never in the ConfigMap, status, Events or the log.
    documents = [
        json.dumps(get_json(cluster, namespace, "configmap", "orders-relay")),
        json.dumps(get_json(cluster, namespace, "pagerdutyintegration", "orders")),
        json.dumps(get_json(cluster, namespace, "events")),
        operator.log(),
    ]
    for text in documents:
        assert "s3cr3t-db-password" not in text


def test_without_a_database_the_integration_says_so_and_the_default_secret_fixes_it(
    cluster: Cluster, namespace: str, operator: OperatorProcess, pagerduty: tuple[Any, str]
) -> None:
    _, pd_url = pagerduty
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=pd_secret())
    cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=integration("lone", pd_url, {"storage": "PostgreSQL"}),
    )
    ready = wait_for(
        lambda: (
            (c := condition(get_json(cluster, namespace, "pagerdutyintegration", "lone")))
            and c.get("reason") == "DatabaseNotConfigured"
            and c
        ),
        timeout=60.0,
        what="Ready False DatabaseNotConfigured",
    )
    assert ready["status"] == "False"
    assert "relay.database.uriSecretRef" in ready["message"]
    assert get_json(cluster, namespace, "deployment", "lone-relay") is None

    # The chart's default: a Secret name each integration finds in its own namespace.
    operator.stop()
    operator.extra_env.update(
        {RELAY_DATABASE_SECRET_ENV: "platform-db", RELAY_DATABASE_KEY_ENV: "dsn"}
    )
    operator.start()
    waiting = wait_for(
        lambda: (
            (c := condition(get_json(cluster, namespace, "pagerdutyintegration", "lone")))
            and c.get("reason") == "SecretNotFound"
            and c
        ),
        timeout=60.0,
        what="Ready False SecretNotFound for the default database Secret",
    )
    assert "platform-db" in waiting["message"]
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=db_secret("platform-db", "dsn"))
    deployment = wait_for(
        lambda: get_json(cluster, namespace, "deployment", "lone-relay"),
        timeout=60.0,
        what="relay Deployment",
    )
    env = {item["name"]: item for item in _relay_container(deployment)["env"]}
    assert env[OUTBOX_DSN_ENV]["valueFrom"]["secretKeyRef"] == {"name": "platform-db", "key": "dsn"}
