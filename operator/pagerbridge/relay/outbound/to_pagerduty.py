"""Delivering BigPanda's side to PagerDuty: Events v2 events (``pd_event``) and REST notes
(``pd_note``). Handlers for :class:`pagerbridge.relay.outbound.dispatcher.Dispatcher`.

An event about an incident goes only to that incident's routing key: the key its live
PagerDuty incident was triggered with, whatever a later webhook's tag says (PagerDuty
drops a resolve sent with another key, and an update sent there would open a second
incident on a service that never had the first). A resolve whose trigger was skipped
(resolved in BigPanda before it could be sent) is not sent at all: PagerDuty never had the
incident, and the resolve would spend a rate-limit slot of a service that never saw it.
An acknowledge (a snoozed BigPanda incident) is sent only while its PagerDuty incident is
live as far as the store knows: after a resolve was delivered, or when its trigger never
was, it is skipped (PagerDuty would drop it anyway, and an acknowledge must never look
like it re-opens anything).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any

from pagerbridge.clients.errors import (
    ConnectionFailed,
    RateLimited,
    Rejected,
    ServerError,
    Unauthorized,
)
from pagerbridge.clients.pagerduty_incidents import PagerDutyIncidentsClient
from pagerbridge.relay.context import RelayContext
from pagerbridge.relay.errors import NotReady
from pagerbridge.relay.incidents import echo
from pagerbridge.relay.incidents.limits import fit_event
from pagerbridge.relay.incidents.overrides import Routing
from pagerbridge.relay.outbound import crashpoints, owned
from pagerbridge.relay.outbound.dispatcher import Done, reserve, spend
from pagerbridge.relay.outbound.ratelimit import TokenBucket, secret_id
from pagerbridge.relay.outbox.jobs import PdEvent, PdNote, expect
from pagerbridge.relay.outbox.port import IncidentRecord, IncidentUpdate, Job, OutboxClosed
from pagerbridge.relay.outcomes import DeliveryOutcome, Upstream

logger = logging.getLogger(__name__)

CONFIRMED_FOR = 30.0  # seconds a BigPanda confirmation of a late trigger stays good
MAX_CONFIRMED = 4096
OUTAGE_PAUSE = 1.0  # seconds every worker of a failing service waits (see ratelimit)
REJECTED_OVERRIDE_NOTE = (
    "PagerDuty rejected the override integration key from alert tag {tag!r}; "
    "default integration key used"
)


class PagerDutyDelivery:
    def __init__(self, ctx: RelayContext) -> None:
        self.ctx = ctx
        # Late triggers BigPanda confirmed open (job id -> time.monotonic()): a retry of the
        # attempt (its Events v2 slot went stale meanwhile, see ratelimit) does not ask again.
        self._confirmed_open: dict[int, float] = {}
        # The incident record the gate read for a job's attempt (job id -> record), taken by
        # the handler of the same attempt instead of reading it again (see _stored).
        self._gate_reads: dict[int, IncidentRecord | None] = {}

    async def event(self, job: Job) -> Done:
        ctx = self.ctx
        spec = expect(job.spec, PdEvent)
        ctx.saw_override_key(spec.routing.key)  # restored or taken over: not seen here yet
        incident_id = spec.incident_id
        action = spec.action
        # Noted with the attempt's start (see trigger_note): the job was not late then, so
        # nothing can have resolved it meanwhile as far as this attempt is concerned.
        noted, job.trigger_noted = job.trigger_noted, False
        if action == "trigger" and not noted and await self._resolved_meanwhile(job, incident_id):
            ctx.metrics.ignored.labels("late_trigger_resolved").inc()
            logger.info(
                "late trigger skipped: incident resolved in BigPanda meanwhile",
                extra={"incident_id": incident_id},
            )
            # Its notes must not wait for a PagerDuty incident that will not come.
            return Done(
                outcome=DeliveryOutcome.SKIPPED_LATE,
                incident=IncidentUpdate(incident_id, never_created=True),
            )
        routing = self._routing(spec, await self._stored(job, spec))
        if routing is None:
            ctx.metrics.skipped_dependents.labels(job.kind).inc()
            logger.info(
                f"{action} skipped: no PagerDuty incident of it is live",
                extra={"incident_id": incident_id},
            )
            return Done(outcome=DeliveryOutcome.SKIPPED_NO_INCIDENT)
        if action == "resolve":
            # Remember before sending: PagerDuty's webhook about this resolve may arrive
            # before its answer to us does (echo prevention, see relay.echo).
            await ctx.memory.remember([echo.resolved_pd_key(incident_id)])
        if action == "trigger" and not noted:
            # Before sending: the PagerDuty incident it opens is created after this moment
            # (how the relay tells its own incident from others with the key, see owned).
            await self._record_trigger_time(
                incident_id, ctx.memory.note_trigger(incident_id, time.time())
            )
        try:
            await self._send(job, routing, spec.event)
        except Rejected as exc:
            if exc.status != 400 or routing.key is None:
                raise
            # An override key PagerDuty refuses: never drop the incident, use the default.
            ctx.metrics.key_override_invalid.labels("rejected").inc()
            logger.warning(
                "override key rejected by PagerDuty; re-sending with the default key",
                extra={"incident_id": incident_id, "tag": routing.tag},
            )
            routing = Routing(tag=routing.tag)
            event = dict(spec.event)
            if "payload" in event:
                inner = dict(event["payload"])
                details = dict(inner.get("custom_details") or {})
                details["pagerbridge_key_override"] = REJECTED_OVERRIDE_NOTE.format(tag=routing.tag)
                inner["custom_details"] = details
                event["payload"] = inner
                event = fit_event(event)
            # Kept by this job from now on; the dispatcher stores it with a retry (one write
            # channel: handlers never write job rows).
            job.spec = replace(spec, event=event, routing=routing)
            await self._send(job, routing, event)
        if action == "trigger":
            return Done(
                forget=[echo.resolved_pd_key(incident_id), echo.resolved_bp_key(incident_id)],
                incident=IncidentUpdate(incident_id, routing=routing.to_json()),
            )
        if action == "acknowledge":
            return Done()  # the incident stays live; nothing to record
        # The next trigger after a resolve opens a new PagerDuty incident.
        await self._record_trigger_time(incident_id, ctx.memory.end_trigger(incident_id))
        return Done(incident=IncidentUpdate(incident_id, clear_pd_incident=True))

    def trigger_note(self, job: Job) -> tuple[str, float] | None:
        """For the dispatcher: a trigger's first-trigger time to store in the commit that
        records its attempt's start (one transaction less per trigger). Only for a trigger
        that is not late: a late one may be skipped as resolved meanwhile, and the handler
        notes its time only once it is sure to send it, as before."""
        spec = job.spec
        if not isinstance(spec, PdEvent) or spec.action != "trigger" or self._late(job):
            return None
        return spec.incident_id, time.time()

    async def _record_trigger_time(self, incident_id: str, write: Awaitable[object]) -> None:
        """A trigger's time noted (or, after its resolve, ended) for :mod:`.owned`; a store
        that cannot write is no reason to stop paging, nor, once the call was made, to make
        it again: without the time, our incident is told by its key and service alone."""
        try:
            await write
        except OutboxClosed as exc:
            self.ctx.metrics.store_unavailable.labels("pd_event").inc()
            logger.warning(
                "outbox unavailable: trigger time not recorded",
                extra={"incident_id": incident_id, "error": str(exc)},
            )

    async def _stored(self, job: Job, spec: PdEvent) -> IncidentRecord | None:
        """The incident's record as this attempt's gate read it, else read now.

        One read per attempt, not two. The gate's read is as good as a read here: what
        :meth:`_routing` looks at (the row, its routing, ``absent``) is written by the
        completions of this incident's jobs, all of one lane (this job is its head: every
        earlier one is recorded, no later one starts before it ends), and otherwise only by
        writers not ordered with the lane at all (a PagerDuty incident bound by the sweep,
        the prune of rows untouched for days): reading before such a write is the same as
        that write coming a moment later. A gate whose read failed left nothing here."""
        if job.id in self._gate_reads:
            return self._gate_reads.pop(job.id)
        return await self.ctx.memory.incident(spec.incident_id)

    @staticmethod
    def _routing(spec: PdEvent, stored: IncidentRecord | None) -> Routing | None:
        """The incident's own routing: the stored one while its PagerDuty incident is live
        (a trigger delivered it), else this event's; None for a resolve whose trigger was
        skipped, or an acknowledge of an incident not live (see the module docstring)."""
        if stored is not None and stored.routing is not None:
            return Routing.from_json(stored.routing)
        if spec.action != "trigger" and stored is not None and stored.absent:
            return None
        if spec.action == "acknowledge" and stored is not None:
            return None  # known, and not live: resolved since, or never triggered
        return spec.routing

    def _events_bucket(self, routing: Routing) -> TokenBucket:
        return self.ctx.limiter.events(routing.key or self.ctx.holder.current.secrets.routing_key)

    def _rest_bucket(self) -> TokenBucket:
        return self.ctx.limiter.rest(self.ctx.holder.current.secrets.pagerduty_api_token)

    async def event_gate(self, job: Job) -> None:
        """The slots an event needs, taken before a delivery slot: BigPanda's when a
        trigger will have to be confirmed, then (last, so that it is used as soon as it is
        given) its incident's routing key's Events v2 slot; none for a resolve that will
        not be sent."""
        spec = expect(job.spec, PdEvent)
        self._gate_reads.pop(job.id, None)  # an earlier attempt's, its handler not reached
        routing: Routing | None
        try:
            stored = await self.ctx.memory.incident(spec.incident_id)
        except OutboxClosed:
            routing = spec.routing  # the handler meets the store's failure and waits
        else:
            self._gate_reads[job.id] = stored
            routing = self._routing(spec, stored)
        if spec.action == "trigger" and self._needs_confirmation(job):
            await reserve(job, self.ctx.limiter.bigpanda("get"))
        if routing is None:
            return

        async def skipped() -> bool:
            # Asked when its turn comes: a storm's trigger waits long enough to be late, and
            # one resolved meanwhile is skipped by the handler; a slot would go unused.
            try:
                return await self._known_resolved(job, spec.incident_id)
            except OutboxClosed:
                return False

        trigger = spec.action == "trigger"
        await reserve(job, self._events_bucket(routing), unless=skipped if trigger else None)

    async def _known_resolved(self, job: Job, incident_id: str) -> bool:
        """A late trigger the store already knows was resolved meanwhile (it is skipped)."""
        settings = self.ctx.holder.current
        if not self._late(job) or not settings.bigpanda_writes_enabled:
            return False
        return await self.ctx.memory.incident_open(incident_id) is False

    def event_slots(self, job: Job) -> tuple[str, ...]:
        """The delivery-slot groups of an event: the Events API and its routing key."""
        spec = expect(job.spec, PdEvent)
        key = spec.routing.key or self.ctx.holder.current.secrets.routing_key
        return (f"upstream:{Upstream.PAGERDUTY_EVENTS}", f"key:{secret_id(key)}")

    def note_slots(self, job: Job) -> tuple[str, ...]:
        return (f"upstream:{Upstream.PAGERDUTY_REST}",)

    async def note_gate(self, job: Job) -> None:
        await reserve(job, self._rest_bucket())

    async def _send(self, job: Job, routing: Routing, event: dict[str, Any]) -> None:
        ctx = self.ctx
        settings = ctx.holder.current
        key = routing.key or settings.secrets.routing_key
        bucket = self._events_bucket(routing)
        spend(job, bucket)
        client = ctx.pagerduty_events(settings)
        try:
            await client.enqueue({**event, "routing_key": key})
        except RateLimited as exc:
            await bucket.throttled(exc.retry_after)
            raise
        except (ServerError, ConnectionFailed):
            await bucket.penalize(OUTAGE_PAUSE)
            raise
        except Unauthorized:
            ctx.health.unauthorized(Upstream.PAGERDUTY_EVENTS)
            raise
        bucket.succeeded()
        ctx.health.ok(Upstream.PAGERDUTY_EVENTS)

    def _late(self, job: Job) -> bool:
        return job.attempts > 0 or time.time() - job.created_at > self.ctx.late_trigger_after

    def _vouched(self, job: Job) -> bool:
        """Would this relay have heard of a resolve since it accepted the trigger?

        BigPanda sends its resolve webhook to the relay, which records it in the store
        (``incident_state``, shared by every replica). That record answers "resolved
        meanwhile?" as long as the relay was listening the whole time: the job was not
        restored from the store (no restart since), no commit failed since (no webhook
        answered 503), and it waited less than ``confirm_after`` (BigPanda's own webhook
        delays). Otherwise only BigPanda can say (a GET at its 5 requests/s, which in a
        storm would otherwise bound the whole drain).
        """
        ctx = self.ctx
        failed = ctx.memory.last_failure_wall
        return (
            not job.restored
            and (failed is None or failed < job.created_at)
            and time.time() - job.created_at <= ctx.confirm_after
        )

    def _needs_confirmation(self, job: Job) -> bool:
        confirmed = self._confirmed_open.get(job.id)
        if confirmed is not None and time.monotonic() - confirmed <= CONFIRMED_FOR:
            return False
        return (
            self._late(job)
            and self.ctx.holder.current.bigpanda_writes_enabled
            and not self._vouched(job)
        )

    async def _resolved_meanwhile(self, job: Job, incident_id: str) -> bool:
        """DESIGN "Scaling out": a delayed trigger is not sent if BigPanda resolved the
        incident meanwhile: known from the store when BigPanda's resolve webhook came, else
        confirmed with BigPanda when the store cannot vouch (see :meth:`_vouched`)."""
        ctx = self.ctx
        settings = ctx.holder.current
        if not self._late(job) or not settings.bigpanda_writes_enabled:
            return False  # (without BigPanda's API configured, late triggers are sent as-is)
        if await self._known_resolved(job, incident_id):
            ctx.metrics.late_trigger_checks.labels("store").inc()
            return True  # a resolve was accepted after this trigger
        if not self._needs_confirmation(job):
            ctx.metrics.late_trigger_checks.labels("vouched").inc()
            return False
        ctx.metrics.late_trigger_checks.labels("bigpanda").inc()
        client = ctx.bigpanda(settings)
        assert client is not None  # bigpanda_writes_enabled
        spend(job, ctx.limiter.bigpanda("get"))
        try:
            current = await client.get_incident(incident_id)
        except Rejected:
            return False  # unknown to BigPanda's API: nothing says it is resolved
        except Unauthorized:
            ctx.health.unauthorized(Upstream.BIGPANDA)
            return False  # cannot confirm; sending beats dropping
        ctx.health.ok(Upstream.BIGPANDA)
        status = current.get("status")
        resolved = status == "ok" or current.get("active") is False
        if not resolved:
            now = time.monotonic()
            if len(self._confirmed_open) >= MAX_CONFIRMED:
                self._confirmed_open = {
                    k: v for k, v in self._confirmed_open.items() if now - v <= CONFIRMED_FOR
                }
            self._confirmed_open[job.id] = now
        return resolved

    async def note(self, job: Job) -> Done:
        ctx = self.ctx
        settings = ctx.holder.current
        client = ctx.pagerduty_rest(settings)
        if not settings.notes_enabled or client is None:
            ctx.metrics.ignored.labels("notes_disabled").inc()
            return Done(outcome=DeliveryOutcome.SKIPPED)
        spec = expect(job.spec, PdNote)
        incident_id = spec.incident_id
        content = spec.content
        try:
            try:
                pd_id = await self._pd_incident_id(job, client, incident_id)
            except IncidentAbsent:
                ctx.metrics.skipped_dependents.labels(job.kind).inc()
                logger.info(
                    "note skipped: the relay never triggered its incident and PagerDuty has none",
                    extra={"incident_id": incident_id},
                )
                return Done(outcome=DeliveryOutcome.SKIPPED_NO_INCIDENT)
            if (job.attempts > 0 or job.restored) and not job.looked:
                # An earlier attempt (this process's, or one killed by a crash) may have
                # written the note and not lived to record it: PagerDuty's answer lost, or
                # the process killed after the POST and before the commit. Look before
                # writing again, so that the note exists exactly once. A job this process
                # submitted and never attempted cannot have been written: no look needed.
                spend(job, self._rest_bucket())
                for note in await client.list_notes(pd_id):
                    if note.get("content") == content:
                        ctx.metrics.duplicates.labels("pd_note_found").inc()
                        return Done(remember=[echo.wrote_note_key(str(note.get("id")))])
                # Not there. If the POST below must first wait for a REST token (the look
                # took this job's), the retry need not look again: nothing can have
                # written it meanwhile (the lane is this process's). Without this, a dry
                # bucket made every retry look and wait again, forever.
                job.looked = True
            crashpoints.reached("pd_note:before_post")
            spend(job, self._rest_bucket())  # reserved by note_gate unless used above
            job.looked = False  # from here on the note may exist: a retry looks again
            note = await client.create_note(pd_id, content)
            crashpoints.reached("pd_note:after_post")
        except RateLimited as exc:
            await self._rest_bucket().throttled(exc.retry_after)
            raise
        except Unauthorized:
            ctx.health.unauthorized(Upstream.PAGERDUTY_REST)
            raise
        ctx.health.ok(Upstream.PAGERDUTY_REST)
        return Done(remember=[echo.wrote_note_key(str(note.get("id")))])

    async def _pd_incident_id(
        self, job: Job, client: PagerDutyIncidentsClient, incident_id: str
    ) -> str:
        pd_id = await owned.bind(self.ctx, job, client, incident_id)
        if pd_id is None:
            stored = await self.ctx.memory.incident(incident_id)
            if stored is None or stored.absent:
                # The relay never triggered it (no trigger of it was delivered: none came,
                # the incident was first shared already resolved, or its trigger was
                # rejected), or its trigger was skipped (resolved in BigPanda before it could
                # be sent), and PagerDuty confirms it has no such incident: it never will.
                # Every earlier job of the incident (its lane) has finished by now, and a
                # delivered trigger records the incident in the same commit.
                raise IncidentAbsent(incident_id)
            # A trigger was delivered: PagerDuty creates the incident asynchronously.
            raise NotReady(f"PagerDuty incident for {incident_id} not found yet")
        return pd_id


class IncidentAbsent(Exception):
    """The note's PagerDuty incident will never exist (never triggered by the relay, or its
    trigger was skipped) and PagerDuty has none."""
