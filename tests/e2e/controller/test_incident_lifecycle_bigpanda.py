"""BigPanda → PagerDuty incident lifecycle (issue 28): snooze, unsnooze and flapping, end
to end: the real API server, the operator, its relay and both simulators, BigPanda
sharing through the Webhook v2 integration the operator manages.

``sync.snooze`` off: BigPanda's snoozed trigger is not enabled and a snoozed incident's
updates never acknowledge. On: the trigger is enabled, a snooze acknowledges the
PagerDuty incident and an unsnooze leaves it acknowledged (docs/relay.md's state table).
``sync.flapping``: a flapping incident is sent with the chosen severity and detail."""

from __future__ import annotations

import httpx
import pytest
import yaml

from pagerbridge_devkit.localcluster.kubelet import (
    ANNOTATION_INTERNAL_URL,
    ANNOTATION_URL,
    HarnessKubelet,
)
from pagerbridge_devkit.sandbox.bigpanda import DEFAULT_API_TOKEN as BP_API_KEY
from pagerbridge_devkit.sandbox.bigpanda import BigPandaSimulator
from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_ROUTING_KEY, PagerDutySimulator

from ..conftest import Cluster
from .conftest import OperatorProcess, condition, get_json, merge_patch, wait_for

pytestmark = pytest.mark.e2e

NAME = "lifecycle"
INTEGRATION_ID = "webhook_v2.pb-lifecycle"
FLAPPING = {"severity": "warning", "customDetail": {"key": "flapping_hint", "value": "noisy"}}
ALERT = {"status": "critical", "host": "db-1", "description": "disk full"}


def metric(internal_url: str, name: str) -> float:
    text = httpx.get(internal_url + "/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rpartition(" ")[2])
    return total


def test_snooze_unsnooze_and_flapping_reach_pagerduty(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    kubelet: HarnessKubelet,
    pagerduty: tuple[PagerDutySimulator, str],
    bigpanda: tuple[BigPandaSimulator, str],
) -> None:
    pd, pd_url = pagerduty
    bp, bp_url = bigpanda
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
                "pagerDuty": {
                    "routingKey": {"name": "keys", "key": "routing-key"},
                    "eventsUrl": pd_url,
                },
                "bigPanda": {"apiUrl": bp_url},
                "sync": {"notes": False},
            },
        },
    ]
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(docs))
    cluster.kubectl(
        "wait", "-n", namespace, "--for=condition=Ready", f"pdi/{NAME}", "--timeout=60s", timeout=70
    )
    annotations = get_json(cluster, namespace, "deployment", f"{NAME}-relay")["metadata"][
        "annotations"
    ]
    relay_url, internal_url = annotations[ANNOTATION_URL], annotations[ANNOTATION_INTERNAL_URL]
    merge_patch(
        cluster,
        namespace,
        "pdi",
        NAME,
        {
            "spec": {
                "bigPanda": {
                    "apiToken": {"name": "keys", "key": "bp-user-key"},
                    "webhook": {"mode": "Managed", "integrationName": "pb-lifecycle"},
                },
                "relay": {"publicUrl": relay_url},
            }
        },
    )
    wait_for(
        lambda: (
            condition(get_json(cluster, namespace, "pdi", NAME), "BigPandaWebhookConfigured").get(
                "status"
            )
            == "True"
        ),
        30,
        "BigPandaWebhookConfigured",
    )

    def workflow_has(trigger: str) -> bool:
        stored = bp.integration(INTEGRATION_ID)
        return stored is not None and stored.workflow_config.event_for(trigger) is not None

    assert workflow_has("incident#new")
    assert not workflow_has("incident#snoozed")
    assert not workflow_has("incident#become-flapping")

    def events(incident_id: str) -> list[str]:
        found = pd.incident_by_key(incident_id)
        return [e["event_action"] for e in found.events] if found else []

    def drained() -> None:
        assert bp.wait_webhooks_idle(10)
        wait_for(
            lambda: metric(internal_url, "pagerbridge_relay_outbox_pending") == 0,
            30,
            "the relay's outbox drained",
        )

    # sync.snooze off: the snooze is not even shared; the next update, snoozed, is an
    # update and no more.
    quiet = bp.open_incident([dict(ALERT)])
    wait_for(lambda: pd.incident_by_key(quiet.id), 30, "PagerDuty incident")
    shared = len(bp.webhook_deliveries)
    bp.snooze_incident(quiet.id)
    assert bp.wait_webhooks_idle(10)
    assert len(bp.webhook_deliveries) == shared  # incident#snoozed: not enabled
    bp.update_incident(quiet.id, alerts=[dict(ALERT), {**ALERT, "host": "db-2"}])
    wait_for(lambda: len(events(quiet.id)) == 2, 30, "the snoozed incident's update")
    drained()
    assert events(quiet.id) == ["trigger", "trigger"]
    assert pd.incident_by_key(quiet.id).status == "triggered"  # type: ignore[union-attr]

    # sync.snooze and sync.flapping on: BigPanda's triggers follow, the relay reloads.
    reloads = metric(internal_url, 'pagerbridge_relay_config_reloads_total{result="ok"}')
    merge_patch(
        cluster, namespace, "pdi", NAME, {"spec": {"sync": {"snooze": True, "flapping": FLAPPING}}}
    )
    wait_for(lambda: workflow_has("incident#snoozed"), 30, "the snoozed trigger in BigPanda")
    assert workflow_has("incident#become-flapping")
    wait_for(
        lambda: (
            metric(internal_url, 'pagerbridge_relay_config_reloads_total{result="ok"}') > reloads
        ),
        30,
        "the relay to reload its config",
    )

    # A snooze acknowledges the PagerDuty incident.
    loud = bp.open_incident([dict(ALERT)])
    wait_for(lambda: pd.incident_by_key(loud.id), 30, "PagerDuty incident")
    bp.snooze_incident(loud.id)
    wait_for(
        lambda: pd.incident_by_key(loud.id).status == "acknowledged",  # type: ignore[union-attr]
        30,
        "PagerDuty incident acknowledged",
    )
    assert events(loud.id) == ["trigger", "trigger", "acknowledge"]

    # The unsnooze: an update, de-duplicated into the acknowledged incident, which stays
    # acknowledged and pages nobody again.
    bp.unsnooze_incident(loud.id)
    wait_for(lambda: len(events(loud.id)) == 4, 30, "the unsnooze's update")
    drained()
    found = pd.incident_by_key(loud.id)
    assert found is not None
    assert events(loud.id)[3:] == ["trigger"]
    assert found.status == "acknowledged"
    assert len(found.notified) == 1

    # Flapping (shared as incident#become-flapping): the chosen severity and detail.
    bp.update_incident(loud.id, flapping=True)
    wait_for(lambda: len(events(loud.id)) == 5, 30, "the flapping update")
    payload = pd.incident_by_key(loud.id).events[-1]["payload"]  # type: ignore[union-attr]
    assert payload["severity"] == "warning"
    assert payload["custom_details"]["flapping_hint"] == "noisy"
    assert payload["custom_details"]["flapping"] is True

    # And a resolve after all of it resolves.
    bp.resolve_incident(loud.id)
    wait_for(
        lambda: pd.incident_by_key(loud.id).status == "resolved",  # type: ignore[union-attr]
        30,
        "PagerDuty incident resolved",
    )
    assert len(pd.incidents()) == 2
