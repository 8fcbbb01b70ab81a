"""Delivery of outbox jobs: per-key ordering, bounded parallelism, backoff with jitter.

Jobs sharing an ``ordering_key`` (one BigPanda incident, or one PagerDuty incident for the
way back) are delivered strictly one after another in the order they were accepted: a
job is only attempted when every earlier job of its key has succeeded or was dead-lettered,
across retries and restarts (pending jobs are reloaded in id order). Different keys proceed
in parallel, at most ``concurrency`` at once, and one upstream or one routing key at most
its share of those (:mod:`pagerbridge.relay.outbound.slots`), so an upstream that hangs or
drips until each call's deadline cannot stop the others.

The outcome of an attempt decides what follows: success → job deleted; a failure →
whatever :func:`pagerbridge.relay.outbound.retry.decide` reads from the error's retry class
(transient → retried after ``backoff`` or the service's Retry-After; 401/403 → retried every
minute or so; permanent → dead-letter table; 409 → counts as done; unexpected exceptions →
retried a bounded number of times, then poison), within the job's maximum age
(:class:`~pagerbridge.relay.outbound.retry.RetryPolicy`). A given-up job goes to the dead
letters with the reason and a metric, and its lane moves on: a poison job never blocks the
incident's later work. This module only carries decisions out.

Every attempt is recorded durably *before* its upstream call (:meth:`~pagerbridge.relay.
outbox.port.OutboxJobs.begin_attempt`), and its end with its outcome. A job restored with
attempts that never ended (the process died during them: the OOM killer on a hostile
answer, a crash) is a suspect, attempted alone among suspects so a death is counted
against the job that caused it; one that has killed the process ``max_error_attempts``
times in a row is dead-lettered (``crash_loop``) before it can do so again. A job that
kills the relay on every attempt therefore ends in the dead letters, not in a crash loop.
(While the store cannot take writes the call is made unrecorded: paging goes on.)

Lanes are leased from the outbox (:mod:`pagerbridge.relay.outbox.port`): a lane is claimed
before its first attempt and released when this process has no more of its jobs, at which
moment jobs another process stored meanwhile are taken on instead. :meth:`Dispatcher.
maintain` renews the leases and takes over lanes nobody holds (a killed replica's, once
its leases expired). With SQLite every lane is this process's and this costs nothing.

The store failing (full disk, I/O error) is not the job's fault: it is never counted as an
attempt and never repeats an upstream call. A delivery that succeeded upstream but could
not be recorded keeps its result in memory and only the *recording* is retried, with
backoff, until the store commits again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from pagerbridge.clients.backoff import backoff as exponential_backoff
from pagerbridge.clients.errors import RetryClass, Unauthorized
from pagerbridge.relay.metrics import RelayMetrics
from pagerbridge.relay.options import DEFAULTS
from pagerbridge.relay.outbound import crashpoints
from pagerbridge.relay.outbound.ratelimit import TokenBucket
from pagerbridge.relay.outbound.retry import (
    BACKOFF_BASE,
    DeadLetter,
    RetryAt,
    RetryPolicy,
    backoff,
    decide,
    retry_class,
)
from pagerbridge.relay.outbound.slots import Slots
from pagerbridge.relay.outbox.jobs import Undecodable
from pagerbridge.relay.outbox.port import (
    IncidentUpdate,
    Job,
    OutboxClosed,
    OutboxJobs,
    OutboxLanes,
)
from pagerbridge.relay.outcomes import DeadLetterReason, DeliveryOutcome

logger = logging.getLogger(__name__)

STORE_RETRY_CAP = 30.0
# How often leases are renewed and abandoned lanes looked for (PostgreSQL leases last a few
# times longer: see relay.outbox.postgres.LEASE_SECONDS).
MAINTAIN_INTERVAL = 1.0


class DeliveryStore(OutboxJobs, OutboxLanes, Protocol):
    """The outbox as the dispatcher uses it: the job write channel and the lanes."""


@dataclass(frozen=True)
class Done:
    """A successful delivery; what to remember and forget in the ``seen`` table."""

    remember: Sequence[str] = ()
    forget: Sequence[str] = ()
    outcome: DeliveryOutcome = DeliveryOutcome.DELIVERED
    # Recorded in the same commit that deletes the job (no extra round trip).
    incident: IncidentUpdate | None = None


Handler = Callable[[Job], Awaitable[Done]]
# Waits for the job's rate-limit token *before* it takes one of the ``concurrency`` slots,
# so incidents queued behind one busy routing key never starve other kinds of work.
Gate = Callable[[Job], Awaitable[None]]
# The slot groups of a job's attempt (``"upstream:<service>"``, ``"key:<id>"``): each may
# hold only its share of the ``concurrency`` slots (see relay.outbound.slots).
SlotGroups = Callable[[Job], Sequence[str]]
# A trigger's (incident id, time) to note in the commit that records its attempt's start
# (OutboxJobs.begin_attempt), None when the handler is to decide (see to_pagerduty.event).
TriggerNote = Callable[[Job], tuple[str, float] | None]


class WaitForToken(Exception):
    """Raised inside a delivery slot instead of waiting for a rate-limit token: the
    dispatcher releases the slot, waits for the bucket's token outside it, credits it to
    the job and tries again (not an attempt)."""

    def __init__(self, bucket: TokenBucket) -> None:
        super().__init__(f"needs a token of {bucket.name}")
        self.bucket = bucket


async def reserve(
    job: Job, bucket: TokenBucket, unless: Callable[[], Awaitable[bool]] | None = None
) -> None:
    """In a gate (outside any slot): take the bucket's token for this job, unless it still
    holds one from an attempt that did not use it, or ``unless`` says (when the job's turn
    comes) that it will not need one."""
    if job.tokens.get(bucket.name, 0) > 0:
        if bucket.fresh(job.id):
            await bucket.wait_unpaused()
            return
        job.tokens[bucket.name] = 0  # its slot went stale waiting: a fresh one below
    if await bucket.acquire(unless):
        job.tokens[bucket.name] = job.tokens.get(bucket.name, 0) + 1
        bucket.grant(job.id)


def spend(job: Job, bucket: TokenBucket) -> None:
    """In a handler (inside a slot): use the job's reserved token, or one that is free
    right now. Never waits: raises :class:`WaitForToken`, and the dispatcher waits for the
    token outside the slot. So no rate-limit wait ever holds a slot (head-of-line
    blocking: 300 notes waiting for REST tokens held every slot while a new incident's
    trigger waited 17 s)."""
    held = job.tokens.get(bucket.name, 0)
    if held > 0 and bucket.paused_for() > 0:
        raise WaitForToken(bucket)  # the service said 429 since the token was reserved
    if held > 0 and not bucket.fresh(job.id):
        raise WaitForToken(bucket)  # held too long (see ratelimit): reserve() renews it
    if held > 0:
        job.tokens[bucket.name] = held - 1
        bucket.used(job.id)
    elif not bucket.try_take():
        raise WaitForToken(bucket)


@dataclass
class _Lane:
    jobs: deque[Job] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None
    busy: bool = False  # an attempt is in flight (shutdown lets it finish)
    # The head job's outcome is decided (delivered / dead-lettered) but the store could not
    # record it yet: only this recording is retried, the upstream call never again.
    unrecorded: Callable[[], Awaitable[None]] | None = None
    store_failures: int = 0
    claimed: bool = False  # this process holds the lane's lease
    lost: bool = False  # the lease went to another process: stop after the current attempt
    releases: int = 0  # times this process released the lane (see maintain)
    ids: set[int] = field(default_factory=set)


class Dispatcher:
    def __init__(
        self,
        outbox: DeliveryStore,
        handlers: dict[str, Handler],
        metrics: RelayMetrics,
        concurrency: int = DEFAULTS.concurrency,
        on_unauthorized: Callable[[Job, Unauthorized], None] | None = None,
        unauthorized_retry: float | None = None,
        gates: dict[str, Gate] | None = None,
        policy: RetryPolicy | None = None,
        slot_groups: SlotGroups | None = None,
        slot_shares: Mapping[str, float] | None = None,
        trigger_notes: dict[str, TriggerNote] | None = None,
    ) -> None:
        self.outbox = outbox
        self.policy = policy or RetryPolicy()
        if unauthorized_retry is not None:
            self.policy = replace(self.policy, unauthorized_retry=unauthorized_retry)
        self.handlers = handlers
        self.gates = gates or {}
        self.trigger_notes = trigger_notes or {}
        self.metrics = metrics
        self._lanes: dict[str, _Lane] = {}
        self._slots = Slots(
            concurrency, slot_shares, on_wait=lambda bound: metrics.slot_waits.labels(bound).inc()
        )
        self._slot_groups: SlotGroups = slot_groups or (lambda job: ())
        self._closing = False
        # Held by the attempt of a job whose earlier attempts were interrupted (see _step).
        self._suspects = asyncio.Lock()
        self._pending = 0
        self.on_unauthorized = on_unauthorized
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def pending(self) -> int:
        return self._pending

    async def load(self) -> int:
        """Queue the jobs left in the outbox that no other process is delivering (after a
        restart: every one, with SQLite), in acceptance order."""
        jobs = await self.outbox.take_over()
        self.submit(jobs, claimed=True)
        return len(jobs)

    def submit(self, jobs: Sequence[Job], claimed: bool = False) -> None:
        """Queue jobs for delivery; ``claimed``: their lanes' leases are already held."""
        for job in jobs:
            if self._closing:
                return  # it is in the outbox; the next start delivers it
            lane = self._lanes.get(job.ordering_key)
            if lane is None:
                lane = self._lanes[job.ordering_key] = _Lane(claimed=claimed or job.leased)
            self._add(lane, [job])
            if lane.task is None:
                lane.task = asyncio.create_task(self._run_lane(job.ordering_key, lane))
        self.metrics.outbox_pending.set(self._pending)

    def _add(self, lane: _Lane, jobs: Sequence[Job]) -> None:
        """Append the jobs the lane does not hold yet, keeping acceptance (id) order."""
        new = [job for job in jobs if job.id not in lane.ids]
        if not new:
            return
        ordered = bool(lane.jobs) and new[0].id < lane.jobs[-1].id
        for job in new:
            lane.jobs.append(job)
            lane.ids.add(job.id)
        if ordered and not lane.busy:
            lane.jobs = deque(sorted(lane.jobs, key=lambda j: j.id))
        self._pending += len(new)
        self._idle.clear()
        self.metrics.outbox_pending.set(self._pending)

    def _drop(self, lane: _Lane) -> None:
        """Forget a lane's jobs (another process delivers them; they stay in the store)."""
        self._pending -= len(lane.jobs)
        lane.jobs.clear()
        lane.ids.clear()
        self.metrics.outbox_pending.set(self._pending)

    async def maintain(self, interval: float = MAINTAIN_INTERVAL) -> None:
        """Forever: renew this process's lane leases, stop lanes whose lease was lost, and
        take over lanes nobody holds."""
        while not self._closing:
            await asyncio.sleep(interval)
            try:
                held = (
                    {
                        key: (lane, lane.releases)
                        for key, lane in self._lanes.items()
                        if lane.claimed
                    }
                    if self.outbox.leases_lanes
                    else {}
                )
                for key in await self.outbox.renew_lanes(list(held)):
                    lane, releases = held[key]
                    if self._lanes.get(key) is not lane or lane.releases != releases:
                        continue  # released by this process meanwhile, not lost to another
                    lane.lost = True
                    lane.claimed = False
                    logger.warning("lane lease lost to another process", extra={"lane": key})
                    if lane.task is not None and not lane.busy:
                        lane.task.cancel()
                jobs = await self.outbox.take_over()
                if jobs:
                    logger.info("lanes taken over", extra={"jobs": len(jobs)})
                    self.submit(jobs, claimed=True)
            except OutboxClosed as exc:
                if self.outbox.refused is None:  # a refusal was logged once, with its reason
                    logger.warning(
                        "lane maintenance: outbox unavailable", extra={"error": str(exc)}
                    )
            except Exception:
                logger.exception("lane maintenance failed")

    async def wait_idle(self, limit: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), limit)
        except TimeoutError:
            return False
        return True

    async def close(self, grace: float = 5.0) -> None:
        """Stop delivering. Attempts in flight get ``grace`` seconds to finish (so a call
        PagerDuty already acted on is recorded as done); everything else stays in the
        outbox for the next start."""
        self._closing = True
        lanes = list(self._lanes.values())
        busy = [lane.task for lane in lanes if lane.task is not None and lane.busy]
        for lane in lanes:
            if lane.task is not None and not lane.busy:
                lane.task.cancel()
        if busy:
            await asyncio.wait(busy, timeout=grace)
        tasks = [lane.task for lane in lanes if lane.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _lease(self, key: str, lane: _Lane) -> bool | None:
        """Claim the lane, or when it has no more jobs here release it (or take on what
        other processes stored meanwhile). True: deliver on; False: stop; None: the store
        failed, wait."""
        try:
            if not lane.claimed:
                stored = await self.outbox.claim_lane(key)
                if stored is None:
                    self._drop(lane)  # another process holds it and will find these jobs
                    return False
                lane.claimed = True
                self._add(lane, stored)
                return True
            more = await self.outbox.release_lane(key)
        except OutboxClosed as exc:
            logger.warning("lane lease: outbox unavailable", extra={"lane": key, "error": str(exc)})
            return None
        if not more:
            lane.claimed = False
            lane.releases += 1
            return False
        self._add(lane, more)
        return True

    async def _run_lane(self, key: str, lane: _Lane) -> None:
        try:
            while not self._closing and not lane.lost:
                if not lane.jobs and not lane.claimed:
                    break  # released with its last delivery
                if not lane.claimed or not lane.jobs:
                    lease = await self._lease(key, lane)
                    if lease is None:
                        lane.store_failures += 1
                        await asyncio.sleep(
                            exponential_backoff(
                                lane.store_failures, base=BACKOFF_BASE, cap=STORE_RETRY_CAP
                            )
                        )
                        continue
                    if not lease:
                        break
                    continue
                job = lane.jobs[0]
                lane.busy = True
                try:
                    delay = await self._step(job, lane)
                except Exception:  # never a hot loop: a bug here waits like a failed attempt
                    logger.exception("delivery lane failed unexpectedly", extra={"job_id": job.id})
                    delay = backoff(job.attempts + 2)
                finally:
                    lane.busy = False
                if delay is None:
                    lane.jobs.popleft()
                    lane.ids.discard(job.id)
                    lane.store_failures = 0
                    self._pending -= 1
                    self.metrics.outbox_pending.set(self._pending)
                else:
                    await asyncio.sleep(delay)
        finally:
            if self._lanes.get(key) is lane:
                if lane.jobs and not self._closing and not lane.lost:
                    # Submitted while the lease was being released (or the task failed).
                    lane.task = asyncio.create_task(self._run_lane(key, lane))
                else:
                    if lane.lost:
                        self._drop(lane)
                    del self._lanes[key]
            if self._pending <= 0:
                self._idle.set()

    async def _step(self, job: Job, lane: _Lane) -> float | None:
        """Record a decided outcome if one is waiting, else make an attempt.

        A job whose earlier attempts were interrupted (the process died during them) is a
        suspect: suspects are attempted one at a time, attempt and recording together, so a
        death while one runs is counted against that one only and never against another
        suspect (a job that only happened to be in flight when the culprit killed the
        process is interrupted once, and then proves itself on its own).
        """
        suspect = job.interrupted > 0 and lane.unrecorded is None
        async with self._suspects if suspect else contextlib.nullcontext():
            return await self._step_unguarded(job, lane)

    async def _step_unguarded(self, job: Job, lane: _Lane) -> float | None:
        if lane.unrecorded is None:
            outcome = await self._attempt(job, lane)
            if not callable(outcome):
                return outcome
            lane.unrecorded = outcome
        try:
            await lane.unrecorded()
        except OutboxClosed as exc:
            lane.store_failures += 1
            wait = exponential_backoff(lane.store_failures, base=BACKOFF_BASE, cap=STORE_RETRY_CAP)
            self.metrics.store_unavailable.labels(job.kind).inc()
            logger.warning(
                "outcome decided but the outbox cannot record it; retrying the recording only",
                extra={"job_id": job.id, "kind": job.kind, "error": str(exc), "retry_in": wait},
            )
            return wait
        lane.unrecorded = None
        return None

    async def _attempt(self, job: Job, lane: _Lane) -> float | Callable[[], Awaitable[None]]:
        """One delivery attempt: seconds to wait before the next, or the recording of the
        outcome (delivered or dead-lettered) still to be committed."""
        handler = self.handlers.get(job.kind)
        if handler is None:
            return self._dead(
                job, None, f"unknown job kind {job.kind!r}", DeadLetterReason.UNKNOWN_KIND
            )
        if job.interrupted >= self.policy.max_error_attempts:
            return self._dead(
                job,
                None,
                f"crash loop: the relay process died during each of its last "
                f"{job.interrupted} attempts (killed: out of memory on an answer, or a crash)",
                DeadLetterReason.CRASH_LOOP,
            )
        gate = self.gates.get(job.kind)
        # An undecodable job takes no tokens: its handler fails inside the slot, where the
        # failure counts as an attempt (bounded, then dead-lettered as poison).
        if gate is not None and not isinstance(job.spec, Undecodable):
            await gate(job)
        needs: TokenBucket | None = None
        done: Done | None = None
        groups = () if isinstance(job.spec, Undecodable) else self._slot_groups(job)
        async with self._slots.hold(groups):
            if not job.begun:
                # Durably before the call: a process killed during it (the OOM killer on a
                # hostile answer) restores the job with this attempt counted. A trigger's
                # first-trigger time, which must also be stored before its call, shares
                # the commit (it was one more transaction per event).
                note = self.trigger_notes.get(job.kind)
                trigger = None if note is None or isinstance(job.spec, Undecodable) else note(job)
                try:
                    await self.outbox.begin_attempt(job, trigger=trigger)
                except OutboxClosed as exc:
                    # The store failing is not a reason to stop paging: the call is made
                    # (only this attempt goes uncounted should the process die during it).
                    self.metrics.store_unavailable.labels(job.kind).inc()
                    logger.warning(
                        "outbox unavailable: attempt not recorded before delivery",
                        extra={"job_id": job.id, "kind": job.kind, "error": str(exc)},
                    )
                else:
                    job.begun = True
                    job.trigger_noted = trigger is not None
            crashpoints.reached(f"{job.kind}:attempt_begun")
            try:
                done = await handler(job)
            except WaitForToken as exc:
                needs = exc.bucket
            except OutboxClosed as exc:
                # The store, not the job: not an attempt; backs off like the recording does.
                self.metrics.store_unavailable.labels(job.kind).inc()
                logger.warning(
                    "outbox unavailable during delivery; will retry",
                    extra={"job_id": job.id, "kind": job.kind, "error": str(exc)},
                )
                return exponential_backoff(3, base=BACKOFF_BASE, cap=STORE_RETRY_CAP)
            except Exception as exc:  # what follows is the error's retry class (relay.retry)
                if retry_class(exc) is RetryClass.UNFORESEEN:
                    logger.exception("delivery failed unexpectedly", extra={"job_id": job.id})
                decision = decide(exc, job, self.policy)
                job.attempts = decision.attempts
                if isinstance(exc, Unauthorized) and self.on_unauthorized is not None:
                    self.on_unauthorized(job, exc)
                if isinstance(decision, DeadLetter):
                    return self._dead(
                        job, decision.status, decision.error, decision.reason, decision.response
                    )
                if isinstance(decision, RetryAt):
                    return await self._retry(job, decision)
                done = Done()  # CountsAsDone: the target already is in that state
        if needs is not None:
            # Not a failure: the job needs a rate-limit token it had not reserved. It waits
            # for it here, outside the slot, so other incidents are not held up.
            self.metrics.token_waits.labels(job.kind).inc()
            await reserve(job, needs)
            return 0.0
        assert done is not None
        delivered = done
        crashpoints.reached(f"{job.kind}:before_commit")

        async def record() -> None:
            # The lane's last job here: release the lane in the same step (or take on what
            # other processes stored for it meanwhile).
            last = len(lane.jobs) == 1 and lane.jobs[0] is job
            more = await self.outbox.complete(
                job.id,
                remember=delivered.remember,
                forget=delivered.forget,
                incident=delivered.incident,
                release_lane=job.ordering_key if last and lane.claimed else None,
            )
            if last and lane.claimed:
                if more:
                    self._add(lane, more)
                else:
                    lane.claimed = False
                    lane.releases += 1
            crashpoints.reached(f"{job.kind}:after_commit")
            self.metrics.deliveries.labels(job.kind, delivered.outcome).inc()
            self.metrics.delivery_seconds.labels(job.kind).observe(
                max(0.0, time.time() - job.created_at)
            )

        return record

    def _dead(
        self,
        job: Job,
        status: int | None,
        error: str,
        reason: DeadLetterReason,
        response: str = "",
    ) -> Callable[[], Awaitable[None]]:
        """The recording of a give-up: dead letter + metric + log once it is committed."""

        async def record() -> None:
            await self.outbox.dead_letter(job, status, error)
            self._gave_up(job, status, error, reason, response)

        return record

    def _gave_up(
        self, job: Job, status: int | None, error: str, reason: DeadLetterReason, response: str
    ) -> None:
        self.metrics.deliveries.labels(job.kind, DeliveryOutcome.REJECTED).inc()
        self.metrics.dead_letters.labels(job.kind, reason).inc()
        logger.error(
            "delivery given up; dead-lettered",
            extra={
                "job_id": job.id,
                "kind": job.kind,
                "reason": str(reason),
                "status": status,
                "error": error[:500],
                "response": response,
            },
        )

    async def _retry(self, job: Job, decision: RetryAt) -> float:
        self.metrics.deliveries.labels(job.kind, decision.outcome).inc()
        logger.warning(
            "delivery failed; will retry",
            extra={
                "job_id": job.id,
                "kind": job.kind,
                "attempts": job.attempts,
                "error": decision.error,
                "retry_in": round(decision.wait, 2),
            },
        )
        try:
            await self.outbox.retry_later(job, decision.error)
        except Exception:
            logger.warning("could not record the retry", extra={"job_id": job.id})
        else:
            job.begun = False  # the attempt's end is recorded
            job.interrupted = 0
        return decision.wait
