"""The typed status as a merge patch: what a reconcile established is set, what no longer
applies is removed (None), and what it did not reach is left as written."""

from __future__ import annotations

from pagerbridge.api import ConditionReason
from pagerbridge.api.integration import RelayStatus
from pagerbridge.controller.reconcile import assemble
from pagerbridge.controller.reconcile.status_writer import serialise
from pagerbridge.controller.render import conditions as c
from pagerbridge.controller.render.conditions import ConditionUpdate
from pagerbridge.controller.state.observed import IntegrationInfo, integration_info
from pagerbridge.controller.steps.children import RelayResult

from .builders import OWNER, spec

STARTING = ConditionUpdate(
    c.RELAY_AVAILABLE, c.UNKNOWN, ConditionReason.RELAY_STARTING, "relay Deployment being created"
)
WRITTEN = {
    "relay": {"serviceUrl": "http://old", "publicUrl": "https://old.example", "readyReplicas": 1},
    "pagerDutySubscription": {"id": "PSUB1"},
    "bigPandaWebhook": {"url": "https://old.example/v1/bigpanda/webhook", "integrationId": "i1"},
}


def _info(status: dict[str, object]) -> IntegrationInfo:
    return integration_info(
        {
            "metadata": {"namespace": OWNER.namespace, "name": OWNER.name, "uid": OWNER.uid,
                         "generation": 4},
            "spec": {},
            "status": status,
        }
    )  # fmt: skip


def test_what_no_longer_applies_is_removed_and_what_was_not_reached_is_kept() -> None:
    relay = RelayResult(
        STARTING,
        relay=RelayStatus.model_validate({"service_url": "http://new", "ready_replicas": 0}),
    )
    waiting = ConditionUpdate(
        c.SECRETS_RESOLVED, c.FALSE, ConditionReason.SECRET_NOT_FOUND, "Secret pd not found"
    )
    patch = serialise(
        assemble.integration_status(_info(WRITTEN), OWNER, spec(), waiting, None, relay).status
    )
    assert patch["observedGeneration"] == 4
    assert patch["relay"] == {"serviceUrl": "http://new", "readyReplicas": 0, "publicUrl": None}
    assert patch["pagerDutySubscription"] is None  # the subscription step did not confirm it
    assert "bigPandaWebhook" not in patch  # nothing compiled: what BigPanda was told stays
    ready = c.find(patch["conditions"], c.READY)
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("False", "SecretNotFound")


def test_a_spec_refused_before_converging_writes_only_its_conditions() -> None:
    refused = ConditionUpdate(
        c.SECRETS_RESOLVED, c.FALSE, ConditionReason.INVALID_SPEC, "spec does not validate"
    )
    status = assemble.integration_status(
        _info(WRITTEN), OWNER, None, refused, None, RelayResult(STARTING)
    ).status
    assert set(serialise(status)) == {"observedGeneration", "conditions"}
