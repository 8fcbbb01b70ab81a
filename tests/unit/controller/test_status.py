"""Conditions and Ready: the first failing detail decides, transition times stay put,
kstatus Reconciling follows a rollout, informational conditions never decide, and the
overrides and mappings of a not-Ready integration say why."""

from __future__ import annotations

import pytest

from pagerbridge.api import ConditionReason
from pagerbridge.controller.render import conditions as c
from pagerbridge.controller.render.conditions import ConditionUpdate
from pagerbridge.controller.render.status import IntegrationOutcome, integration_conditions

RELAY_READY = ConditionReason.RELAY_READY
RELAY_STARTING = ConditionReason.RELAY_STARTING
RELAY_UNAVAILABLE = ConditionReason.RELAY_UNAVAILABLE

OK_SECRETS = ConditionUpdate(c.SECRETS_RESOLVED, c.TRUE, "SecretsFound", "")
OK_SUB = ConditionUpdate(c.SUBSCRIPTION_READY, c.TRUE, "NotConfigured", "")


def test_ready_takes_first_failing_reason_and_keeps_transition_time() -> None:
    missing = ConditionUpdate(
        c.SECRETS_RESOLVED, c.FALSE, "SecretNotFound", "Secret ns/pd not found"
    )
    relay_down = ConditionUpdate(c.RELAY_AVAILABLE, c.FALSE, "RelayUnavailable", "0/1")
    first = integration_conditions(
        IntegrationOutcome(missing, OK_SUB, relay_down), [], 3, "2026-01-01T00:00:00Z"
    )
    ready = c.find(first, c.READY)
    assert ready is not None
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == (
        "False",
        "SecretNotFound",
        3,
    )
    assert first[0]["type"] == c.READY

    again = integration_conditions(
        IntegrationOutcome(missing, OK_SUB, relay_down), first, 3, "2026-01-01T00:05:00Z"
    )
    assert c.find(again, c.READY)["lastTransitionTime"] == "2026-01-01T00:00:00Z"  # type: ignore[index]
    assert c.transitions(first, again) == []

    relay_up = ConditionUpdate(c.RELAY_AVAILABLE, c.TRUE, "RelayReady", "1/1")
    fixed = integration_conditions(
        IntegrationOutcome(OK_SECRETS, OK_SUB, relay_up, "http://x"),
        again,
        4,
        "2026-01-01T00:09:00Z",
    )
    ready = c.find(fixed, c.READY)
    assert ready is not None
    assert (ready["status"], ready["reason"], ready["lastTransitionTime"]) == (
        "True",
        "Ready",
        "2026-01-01T00:09:00Z",
    )
    assert {t["type"] for t in c.transitions(again, fixed)} == {
        c.READY,
        c.SECRETS_RESOLVED,
        c.RELAY_AVAILABLE,
    }


def test_relay_starting_is_ready_unknown_and_reconciling() -> None:
    """kstatus: in progress, not failed; kubectl wait keeps waiting for Ready=True."""
    starting = ConditionUpdate(c.RELAY_AVAILABLE, c.UNKNOWN, RELAY_STARTING, "rolling out")
    conditions = integration_conditions(
        IntegrationOutcome(OK_SECRETS, OK_SUB, starting), [], 1, "2026-01-01T00:00:00Z"
    )
    ready, reconciling = c.find(conditions, c.READY), c.find(conditions, c.RECONCILING)
    assert ready is not None
    assert reconciling is not None
    assert (ready["status"], ready["reason"]) == ("Unknown", RELAY_STARTING)
    assert (reconciling["status"], reconciling["reason"]) == ("True", RELAY_STARTING)

    up = ConditionUpdate(c.RELAY_AVAILABLE, c.TRUE, RELAY_READY, "1/1")
    settled = integration_conditions(
        IntegrationOutcome(OK_SECRETS, OK_SUB, up), conditions, 1, "2026-01-01T00:00:09Z"
    )
    assert c.find(settled, c.READY)["status"] == "True"  # type: ignore[index]
    assert c.find(settled, c.RECONCILING)["status"] == "False"  # type: ignore[index]


def test_a_real_failure_is_ready_false_and_not_reconciling() -> None:
    """A missing Secret beats a starting relay: Degraded, not Progressing."""
    missing = ConditionUpdate(c.SECRETS_RESOLVED, c.FALSE, "SecretNotFound", "Secret ns/pd")
    starting = ConditionUpdate(c.RELAY_AVAILABLE, c.UNKNOWN, RELAY_STARTING, "rolling out")
    conditions = integration_conditions(
        IntegrationOutcome(missing, OK_SUB, starting), [], 1, "2026-01-01T00:00:00Z"
    )
    assert c.find(conditions, c.READY)["status"] == "False"  # type: ignore[index]
    assert c.find(conditions, c.RECONCILING)["status"] == "False"  # type: ignore[index]
    down = ConditionUpdate(c.RELAY_AVAILABLE, c.FALSE, RELAY_UNAVAILABLE, "deadline")
    failed = integration_conditions(
        IntegrationOutcome(OK_SECRETS, OK_SUB, down), [], 1, "2026-01-01T00:00:00Z"
    )
    ready = c.find(failed, c.READY)
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("False", RELAY_UNAVAILABLE)
    assert c.find(failed, c.RECONCILING)["status"] == "False"  # type: ignore[index]


@pytest.mark.parametrize(("storage", "durable"), [("Persistent", "True"), ("Ephemeral", "False")])
def test_outbox_durability_is_reported_but_never_decides_ready(storage: str, durable: str) -> None:
    from pagerbridge.api.integration import RelayStorage
    from pagerbridge.controller.render.status import storage_condition

    relay_up = ConditionUpdate(c.RELAY_AVAILABLE, c.TRUE, "RelayReady", "1/1")
    conditions = integration_conditions(
        IntegrationOutcome(
            OK_SECRETS,
            OK_SUB,
            relay_up,
            "http://x",
            storage=storage_condition(RelayStorage(storage)),
        ),
        [],
        1,
        "2026-01-01T00:00:00Z",
    )
    assert c.find(conditions, c.READY)["status"] == "True"  # type: ignore[index]
    outbox = c.find(conditions, c.OUTBOX_DURABLE)
    assert outbox is not None
    assert outbox["status"] == durable


def test_cluster_internal_url_is_a_warning_condition_and_in_readys_message() -> None:
    from pagerbridge.controller.render.status import public_reachability

    url = "http://x-relay.ns.svc/v1/bigpanda/webhook"
    internal = public_reachability(None, url)
    assert (internal.type, internal.status, internal.reason) == (
        c.RELAY_PUBLIC,
        c.FALSE,
        "ClusterInternalUrl",
    )
    assert f"BigPanda cannot reach {url}" in internal.message
    relay_up = ConditionUpdate(c.RELAY_AVAILABLE, c.TRUE, "RelayReady", "1/1")
    conditions = integration_conditions(
        IntegrationOutcome(OK_SECRETS, OK_SUB, relay_up, "http://x", reachable=internal),
        [],
        1,
        "2026-01-01T00:00:00Z",
    )
    ready = c.find(conditions, c.READY)
    assert ready is not None
    assert ready["status"] == c.TRUE  # the relay itself works
    assert internal.message in ready["message"]
    assert c.find(conditions, c.RELAY_PUBLIC)["status"] == c.FALSE  # type: ignore[index]

    public = public_reachability("https://relay.example.com/", url)
    assert (public.status, public.reason) == (c.TRUE, "PublicUrl")
    conditions = integration_conditions(
        IntegrationOutcome(OK_SECRETS, OK_SUB, relay_up, "http://x", reachable=public),
        [],
        1,
        "2026-01-01T00:00:00Z",
    )
    assert "warning" not in c.find(conditions, c.READY)["message"]  # type: ignore[index]


def test_refs_of_a_not_ready_integration_name_it_and_its_failing_condition() -> None:
    from pagerbridge.controller.render.status import ref_waiting

    missing = ConditionUpdate(
        c.SECRETS_RESOLVED, c.FALSE, "SecretNotFound", "Secret ns/pd not found"
    )
    relay_up = ConditionUpdate(c.RELAY_AVAILABLE, c.TRUE, "RelayReady", "1/1")
    failing = integration_conditions(
        IntegrationOutcome(missing, OK_SUB, relay_up), [], 1, "2026-01-01T00:00:00Z"
    )
    waiting = ref_waiting(failing, "pay", "ns", "PagerDutyKeyOverride")
    assert waiting is not None
    assert (waiting.status, waiting.reason) == (c.FALSE, "IntegrationNotReady")
    assert waiting.message == (
        "PagerDutyIntegration ns/pay is not Ready: SecretsResolved=False "
        "(SecretNotFound: Secret ns/pd not found)"
    )

    starting = ConditionUpdate(c.RELAY_AVAILABLE, c.UNKNOWN, RELAY_STARTING, "0/1 ready")
    rolling = integration_conditions(
        IntegrationOutcome(OK_SECRETS, OK_SUB, starting), [], 1, "2026-01-01T00:00:00Z"
    )
    unknown = ref_waiting(rolling, "pay", "ns", "PagerDutyTagMapping")
    assert unknown is not None
    assert (unknown.status, unknown.reason) == (c.UNKNOWN, "IntegrationNotReady")
    assert "RelayAvailable=Unknown" in unknown.message

    assert ref_waiting([], "pay", "ns", "PagerDutyTagMapping").status == c.UNKNOWN  # type: ignore[union-attr]
    ready = integration_conditions(
        IntegrationOutcome(OK_SECRETS, OK_SUB, relay_up), [], 1, "2026-01-01T00:00:00Z"
    )
    assert ref_waiting(ready, "pay", "ns", "PagerDutyTagMapping") is None
