"""Conditions, status and the reconcile queue."""

from __future__ import annotations

import asyncio
import base64

from pagerbridge.controller import conditions as c
from pagerbridge.controller.conditions import ConditionUpdate
from pagerbridge.controller.observed import ChildState, relay_ready, secret_state
from pagerbridge.controller.queue import WorkQueue
from pagerbridge.controller.status import IntegrationOutcome, integration_conditions

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


def test_relay_ready_needs_rollout_and_ready_replicas() -> None:
    base = ChildState(
        "Deployment",
        "ns",
        "x-relay",
        "x",
        "1",
        generation=2,
        replicas=1,
        ready_replicas=1,
        observed_generation=1,
    )
    assert relay_ready(None)[0] is False
    assert relay_ready(base)[0] is False
    assert (
        relay_ready(
            ChildState(
                "Deployment",
                "ns",
                "x-relay",
                "x",
                "1",
                generation=2,
                replicas=1,
                ready_replicas=1,
                observed_generation=2,
            )
        )[0]
        is True
    )


def test_secret_state_keeps_no_values() -> None:
    value = "R0UT1NGK3Y0123456789ABCDEFGHIJKL"
    body = {
        "metadata": {"name": "pd", "namespace": "ns"},
        "data": {
            "routing-key": base64.b64encode(value.encode()).decode(),
            "other": base64.b64encode(b"short").decode(),
        },
    }
    state = secret_state(body)
    assert state.info.keys == {"routing-key", "other"}
    assert state.info.routing_key_shaped == {"routing-key"}
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
    from pagerbridge.controller import token_rotation as tr

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
