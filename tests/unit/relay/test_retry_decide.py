"""relay.outbound.retry.decide, table-tested against every error class in the tree.

The tree in pagerbridge.clients.errors' docstring is the specification: each class's
retry class is read from it and compared with the class's ``retry`` attribute, and a
client error class anywhere in the product that has no row in :data:`ROWS` fails the test
(a new class must say what follows it).
"""

from __future__ import annotations

import importlib
import pkgutil
import random
import re
import time

import pytest

import pagerbridge
from pagerbridge.clients import errors
from pagerbridge.clients.errors import ClientError, RetryClass
from pagerbridge.relay.errors import NotReady
from pagerbridge.relay.outbound.retry import (
    MAX_NOT_READY_ATTEMPTS,
    CountsAsDone,
    DeadLetter,
    RetryAt,
    RetryPolicy,
    backoff,
    decide,
    retry_class,
)
from pagerbridge.relay.outbox.jobs import PdEvent
from pagerbridge.relay.outbox.port import Job
from pagerbridge.relay.outcomes import DeadLetterReason, DeliveryOutcome

NOW = 1_800_000_000.0
POLICY = RetryPolicy(max_error_attempts=5, max_age=3600.0, unauthorized_retry=60.0)
SEED = 7

#: Every error class a delivery can meet, with an instance and what must follow it:
#: the retry class, the decision's type, its outcome (retries) or reason (dead letters).
ROWS: dict[type[BaseException], tuple[BaseException, RetryClass, type, str | None]] = {
    errors.ClientError: (
        errors.ClientError("odd"),
        RetryClass.UNFORESEEN,
        RetryAt,
        DeliveryOutcome.ERROR,
    ),
    errors.TransientError: (
        errors.TransientError("flaky"),
        RetryClass.BACKOFF,
        RetryAt,
        DeliveryOutcome.TRANSIENT,
    ),
    errors.RateLimited: (
        errors.RateLimited("429", retry_after=7.0),
        RetryClass.SLOW_DOWN,
        RetryAt,
        DeliveryOutcome.RATE_LIMITED,
    ),
    errors.ServerError: (
        errors.ServerError("503", status=503),
        RetryClass.BACKOFF,
        RetryAt,
        DeliveryOutcome.TRANSIENT,
    ),
    errors.ConnectionFailed: (
        errors.ConnectionFailed("refused"),
        RetryClass.BACKOFF,
        RetryAt,
        DeliveryOutcome.TRANSIENT,
    ),
    errors.PermanentError: (
        errors.PermanentError("no", status=418),
        RetryClass.NEVER,
        DeadLetter,
        DeadLetterReason.REJECTED,
    ),
    errors.Rejected: (
        errors.Rejected("400", status=400, body="invalid event"),
        RetryClass.NEVER,
        DeadLetter,
        DeadLetterReason.REJECTED,
    ),
    errors.Conflict: (
        errors.Conflict("409", status=409),
        RetryClass.DONE,
        CountsAsDone,
        None,
    ),
    errors.Unauthorized: (
        errors.Unauthorized("401", status=401),
        RetryClass.SLOWLY,
        RetryAt,
        DeliveryOutcome.UNAUTHORIZED,
    ),
    errors.EgressRefused: (
        errors.EgressRefused("not allowed"),
        RetryClass.NEVER,
        DeadLetter,
        DeadLetterReason.REJECTED,
    ),
    errors.MalformedResponse: (
        errors.MalformedResponse("not JSON", status=200),
        RetryClass.NEVER,
        DeadLetter,
        DeadLetterReason.REJECTED,
    ),
    NotReady: (
        NotReady("no PagerDuty incident yet"),
        RetryClass.NOT_YET,
        RetryAt,
        DeliveryOutcome.NOT_READY,
    ),
    # Not a client error at all: a bug, an input nobody foresaw.
    KeyError: (KeyError("summary"), RetryClass.UNFORESEEN, RetryAt, DeliveryOutcome.ERROR),
}


def job(attempts: int = 0, age: float = 10.0) -> Job:
    spec = PdEvent(incident_id="inc1", action="trigger", event={"event_action": "trigger"})
    return Job(id=1, spec=spec, ordering_key="inc1", created_at=NOW - age, attempts=attempts)


def all_client_errors() -> set[type[ClientError]]:
    """Every subclass of ClientError defined in the product (its modules all imported)."""
    for module in pkgutil.walk_packages(pagerbridge.__path__, "pagerbridge."):
        if module.name.startswith(("pagerbridge.cli", "pagerbridge.__main__")):
            continue
        importlib.import_module(module.name)
    found: set[type[ClientError]] = set()
    todo: list[type[ClientError]] = [ClientError]
    while todo:
        cls = todo.pop()
        if cls.__module__.startswith("pagerbridge.") and cls not in found:
            found.add(cls)
            todo.extend(cls.__subclasses__())
    return found


def documented_tree() -> dict[str, RetryClass]:
    """Class name → retry class, as the tree in pagerbridge.clients.errors' docstring says."""
    assert errors.__doc__ is not None
    rows = re.findall(r"^[\s│├└─]*([A-Z]\w+)\s+([A-Z_]{4,})\s", errors.__doc__, re.MULTILINE)
    return {name: RetryClass[value] for name, value in rows if value in RetryClass.__members__}


def test_every_error_class_has_a_row():
    missing = {cls.__qualname__ for cls in all_client_errors()} - {cls.__qualname__ for cls in ROWS}
    assert not missing, f"error classes without a row in ROWS (say what follows them): {missing}"


def test_the_docstring_tree_names_every_client_error_with_its_retry_class():
    tree = documented_tree()
    defined = {
        cls.__name__: cls.retry for cls in all_client_errors() if cls.__module__ == errors.__name__
    }
    assert tree == defined
    for name, retry in tree.items():
        assert ROWS[getattr(errors, name)][1] is retry


@pytest.mark.parametrize("cls", list(ROWS), ids=lambda cls: cls.__name__)
def test_decide(cls):
    error, expected_class, decision_type, label = ROWS[cls]
    assert type(error) is cls
    assert retry_class(error) is expected_class
    decision = decide(error, job(attempts=2), POLICY, now=NOW, rng=random.Random(SEED))
    assert type(decision) is decision_type
    replay = random.Random(SEED)
    if isinstance(decision, RetryAt):
        assert decision.outcome == label
        assert decision.attempts == 3  # this failure counted
        if expected_class is RetryClass.SLOW_DOWN:
            assert decision.wait == 7.0 + replay.uniform(0, 0.25)  # Retry-After honoured
        elif expected_class is RetryClass.SLOWLY:
            assert decision.wait == 60.0 * replay.uniform(0.8, 1.2)
        elif expected_class is RetryClass.UNFORESEEN:
            assert decision.wait == backoff(3 + 2, replay)
            assert decision.error.startswith(f"{cls.__name__}: ")
        else:  # BACKOFF, NOT_YET
            assert decision.wait == backoff(3 - 1, replay)
            assert decision.error == str(error)
    elif isinstance(decision, DeadLetter):
        assert decision.reason == label
        assert decision.attempts == 2  # a permanent failure is not an attempt
        assert isinstance(error, ClientError)
        assert decision.status == error.status
        assert decision.error.startswith(str(error))
        assert decision.response == error.body[:300]
    else:
        assert decision == CountsAsDone(attempts=2)


def test_decide_does_not_touch_the_job():
    j = job(attempts=2)
    decide(errors.ServerError("503"), j, POLICY, now=NOW)
    assert j.attempts == 2


def test_rate_limited_without_retry_after_backs_off():
    decision = decide(errors.RateLimited("429"), job(1), POLICY, now=NOW, rng=random.Random(1))
    replay = random.Random(1)
    expected = backoff(2, replay) + replay.uniform(0, 0.25)
    assert isinstance(decision, RetryAt)
    assert decision.wait == expected


@pytest.mark.parametrize(
    "error",
    [
        errors.ServerError("503"),
        errors.RateLimited("429", retry_after=30.0),
        errors.Unauthorized("401"),
        NotReady("later"),
        RuntimeError("bug"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_retry_past_the_maximum_age_is_a_dead_letter(error):
    # 1 s of age left, and every retry class that retries waits longer than that.
    policy = RetryPolicy(max_age=3600.0, unauthorized_retry=60.0)
    decision = decide(error, job(attempts=3, age=3599.0), policy, now=NOW)
    assert isinstance(decision, DeadLetter)
    assert decision.reason == DeadLetterReason.EXPIRED
    assert decision.error.startswith("expired: still failing after 1.0 h and 4 attempts")


def test_not_ready_gives_up_after_its_bound():
    last = decide(NotReady("x"), job(MAX_NOT_READY_ATTEMPTS - 2), POLICY, now=NOW)
    assert isinstance(last, RetryAt)
    assert last.attempts == MAX_NOT_READY_ATTEMPTS - 1
    dead = decide(NotReady("x"), job(MAX_NOT_READY_ATTEMPTS - 1), POLICY, now=NOW)
    assert dead == DeadLetter(
        DeadLetterReason.NOT_READY, "gave up: x", attempts=MAX_NOT_READY_ATTEMPTS
    )


def test_unforeseen_errors_become_poison_after_max_error_attempts():
    retry = decide(ValueError("bad"), job(POLICY.max_error_attempts - 2), POLICY, now=NOW)
    assert isinstance(retry, RetryAt)
    assert retry.outcome == DeliveryOutcome.ERROR
    dead = decide(ValueError("bad"), job(POLICY.max_error_attempts - 1), POLICY, now=NOW)
    assert isinstance(dead, DeadLetter)
    assert dead.reason == DeadLetterReason.POISON
    assert dead.error == f"poison: ValueError: bad ({POLICY.max_error_attempts} attempts)"


def test_now_defaults_to_the_clock():
    fresh = Job(id=1, spec=job().spec, ordering_key="k", created_at=time.time())
    assert isinstance(decide(errors.ServerError("503"), fresh, POLICY), RetryAt)


def test_backoff_grows_with_jitter_and_caps():
    assert 0.25 <= backoff(0) <= 0.5
    assert 2 <= backoff(3) <= 4
    assert backoff(50) <= 60
