"""The outbox as a port: what the relay needs from durable storage, and the values it trades.

Two adapters implement :class:`OutboxPort`, the sum of the small views its users hold:
:class:`OutboxJobs` (the write channel), :class:`OutboxLanes`, :class:`OutboxMemory`,
:class:`OutboxAdmin` and :class:`OutboxHealth`, each reading :class:`OutboxStatus`:

- :class:`pagerbridge.relay.outbox.sqlite.Outbox`: SQLite, embedded, one file on a volume, one
  relay process writing it (the default);
- :class:`pagerbridge.relay.outbox.postgres.PostgresOutbox`: PostgreSQL shared by several relay
  replicas (active-active), chosen when ``PAGERBRIDGE_OUTBOX_DSN`` is set.

Both pass one conformance suite (tests/unit/relay/test_outbox_contract.py).

**One write channel for jobs.** A job row is created by :meth:`OutboxJobs.enqueue` (an
inbound endpoint) and from then on written only by the dispatcher, through
:meth:`~OutboxJobs.complete`, :meth:`~OutboxJobs.retry_later` (which also stores a job
whose spec a handler replaced, e.g. an override key PagerDuty refused) and
:meth:`~OutboxJobs.dead_letter`. Handlers read and write *memory* (idempotency/echo keys,
incident records) but never a job row.

**Lanes.** Jobs sharing an ``ordering_key`` form a lane delivered strictly in order by one
process at a time. :meth:`~OutboxLanes.claim_lane`, :meth:`~OutboxLanes.release_lane`,
:meth:`~OutboxLanes.renew_lanes` and :meth:`~OutboxLanes.take_over` give a process a lane
and take it back: trivially for SQLite (one process owns everything), with expiring leases
in PostgreSQL (a killed replica's lanes are taken over once its leases expire).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pagerbridge.relay.outbox.jobs import JobSpec, Undecodable, kind_of


@dataclass(frozen=True)
class IncidentMark:
    """Ties an event job to its BigPanda incident's life cycle (see ``incident_state``).

    ``{epoch}`` in the job's idempotency key is replaced by the incident's epoch, which
    grows each time a resolved incident is triggered again, so a reopen is never mistaken
    for a re-send of the first trigger. A webhook older (``updatedOn``) than one already
    seen for the incident is stale and skipped.
    """

    incident_id: str
    action: str  # "trigger" | "resolve"
    updated_on: float | None


@dataclass(frozen=True)
class IncidentUpdate:
    """What a delivery learned about a BigPanda incident (table ``incidents``).

    ``routing`` is recorded when a trigger was delivered (the incident is then *live* in
    PagerDuty), ``clear_pd_incident`` when a resolve was (no longer live), ``never_created``
    when a trigger was skipped (late, and resolved in BigPanda meanwhile): if no earlier
    trigger made the incident live, it will not exist in PagerDuty (*absent*), and the jobs
    that depend on it (notes) finish at once instead of waiting for it.
    """

    incident_id: str
    routing: dict[str, Any] | None = None
    pd_incident_id: str | None = None
    clear_pd_incident: bool = False
    never_created: bool = False


@dataclass(frozen=True)
class IncidentRecord:
    routing: dict[str, Any] | None
    pd_incident_id: str | None
    absent: bool  # its trigger was skipped and no trigger of it is live in PagerDuty


@dataclass(frozen=True)
class OpenIncident:
    """An incident the relay knows as open on either side (the repair sweep's work list):
    a trigger of it reached PagerDuty and no resolve was delivered since (``live``), or
    the newest BigPanda webhook accepted for it left it open (``open_in_bigpanda``)."""

    incident_id: str
    pd_incident_id: str | None
    live: bool
    open_in_bigpanda: bool | None
    checked: float | None  # time.time() of the sweep's last check, None: never checked
    since: float  # time.time() it became known as open (first trigger, or the record)


@dataclass(frozen=True)
class NewJob:
    spec: JobSpec
    ordering_key: str
    idempotency_key: str | None = None
    # Skip the job (an echo) when this key is in ``seen``; checked in the same transaction.
    unless_seen: str | None = None
    incident: IncidentMark | None = None

    @property
    def kind(self) -> str:
        return self.spec.KIND


@dataclass
class Job:
    id: int
    spec: JobSpec | Undecodable
    ordering_key: str
    created_at: float
    attempts: int = 0
    # Loaded from the store rather than submitted by this process: an earlier process (or,
    # with a shared store, another replica) may have been killed in the middle of it, after
    # its upstream call and before recording that. Non-idempotent deliveries look first.
    restored: bool = False
    # Rate-limit tokens (by bucket name) taken for this job outside a delivery slot and not
    # spent yet (see relay.delivery.reserve / spend). In memory only.
    tokens: dict[str, int] = field(default_factory=dict)
    # Its lane was claimed for this process when it was stored (see OutboxJobs.enqueue).
    leased: bool = False
    # A look-before-write (relay.to_pagerduty.note) found nothing and no write was tried
    # since. In memory only.
    looked: bool = False
    # Attempts begun in a row whose outcome was never recorded (OutboxJobs.begin_attempt):
    # the process died during each of them. Loaded from the store.
    interrupted: int = 0
    # This process recorded the start of an attempt whose outcome is not recorded yet (an
    # attempt that only waited for a rate-limit token records nothing more). In memory only.
    begun: bool = False
    # The commit that recorded this attempt's start also noted its trigger's time
    # (OutboxJobs.begin_attempt ``trigger``): the handler does not write it again. Read once
    # by the handler (a later run of it, after a rate-limit wait, notes it itself). In
    # memory only.
    trigger_noted: bool = False

    @property
    def kind(self) -> str:
        return kind_of(self.spec)


#: Why an enqueued job was not stored: already seen (idempotency) or recognised as an echo.
Skipped = Literal["duplicate", "echo", "stale"]


class ReplayConflict(Exception):
    """A dead letter cannot go back while other jobs of its incident are pending."""


class OutboxClosed(Exception):
    """The store cannot take writes now (closed, unreachable, full): nothing was stored.
    Webhooks answer 503 and deliveries retry only the recording (see relay.delivery)."""


class OutboxStatus(Protocol):
    """What every view of the outbox can read about the store's state (no I/O)."""

    healthy: bool
    last_error: str | None
    # time.time() of the last failed commit: a job accepted before it may have missed a
    # resolve webhook that was answered 503 (see relay.outbound.to_pagerduty._vouched).
    last_failure_wall: float | None
    # Why the relay refuses to serve from this store (PostgreSQL: not its role's alone, see
    # relay.outbox.ownership), one line; None when it serves.
    refused: str | None


class OutboxJobs(OutboxStatus, Protocol):
    """The one write channel of job rows: inbound endpoints enqueue, the dispatcher
    completes, retries and dead-letters."""

    async def enqueue(
        self, jobs: Sequence[NewJob], remember: Sequence[str] = ()
    ) -> list[Job | Skipped]:
        """Store jobs in one transaction; a job whose idempotency key was seen is skipped
        (``"duplicate"``), one whose ``unless_seen`` key is present too (``"echo"``), an
        event older than one already accepted for its incident (``"stale"``). Each stored
        job's lane is claimed for this process in the same step when free (``leased``)."""

    async def complete(
        self,
        job_id: int,
        remember: Sequence[str] = (),
        forget: Sequence[str] = (),
        incident: IncidentUpdate | None = None,
        release_lane: str | None = None,
    ) -> list[Job]:
        """Delete a delivered job and record what its delivery taught, in one transaction;
        with ``release_lane`` (it was the lane's last job here), :meth:`OutboxLanes.
        release_lane` in the same step, returning what it returns."""

    async def begin_attempt(self, job: Job, trigger: tuple[str, float] | None = None) -> None:
        """Record, durably and before any upstream call, that an attempt of ``job`` starts:
        its stored attempts become ``job.attempts + 1`` and its ``interrupted`` count goes
        up by one. Recording the outcome (:meth:`retry_later`, or the job's deletion) sets
        the count back, so a job loaded with ``interrupted > 0`` had that many attempts in a
        row during which the process died (killed by the OOM killer on a hostile answer, a
        crash): the dispatcher's poison bound counts them.

        With ``trigger`` (incident id, time), :meth:`OutboxMemory.note_trigger` of it in the
        same transaction: a trigger's attempt and its first-trigger time cost one commit."""

    async def retry_later(self, job: Job, error: str) -> None:
        """Record a failed attempt: ``job.attempts``, the error and ``job.spec`` (a handler
        may have replaced it); the attempt ended, so ``interrupted`` goes back to 0."""

    async def dead_letter(self, job: Job, status: int | None, error: str) -> None: ...


class OutboxLanes(OutboxStatus, Protocol):
    """Which process delivers which ordering key (the dispatcher; replicas for the limits)."""

    async def claim_lane(self, ordering_key: str) -> list[Job] | None:
        """Take the lane for this process: None when another process holds it (it will find
        this process's jobs when it releases the lane), else the lane's stored jobs (marked
        restored; the caller keeps its own copies of those it submitted)."""

    async def release_lane(self, ordering_key: str) -> list[Job]:
        """Called when this process has no more jobs of the lane: the lane's stored jobs if
        any are left (written meanwhile by another process; the lane stays this process's),
        else the lane is released. Atomic with respect to other processes' claims."""

    # False when every lane is this process's (SQLite): nothing to renew, never lost, so
    # the dispatcher does not list its lanes every second to renew them (issue 30: with
    # thousands of incidents in flight that listing was 5 % of the relay's CPU).
    leases_lanes: bool

    async def renew_lanes(self, ordering_keys: Sequence[str]) -> set[str]:
        """Extend the leases; the keys whose lease this process lost."""

    async def take_over(self) -> list[Job]:
        """Claim lanes nobody holds (never claimed, or their owner's lease expired) and
        return their jobs, marked restored. SQLite: every pending job, once per process."""

    async def replicas(self) -> int:
        """Relay processes sharing this store now (upstream rate limits are split among
        them); 1 for SQLite."""


class OutboxMemory(OutboxStatus, Protocol):
    """What deliveries remember: idempotency and echo keys, the incidents' records."""

    async def seen(self, key: str) -> bool: ...

    async def remember(self, keys: Sequence[str]) -> None: ...

    async def incident(self, incident_id: str) -> IncidentRecord | None: ...

    async def incident_open(self, incident_id: str) -> bool | None: ...

    async def save_incident(
        self,
        incident_id: str,
        routing: dict[str, Any] | None = None,
        pd_incident_id: str | None = None,
        clear_pd_incident: bool = False,
    ) -> None: ...

    async def incident_by_pd_id(self, pd_incident_id: str) -> str | None: ...

    # -- which PagerDuty incidents are this relay's own (issue 27) --------------------
    async def note_trigger(self, incident_id: str, at: float) -> float:
        """Record ``at`` as the first trigger attempt of the incident's current life unless
        one is recorded; returns the recorded one. A PagerDuty incident created before it
        (less the clock skew allowed) was not produced by this relay."""

    async def end_trigger(self, incident_id: str) -> None:
        """A resolve was delivered: the next trigger starts a new life."""

    async def first_trigger(self, incident_id: str) -> float | None: ...

    async def bind_pd_incident(
        self, incident_id: str, pd_incident_id: str, service_id: str | None
    ) -> None:
        """Record that the relay's trigger of ``incident_id`` produced ``pd_incident_id``
        (kept after the resolve, so later webhooks about it are still recognised), and
        make it the incident's current PagerDuty incident."""

    async def owner_of(self, pd_incident_id: str) -> str | None:
        """The BigPanda incident whose trigger produced ``pd_incident_id``; None: not ours."""

    async def open_incidents(self, limit: int) -> list[OpenIncident]:
        """Up to ``limit`` incidents open on either side as far as the relay knows, the
        longest unchecked first."""

    async def mark_checked(self, incident_ids: Sequence[str], at: float) -> None: ...

    async def close_incident(self, incident_id: str, ordering_key: str) -> bool:
        """Both sides say resolved and the relay's records still say open (both webhooks
        lost): record it closed, unless a job of ``ordering_key`` is pending (then its jobs
        decide). True when closed."""

    async def prune(self, older_than: float) -> int: ...


class OutboxAdmin(OutboxStatus, Protocol):
    """What an operator looks at and puts back (the admin API, the metrics page)."""

    async def pending(self) -> list[Job]: ...

    async def dead_letters(self) -> list[dict[str, Any]]:
        """Permanent failures, oldest first: job_id, kind, ordering_key, status, error."""

    async def replay_dead_letter(self, job_id: int) -> bool:
        """Put dead letter ``job_id`` back under the same id, as a new acceptance (fresh age
        and attempts); False when no dead letter has that job id. Raises
        :class:`ReplayConflict` while any job of the same incident (ordering key) is pending
        (queued behind them it would reach PagerDuty after newer events of its incident)."""

    async def oldest_pending_age(self) -> float | None:
        """Seconds since the oldest pending job was accepted; None when none is pending."""


class OutboxHealth(OutboxStatus, Protocol):
    """Readiness: can the store commit now?"""

    async def check_writable(self, quiet_after_failure: float = 5.0) -> bool: ...


class OutboxPort(OutboxJobs, OutboxLanes, OutboxMemory, OutboxAdmin, OutboxHealth, Protocol):
    """Durable storage of the relay's work and memory, everything both adapters implement
    (and the conformance suite checks). Every method is one transaction. Only the code that
    opens and closes the store holds this; everyone else holds the smallest view above."""

    def open(self, loop: asyncio.AbstractEventLoop) -> None: ...

    async def start(self) -> None:
        """Finish opening (connect, create the schema); after :meth:`open`."""

    async def close(self) -> None: ...
