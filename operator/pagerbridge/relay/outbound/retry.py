"""What follows a failed delivery attempt, decided from data: :func:`decide`.

The error says what kind of failure it is (its :class:`~pagerbridge.clients.errors.
RetryClass`, carried by every class of :mod:`pagerbridge.clients.errors` and by the relay's
:class:`~pagerbridge.relay.errors.NotReady`); the job says how often and since when it has
failed; the :class:`RetryPolicy` bounds both. :func:`decide` turns the three into a
:class:`RetryAt`, a :class:`DeadLetter` or :class:`CountsAsDone`, and the dispatcher only
carries the decision out (metrics, log, store). Before this module the same rules were the
order of ten ``except`` clauses, where ``Unauthorized`` (a ``PermanentError`` that is
retried) only worked because its clause came first.

Pure: nothing is awaited, stored or counted here, the job is not changed (the decision
carries its new attempt count) and the only randomness (jitter) comes from ``rng``, so the
table test (tests/unit/relay/test_retry_decide.py) replays it exactly.

==========  ==========================================  =====================  ============
retry class wait before the next attempt                gives up               dead reason
==========  ==========================================  =====================  ============
BACKOFF     ``backoff(attempts - 1)``                   past ``max_age``       expired
SLOW_DOWN   ``Retry-After`` (else ``backoff(attempts)``) past ``max_age``      expired
            plus 0-0.25 s
SLOWLY      ``unauthorized_retry`` x 0.8-1.2            past ``max_age``       expired
NOT_YET     ``backoff(attempts - 1)``                   at MAX_NOT_READY_..    not_ready
                                                        or past ``max_age``    or expired
NEVER       (none)                                      at once                rejected
DONE        (none: the job counts as delivered)         never                  (none)
UNFORESEEN  ``backoff(attempts + 2)``                   at max_error_attempts  poison
                                                        or past ``max_age``    or expired
==========  ==========================================  =====================  ============

(``attempts`` counts this failure; a NEVER failure is not counted as an attempt.)
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from pagerbridge.clients.backoff import backoff as exponential_backoff
from pagerbridge.clients.backoff import jitter
from pagerbridge.clients.errors import ClientError, RateLimited, RetryClass
from pagerbridge.relay.options import DEFAULTS, RelayOptions
from pagerbridge.relay.outbox.port import Job
from pagerbridge.relay.outcomes import DeadLetterReason, DeliveryOutcome

BACKOFF_BASE = 0.5
BACKOFF_CAP = 60.0
# A job waiting for something that should appear but never does (a note whose trigger was
# delivered while PagerDuty never shows the incident) is given up after this many attempts.
# (A note whose incident the relay never triggered does not wait: it is skipped at once.)
MAX_NOT_READY_ATTEMPTS = 40


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds on retrying one job. ``max_error_attempts`` counts unexpected exceptions (a
    job that makes the relay's own code fail is poison: retrying it forever only blocks the
    incident's lane); ``max_age`` bounds every kind of retry, measured from acceptance;
    ``unauthorized_retry`` is the pace of retries while credentials are refused."""

    max_error_attempts: int = DEFAULTS.max_error_attempts
    max_age: float = DEFAULTS.max_age
    unauthorized_retry: float = DEFAULTS.unauthorized_retry

    @classmethod
    def of(cls, options: RelayOptions) -> RetryPolicy:
        return cls(options.max_error_attempts, options.max_age, options.unauthorized_retry)


@dataclass(frozen=True)
class RetryAt:
    """Try again after ``wait`` seconds; the attempt ended as ``outcome``."""

    wait: float
    attempts: int
    outcome: DeliveryOutcome
    error: str


@dataclass(frozen=True)
class DeadLetter:
    """Give the job up: into the dead letters with ``error``, counted under ``reason``."""

    reason: DeadLetterReason
    error: str
    attempts: int
    status: int | None = None
    response: str = ""  # the start of the service's answer, for the log


@dataclass(frozen=True)
class CountsAsDone:
    """The target already is in the state the job asked for: recorded as delivered."""

    attempts: int


Decision = RetryAt | DeadLetter | CountsAsDone


def backoff(attempts: int, rng: random.Random | None = None) -> float:
    """The relay's retry delay: between half and all of ``BACKOFF_BASE * 2**attempts``."""
    return exponential_backoff(attempts, base=BACKOFF_BASE, cap=BACKOFF_CAP, rng=rng)


def retry_class(error: BaseException) -> RetryClass:
    """The error's retry class; anything that is not a client error is UNFORESEEN."""
    if isinstance(error, ClientError):
        return error.retry
    return RetryClass.UNFORESEEN


def decide(
    error: BaseException,
    job: Job,
    policy: RetryPolicy,
    *,
    now: float | None = None,
    rng: random.Random | None = None,
) -> Decision:
    """What follows ``error``, raised by the attempt to deliver ``job`` (see the table)."""
    kind = retry_class(error)
    if kind is RetryClass.NEVER:
        status = error.status if isinstance(error, ClientError) else None
        body = error.body if isinstance(error, ClientError) else ""
        return DeadLetter(
            DeadLetterReason.REJECTED,
            f"{error} {body[:500]}",
            job.attempts,
            status=status,
            response=body[:300],
        )
    if kind is RetryClass.DONE:
        return CountsAsDone(job.attempts)
    attempts = job.attempts + 1
    if kind is RetryClass.SLOW_DOWN:
        after = error.retry_after if isinstance(error, RateLimited) else None
        wait = after if after is not None else backoff(attempts, rng)
        wait += jitter(0, 0.25, rng)
        return _retry(job, attempts, DeliveryOutcome.RATE_LIMITED, str(error), wait, policy, now)
    if kind is RetryClass.SLOWLY:
        wait = policy.unauthorized_retry * jitter(0.8, 1.2, rng)
        return _retry(job, attempts, DeliveryOutcome.UNAUTHORIZED, str(error), wait, policy, now)
    if kind is RetryClass.NOT_YET:
        if attempts >= MAX_NOT_READY_ATTEMPTS:
            return DeadLetter(DeadLetterReason.NOT_READY, f"gave up: {error}", attempts)
        wait = backoff(attempts - 1, rng)
        return _retry(job, attempts, DeliveryOutcome.NOT_READY, str(error), wait, policy, now)
    if kind is RetryClass.BACKOFF:
        wait = backoff(attempts - 1, rng)
        return _retry(job, attempts, DeliveryOutcome.TRANSIENT, str(error), wait, policy, now)
    # UNFORESEEN: a bug or an input nobody foresaw; bounded, then poison.
    text = f"{type(error).__name__}: {str(error)[:300]}"
    if attempts >= policy.max_error_attempts:
        return DeadLetter(
            DeadLetterReason.POISON, f"poison: {text} ({attempts} attempts)", attempts
        )
    wait = backoff(attempts + 2, rng)
    return _retry(job, attempts, DeliveryOutcome.ERROR, text, wait, policy, now)


def _retry(
    job: Job,
    attempts: int,
    outcome: DeliveryOutcome,
    error: str,
    wait: float,
    policy: RetryPolicy,
    now: float | None,
) -> RetryAt | DeadLetter:
    """A retry, unless it would start past the job's maximum age."""
    age = (time.time() if now is None else now) - job.created_at
    if age + wait > policy.max_age:
        return DeadLetter(
            DeadLetterReason.EXPIRED,
            f"expired: still failing after {age / 3600:.1f} h and {attempts} attempts "
            f"(last: {error[:300]})",
            attempts,
        )
    return RetryAt(wait, attempts, outcome, error)
