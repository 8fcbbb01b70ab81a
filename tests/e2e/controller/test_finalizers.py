"""Finalizers only where something outside the cluster must be cleaned up (issue 14.3): a
PagerDuty subscription or a Managed BigPanda integration. The periodic resync adds none,
so a namespace of plain integrations deletes while the operator is down."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from pagerbridge_devkit.ports import free_port
from pagerbridge_devkit.sandbox.pagerduty import (
    DEFAULT_API_TOKEN,
    DEFAULT_SERVICE_ID,
    PagerDutySimulator,
)

from ..conftest import Cluster
from .conftest import OperatorProcess, get_json, integration, merge_patch, pd_secret, wait_for

pytestmark = pytest.mark.e2e

FINALIZER = "pagerbridge.io/finalizer"


@pytest.fixture
def fast_operator(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    """The operator re-checking every half second (its resync setting)."""
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


def resyncs(operator: OperatorProcess) -> float:
    """``pagerbridge_operator_resyncs_total`` from the operator's metrics endpoint."""
    try:
        text = httpx.get(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return 0.0
    match = re.search(r"^pagerbridge_operator_resyncs_total (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def finalizers(cluster: Cluster, namespace: str, name: str) -> list[str]:
    body = get_json(cluster, namespace, "pdi", name) or {}
    return list(body.get("metadata", {}).get("finalizers") or [])


def test_plain_integration_has_no_finalizer_and_its_namespace_deletes_with_the_operator_down(
    cluster: Cluster,
    namespace: str,
    fast_operator: OperatorProcess,
    pagerduty: tuple[PagerDutySimulator, str],
) -> None:
    _, pd_url = pagerduty
    plain = yaml.safe_load(integration("plain", pd_url))
    # Ephemeral: the local control plane runs no pvc-protection controller, so a PVC (the
    # Persistent default) would hold the namespace for reasons of its own.
    plain["spec"]["relay"] = {"storage": "Ephemeral"}
    docs = pd_secret() + "---\n" + yaml.safe_dump(plain)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=docs)
    wait_for(
        lambda: (get_json(cluster, namespace, "pdi", "plain") or {}).get("status"),
        60,
        "a status",
    )
    # Several periodic re-checks of the integration have run: none added a finalizer.
    wait_for(lambda: resyncs(fast_operator) >= 5, 60, "five periodic re-checks")
    assert finalizers(cluster, namespace, "plain") == []

    fast_operator.stop()
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")
    wait_for(
        lambda: get_json(cluster, namespace, "pdi", "plain") is None,
        60,
        "the integration deleted while the operator is down",
    )
    wait_for(
        lambda: get_json(cluster, namespace, "namespace", namespace) is None,
        60,
        "the namespace deleted while the operator is down",
    )


def test_finalizer_comes_and_goes_with_the_external_objects(
    cluster: Cluster,
    namespace: str,
    fast_operator: OperatorProcess,
    pagerduty: tuple[PagerDutySimulator, str],
) -> None:
    _, pd_url = pagerduty
    rest = httpx.Client(
        base_url=pd_url,
        headers={
            "Authorization": f"Token token={DEFAULT_API_TOKEN}",
            "Accept": "application/vnd.pagerduty+json;version=2",
        },
    )

    def subscriptions() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = rest.get("/webhook_subscriptions").json()[
            "webhook_subscriptions"
        ]
        return items

    docs = pd_secret() + "---\n" + integration("grows", pd_url)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=docs)
    wait_for(
        lambda: (get_json(cluster, namespace, "pdi", "grows") or {}).get("status"), 60, "status"
    )
    assert finalizers(cluster, namespace, "grows") == []

    # A PagerDuty subscription: the finalizer comes with it.
    subscribed = {
        "spec": {
            "pagerDuty": {
                "apiToken": {"name": "pd-keys", "key": "api-token"},
                "serviceId": DEFAULT_SERVICE_ID,
                "apiUrl": pd_url,
            },
            "bigPanda": {
                "apiToken": {"name": "pd-keys", "key": "api-token"},
                "environmentId": "env1",
            },
            "relay": {"publicUrl": "https://relay.example.com"},
        }
    }
    merge_patch(cluster, namespace, "pdi", "grows", subscribed)
    wait_for(lambda: len(subscriptions()) == 1, 60, "the subscription")
    wait_for(lambda: finalizers(cluster, namespace, "grows") == [FINALIZER], 30, "the finalizer")

    # The subscription goes away: so does the finalizer (once it is deleted in PagerDuty).
    merge_patch(cluster, namespace, "pdi", "grows", {"spec": {"pagerDuty": {"serviceId": None}}})
    wait_for(lambda: subscriptions() == [], 60, "the subscription deleted")
    wait_for(lambda: finalizers(cluster, namespace, "grows") == [], 30, "no finalizer")
