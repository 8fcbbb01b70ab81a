"""Managed mode against a BigPanda that masks ``authorization`` on read (issue 19): drift
detection compares only what BigPanda returns faithfully, and remembers a digest of the
secret fields it wrote, so a resting integration causes no writes at all."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from pagerbridge_devkit.ports import free_port
from pagerbridge_devkit.sandbox.bigpanda import DEFAULT_API_TOKEN as BP_API_KEY
from pagerbridge_devkit.sandbox.bigpanda import BigPandaSimulator
from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_ROUTING_KEY

from ..conftest import Cluster
from .conftest import OperatorProcess, condition, get_json, wait_for

pytestmark = pytest.mark.e2e

NAME = "drift"
INTEGRATION_ID = "webhook_v2.pb-drift"
ITEM = f"/resources/v2.1/integrations/{INTEGRATION_ID}"
RECHECKS = 10


@pytest.fixture
def fast_operator(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    """The operator re-checking every half second (its resync setting), so ten re-checks
    take seconds, not the default fifty minutes."""
    proc = OperatorProcess(
        cluster,
        namespace,
        tmp_path / "operator.log",
        free_port(),
        free_port(),
        extra_env={"PAGERBRIDGE_RESYNC_SECONDS": "0.5"},
    )
    proc.start()
    yield proc
    proc.stop()


def writes(bp: BigPandaSimulator) -> dict[str, int]:
    return {
        "POST": len(bp.requests.matching("POST", "/resources/v2.1/integrations")),
        "PATCH": len(bp.requests.matching("PATCH", "/resources/v2.1/integrations")),
    }


def rechecks(bp: BigPandaSimulator) -> int:
    """Each re-check of the integration reads it from BigPanda once."""
    return len(bp.requests.matching("GET", ITEM))


def wait_rechecks(bp: BigPandaSimulator, count: int = RECHECKS) -> None:
    start = rechecks(bp)
    wait_for(lambda: rechecks(bp) >= start + count, 60, f"{count} re-checks")


def test_resting_managed_integration_never_writes_and_rotation_writes_once(
    cluster: Cluster,
    namespace: str,
    fast_operator: OperatorProcess,
    bigpanda: tuple[BigPandaSimulator, str],
) -> None:
    bp, bp_url = bigpanda
    assert bp.integrations_api.mask_authorization  # the simulator's default, like BigPanda
    docs = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "keys"},
            "stringData": {"routing-key": DEFAULT_ROUTING_KEY, "bp-user-key": BP_API_KEY},
        },
        {
            "apiVersion": "pagerbridge.io/v1alpha1",
            "kind": "PagerDutyIntegration",
            "metadata": {"name": NAME},
            "spec": {
                "pagerDuty": {"routingKey": {"name": "keys", "key": "routing-key"}},
                "bigPanda": {
                    "apiUrl": bp_url,
                    "apiToken": {"name": "keys", "key": "bp-user-key"},
                    "webhook": {"mode": "Managed", "integrationName": "pb-drift"},
                },
                "relay": {"publicUrl": "https://relay.example.com"},
                "sync": {"notes": False},
            },
        },
    ]
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(docs))

    def status() -> dict[str, object]:
        body = get_json(cluster, namespace, "pdi", NAME) or {}
        return dict((body.get("status") or {}).get("bigPandaWebhook") or {})

    wait_for(
        lambda: (
            condition(get_json(cluster, namespace, "pdi", NAME), "BigPandaWebhookConfigured").get(
                "status"
            )
            == "True"
            and status().get("authorizationDigest")
        ),
        60,
        "BigPandaWebhookConfigured with the digest of what was written",
    )
    answer = httpx.get(bp_url + ITEM, headers={"Authorization": f"Bearer {BP_API_KEY}"}).json()
    assert all(e["authorization"] == "********" for e in answer[0]["workflow_config"]["events"])
    digest = str(status()["authorizationDigest"])
    assert digest.startswith("sha256:")

    def tokens() -> list[str]:
        data = get_json(cluster, namespace, "secret", f"{NAME}-relay-token")["data"]["token"]
        return base64.b64decode(data).decode().split()

    (token,) = tokens()
    assert token not in digest

    # At rest: ten re-checks, each a GET, and not one write.
    assert writes(bp) == {"POST": 1, "PATCH": 0}
    wait_rechecks(bp)
    assert writes(bp) == {"POST": 1, "PATCH": 0}

    # A restarted operator (no memory) trusts the digest in status: still no write.
    fast_operator.stop()
    fast_operator.start()
    wait_rechecks(bp)
    assert writes(bp) == {"POST": 1, "PATCH": 0}

    # A token rotation: exactly one PATCH (when BigPanda switches to the new token).
    cluster.kubectl("annotate", "-n", namespace, "pdi", NAME, "pagerbridge.io/rotate-token=r1")
    rotated = wait_for(lambda: len(tokens()) == 2 and tokens()[1], 30, "old and new token")
    wait_for(lambda: tokens() == [rotated], 30, "old token dropped")
    stored = bp.integration(INTEGRATION_ID)
    assert stored is not None
    assert all(e.authorization == f"Bearer {rotated}" for e in stored.workflow_config.events)
    wait_rechecks(bp)
    assert writes(bp) == {"POST": 1, "PATCH": 1}
    wait_for(lambda: status().get("authorizationDigest") not in (None, digest), 30, "new digest")

    # Deleted in BigPanda: recreated (one POST, with the current token), then rests again.
    gone = httpx.delete(bp_url + ITEM, headers={"Authorization": f"Bearer {BP_API_KEY}"})
    assert gone.status_code == 204
    wait_for(lambda: bp.integration(INTEGRATION_ID) is not None, 30, "recreated")
    recreated = bp.integration(INTEGRATION_ID)
    assert recreated is not None
    assert all(e.authorization == f"Bearer {rotated}" for e in recreated.workflow_config.events)
    wait_rechecks(bp)
    assert writes(bp) == {"POST": 2, "PATCH": 1}
    for value in (token, rotated, BP_API_KEY):
        assert value not in fast_operator.log()
