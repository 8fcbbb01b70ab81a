"""Conditions, status and the reconcile queue."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime
from typing import Any

import pytest

from pagerbridge.api import ConditionReason
from pagerbridge.controller.reconcile.queue import WorkQueue
from pagerbridge.controller.render import conditions as c
from pagerbridge.controller.render.conditions import ConditionUpdate
from pagerbridge.controller.render.status import IntegrationOutcome, integration_conditions
from pagerbridge.controller.state.observed import (
    ChildState,
    child_state,
    relay_state,
    secret_state,
)

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


NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def deployment(**changes: Any) -> ChildState:
    fields: dict[str, Any] = {
        "generation": 2,
        "replicas": 1,
        "ready_replicas": 1,
        "observed_generation": 2,
        "created": "2026-01-01T11:59:00Z",
        "progressing": ("True", "NewReplicaSetAvailable"),
    }
    fields.update(changes)
    return ChildState("Deployment", "ns", "x-relay", "x", "1", **fields)


def test_relay_ready_needs_rollout_and_ready_replicas() -> None:
    assert relay_state(deployment(), NOW).reason == RELAY_READY
    assert relay_state(deployment(), NOW).ready
    assert relay_state(deployment(observed_generation=1), NOW).reason == RELAY_STARTING
    assert relay_state(None, NOW).reason == RELAY_STARTING


@pytest.mark.parametrize(
    "progressing",
    [
        ("True", "NewReplicaSetCreated"),
        ("True", "ReplicaSetUpdated"),
        ("True", "FoundNewReplicaSet"),
    ],
)
def test_a_rollout_in_progress_is_starting(progressing: tuple[str, str]) -> None:
    state = relay_state(deployment(ready_replicas=0, progressing=progressing), NOW)
    assert (state.reason, state.ready, state.recheck_after) == (RELAY_STARTING, False, None)
    assert "x-relay" in state.message


def test_failures_are_unavailable() -> None:
    deadline = relay_state(
        deployment(ready_replicas=0, progressing=("False", "ProgressDeadlineExceeded")), NOW
    )
    assert deadline.reason == RELAY_UNAVAILABLE
    assert "progress deadline" in deadline.message
    # a relay that was available and lost its replicas: no rollout to wait for
    lost = relay_state(deployment(ready_replicas=0), NOW)
    assert lost.reason == RELAY_UNAVAILABLE
    assert "0/1" in lost.message
    scaled = relay_state(deployment(replicas=0, ready_replicas=0), NOW)
    assert scaled.reason == RELAY_UNAVAILABLE


def test_without_a_progressing_condition_the_deadline_counts_from_creation() -> None:
    """A cluster whose deployment controller has not reported yet (or none at all)."""
    young = relay_state(deployment(ready_replicas=0, progressing=None), NOW)
    assert young.reason == RELAY_STARTING
    assert young.recheck_after == pytest.approx(600 - 60)  # re-check when the deadline passes
    old = relay_state(
        deployment(ready_replicas=0, progressing=None, created="2026-01-01T11:49:00Z"), NOW
    )
    assert old.reason == RELAY_UNAVAILABLE
    short = relay_state(
        deployment(ready_replicas=0, progressing=None, progress_deadline_seconds=30), NOW
    )
    assert short.reason == RELAY_UNAVAILABLE


def test_child_state_reads_the_deployment_conditions() -> None:
    body = {
        "metadata": {
            "name": "x-relay",
            "namespace": "ns",
            "generation": 3,
            "creationTimestamp": "2026-01-01T11:59:00Z",
            "ownerReferences": [
                {
                    "apiVersion": "pagerbridge.io/v1alpha1",
                    "kind": "PagerDutyIntegration",
                    "name": "x",
                }
            ],
        },
        "spec": {"replicas": 1, "progressDeadlineSeconds": 120},
        "status": {
            "observedGeneration": 3,
            "conditions": [
                {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
                {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"},
            ],
        },
    }
    state = child_state("Deployment", body)
    assert state is not None
    assert state.progressing == ("True", "ReplicaSetUpdated")
    assert state.progress_deadline_seconds == 120
    assert state.created == "2026-01-01T11:59:00Z"


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


def test_secret_state_keeps_no_values_and_decodes_nothing() -> None:
    value = "R0UT1NGK3Y0123456789ABCDEFGHIJKL"
    body = {
        "metadata": {"name": "pd", "namespace": "ns"},
        "data": {
            "routing-key": base64.b64encode(value.encode()).decode(),
            "other": base64.b64encode(b"short").decode(),
            "not-base64": "%%%",  # never decoded, so never an error either
        },
    }
    state = secret_state(body)
    assert state.info.keys == {"routing-key", "other", "not-base64"}
    assert state.info.routing_key_shaped == frozenset()
    assert value not in repr(state)


async def test_work_queue_coalesces_and_retries() -> None:
    calls: list[str] = []
    gate = asyncio.Event()
    failures = {"b": 1}

    async def handler(key: str) -> float | None:
        calls.append(key)
        if key == "a" and calls.count("a") == 1:
            await gate.wait()
        if failures.get(key):
            failures[key] -= 1
            return 0.01
        return None

    queue: WorkQueue[str] = WorkQueue(handler, workers=2)
    queue.start()
    try:
        queue.add("a")
        await asyncio.sleep(0.01)
        for _ in range(5):
            queue.add("a")  # while running: collapses into one more run
        queue.add("b")
        gate.set()
        deadline = asyncio.get_running_loop().time() + 5
        while (
            calls.count("a") < 2 or calls.count("b") < 2
        ) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert calls.count("a") == 2
        assert calls.count("b") == 2  # one failure, one retry
        assert queue.idle
    finally:
        await queue.stop()


def test_token_rotation_plan_keeps_both_tokens_until_bigpanda_switched() -> None:
    from pagerbridge.controller.steps import token_rotation as tr

    start = tr.plan("r1", ["old"], {}, now=100.0, grace=10.0, new_token=lambda: "new")
    assert start.tokens == ["old", "new"]
    assert start.bigpanda_token == "old"
    marks = dict(start.annotations or {})
    early = tr.plan("r1", ["old", "new"], marks, now=105.0, grace=10.0, new_token=lambda: "x")
    assert (early.tokens, early.bigpanda_token) == (None, "old")
    switched = tr.plan("r1", ["old", "new"], marks, now=112.0, grace=10.0, new_token=lambda: "x")
    assert (switched.tokens, switched.bigpanda_token) == (None, "new")
    done = tr.plan("r1", ["old", "new"], marks, now=121.0, grace=10.0, new_token=lambda: "x")
    assert done.tokens == ["new"]
    marks.update(done.annotations or {})
    idle = tr.plan("r1", ["new"], marks, now=500.0, grace=10.0, new_token=lambda: "x")
    assert (idle.tokens, idle.bigpanda_token, idle.requeue_after) == (None, "new", None)
    assert tr.plan(None, ["t"], {}, 0.0, 10.0, lambda: "x").tokens is None  # never by accident


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
