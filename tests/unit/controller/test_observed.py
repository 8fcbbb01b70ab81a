"""Observed records: a relay Deployment's state (ready, starting or unavailable, as the
Deployment controller words it) and the operator's own Secrets without their values."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest

from pagerbridge.api import ConditionReason
from pagerbridge.controller.state.observed import (
    ChildState,
    child_state,
    relay_state,
    secret_state,
)

RELAY_READY = ConditionReason.RELAY_READY
RELAY_STARTING = ConditionReason.RELAY_STARTING
RELAY_UNAVAILABLE = ConditionReason.RELAY_UNAVAILABLE

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
