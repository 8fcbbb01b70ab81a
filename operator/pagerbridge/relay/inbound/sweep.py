"""The repair sweep (anti-entropy, issue 27): BigPanda and PagerDuty agree on every incident
the relay knows, whatever webhooks were lost.

Inside the relay nothing accepted is lost, but a webhook that never reached it is: PagerDuty
drops a webhook after 5 attempts over about 20 minutes, BigPanda documents no retries, and
a relay unreachable for longer (a broken Ingress, an expired certificate, an outage) misses
resolves for good. So the relay, which holds the credentials and the record of which
incidents it opened, checks every incident it knows as open on either side at least once
per ``interval``: BigPanda's ``GET incident`` against PagerDuty's ``GET /incidents/{id}``
(of the PagerDuty incident its own trigger produced, see :mod:`..outbound.owned`).

A difference is repaired through the outbox exactly as a webhook would be, so the same
exactly-once, ordering and echo rules hold: resolved in BigPanda and open in PagerDuty → a
``pd_event`` resolve in the incident's lane (as BigPanda's resolve webhook would have
made); resolved in PagerDuty and active in BigPanda → a ``bp_resolve`` (as PagerDuty's
``incident.resolved`` webhook would have, only with ``sync.resolve``). An incident with
jobs pending is left to them. An incident active in BigPanda with no PagerDuty incident of
ours (its trigger dead-lettered, or lost) is triggered again from BigPanda's current state,
once per life of the incident (``repairs_total{reason="no_pagerduty_incident"}``).

Webhook traffic first: the sweep paces itself to ``share`` of each upstream's rate limit,
and takes a slot of the shared schedule only when no delivery is waiting for one (never
queuing behind or ahead of deliveries); a check that finds no slot waits for the next
pass. Request rate: 2 GETs per open incident per check (3 the first time, when its
PagerDuty incident is looked up), each incident checked when its last check is older than
``DUE`` times ``interval``, passes every ``interval`` / ``PASSES``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pagerbridge.clients.errors import ClientError
from pagerbridge.relay.context import RelayContext
from pagerbridge.relay.errors import InboundError
from pagerbridge.relay.inbound.bigpanda_webhook import ordering_key
from pagerbridge.relay.incidents import echo
from pagerbridge.relay.incidents.overrides import Routing, choose_routing
from pagerbridge.relay.incidents.parsing import parse_incident
from pagerbridge.relay.incidents.translate import acknowledge_event, translate
from pagerbridge.relay.outbound import owned
from pagerbridge.relay.outbound.dispatcher import Dispatcher
from pagerbridge.relay.outbound.ratelimit import TokenBucket
from pagerbridge.relay.outbox.jobs import BpResolve, PdEvent
from pagerbridge.relay.outbox.port import (
    IncidentMark,
    Job,
    NewJob,
    OpenIncident,
    OutboxAdmin,
    OutboxClosed,
)

logger = logging.getLogger(__name__)

PASSES = 8  # passes per interval
DUE = 0.75  # an incident is checked again once its last check is this many intervals old
MAX_LIST = 10_000  # open incidents read per pass
# A difference younger than this (or a quarter interval) is left to the webhook that may
# still be on its way; one that arrives later anyway finds the work done (a resolve of a
# resolved incident changes nothing on either side).
GRACE = 60.0

Verdict = Literal["agree", "repaired", "skipped", "drift"]


@dataclass(frozen=True)
class Difference:
    """What a check found (``pagerbridge outbox NAME drift`` lists these)."""

    incident_id: str
    pd_incident_id: str | None
    bigpanda_active: bool
    pagerduty_status: str | None  # None: no PagerDuty incident of ours
    repair: str  # resolve_pagerduty | resolve_bigpanda | trigger | close (records only) | none
    reason: str
    bigpanda: dict[str, Any] | None = field(default=None, compare=False, repr=False)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _moment(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


class _Pacer:
    """At most one request per ``gap`` seconds for the sweep, per upstream bucket."""

    def __init__(self) -> None:
        self._next: dict[str, float] = {}

    async def take(self, bucket: TokenBucket, share: float) -> bool:
        now = time.monotonic()
        due = self._next.get(bucket.name, 0.0)
        if due > now:
            await asyncio.sleep(due - now)
        if bucket.busy():
            return False  # a delivery waits for this upstream: it goes first
        if not await bucket.acquire():
            return False
        self._next[bucket.name] = time.monotonic() + bucket.interval() / max(share, 0.01)
        return True


class RepairSweep:
    def __init__(
        self,
        ctx: RelayContext,
        admin: OutboxAdmin,
        dispatcher: Dispatcher,
        interval: float,
        share: float,
    ) -> None:
        self.ctx = ctx
        self.admin = admin
        self.dispatcher = dispatcher
        self.interval = interval
        self.share = share
        self._pacer = _Pacer()

    async def run_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except OutboxClosed as exc:
                logger.warning(
                    "repair sweep skipped: outbox unavailable", extra={"error": str(exc)}
                )
            except Exception:
                logger.exception("repair sweep pass failed")
            await asyncio.sleep(self.interval / PASSES)

    async def sweep(self) -> None:
        """One pass: check every open incident that is due."""
        ctx = self.ctx
        now = time.time()
        incidents = await ctx.memory.open_incidents(MAX_LIST)
        self._oldest(incidents, now)
        busy = {job.ordering_key for job in await self.admin.pending()}
        for incident in incidents:
            if incident.checked is not None and now - incident.checked < DUE * self.interval:
                break  # the list is ordered by the last check: the rest are not due
            verdict = await self.check(incident, busy, repair=True)
            ctx.metrics.sweep_checks.labels(verdict).inc()
            if verdict != "skipped":
                await ctx.memory.mark_checked([incident.incident_id], time.time())
        ctx.metrics.sweep_passes.inc()
        self._oldest(await ctx.memory.open_incidents(MAX_LIST), time.time())

    async def drift(self) -> tuple[int, list[Difference]]:
        """Every open incident compared now, nothing repaired: (checked, differences).
        Records which PagerDuty incident is ours where it was not looked up yet."""
        incidents = await self.ctx.memory.open_incidents(MAX_LIST)
        busy = {job.ordering_key for job in await self.admin.pending()}
        found: list[Difference] = []
        for incident in incidents:
            verdict = await self.check(incident, busy, repair=False)
            if isinstance(verdict, Difference):
                found.append(verdict)
        return len(incidents), found

    def _oldest(self, incidents: list[OpenIncident], now: float) -> None:
        ages = [now - (o.checked if o.checked is not None else o.since) for o in incidents]
        self.ctx.metrics.sweep_oldest_unchecked.set(max(ages, default=0.0))

    async def check(
        self, incident: OpenIncident, busy: set[str], *, repair: bool
    ) -> Verdict | Difference:
        """Compare both sides; repair (``repair``) or describe the difference."""
        # The listing shows young differences too: a pass repairs them once the grace is over.
        found = await self.compare(incident, busy, grace=repair)
        if isinstance(found, str):
            return found
        if not repair:
            return found
        if found.repair == "none":
            self.ctx.metrics.sweep_drift.labels(found.reason).inc()
            return "drift"
        if found.repair == "close":
            await self.ctx.memory.close_incident(found.incident_id, ordering_key(found.incident_id))
            return "agree"
        await self._repair(found)
        return "repaired"

    async def compare(
        self, incident: OpenIncident, busy: set[str], *, grace: bool = True
    ) -> Verdict | Difference:
        ctx = self.ctx
        settings = ctx.holder.current
        bp = ctx.bigpanda(settings)
        pd = ctx.pagerduty_rest(settings)
        incident_id = incident.incident_id
        if bp is None or pd is None:
            return "skipped"  # both APIs are needed to compare
        if ordering_key(incident_id) in busy or (
            incident.pd_incident_id and f"pd:{incident.pd_incident_id}" in busy
        ):
            return "skipped"  # its own jobs will bring both sides together
        rest = ctx.limiter.rest(settings.secrets.pagerduty_api_token)
        get = ctx.limiter.bigpanda("get")
        try:
            if not await self._pacer.take(get, self.share):
                return "skipped"
            ctx.metrics.sweep_requests.labels("bigpanda").inc()
            current = await bp.get_incident(incident_id)
            if not current:
                return "skipped"  # unknown to BigPanda's API
            bp_active = current.get("active") is not False and current.get("status") != "ok"
            bp_changed = _number(current.get("endedOn") or current.get("changedOn"))
            pd_id = incident.pd_incident_id
            if pd_id is None and incident.live:
                if not await self._pacer.take(rest, self.share):
                    return "skipped"
                ctx.metrics.sweep_requests.labels("pagerduty").inc()
                pd_id = await owned.bind(ctx, None, pd, incident_id)
            pd_status: str | None = None
            pd_changed: float | None = None
            if pd_id is not None:
                if not await self._pacer.take(rest, self.share):
                    return "skipped"
                ctx.metrics.sweep_requests.labels("pagerduty").inc()
                pd_incident = await pd.get_incident(pd_id)
                status = pd_incident.get("status")
                pd_status = status if isinstance(status, str) else None
                pd_changed = _moment(pd_incident.get("last_status_change_at"))
        except ClientError as exc:
            logger.info(
                "repair sweep: check failed, retried next pass",
                extra={"incident_id": incident_id, "error": type(exc).__name__},
            )
            return "skipped"
        pd_open = pd_status in ("triggered", "acknowledged")
        now = time.time()
        young = min(GRACE, self.interval / 4) if grace else 0.0
        if not bp_active and pd_open:
            if bp_changed is not None and now - bp_changed < young:
                return "skipped"  # BigPanda's webhook may still be on its way
            return Difference(
                incident_id,
                pd_id,
                bp_active,
                pd_status,
                "resolve_pagerduty",
                "resolved_in_bigpanda",
            )
        if bp_active and pd_status == "resolved":
            if not settings.config.sync.resolve:
                return "agree"  # PagerDuty's resolves are not mirrored (sync.resolve off)
            if pd_changed is not None and now - pd_changed < young:
                return "skipped"  # PagerDuty's webhook may still be on its way
            return Difference(
                incident_id,
                pd_id,
                bp_active,
                pd_status,
                "resolve_bigpanda",
                "resolved_in_pagerduty",
            )
        if bp_active and pd_status is None:
            # Active in BigPanda, no PagerDuty incident of ours: its trigger never made one
            # (dead-lettered, or PagerDuty lost it). Triggered again from BigPanda's state.
            if now - incident.since < young:
                return "skipped"  # PagerDuty may not have made it yet
            return Difference(
                incident_id, None, bp_active, None, "trigger", "no_pagerduty_incident", current
            )
        return "agree"

    def _trigger(self, found: Difference) -> list[NewJob] | None:
        """The trigger BigPanda's webhook would have made, from its current state (the
        config's key override tag and tag mappings; a request's headers are not known),
        and its acknowledge when the incident is snoozed (``sync.snooze``)."""
        config = self.ctx.holder.current.config
        try:
            incident = parse_incident(found.bigpanda)
        except InboundError:
            return None
        routing = choose_routing(incident, config.key_override_tag, None)
        translation = translate(incident, config, routing, list(config.tag_mappings))
        if translation.action != "trigger":
            return None
        stored_routing = Routing(key=routing.key, tag=routing.tag)
        mark = IncidentMark(incident.id, "trigger", None)
        jobs = [
            NewJob(
                PdEvent(incident.id, "trigger", translation.event, stored_routing),
                ordering_key(incident.id),
                # Once per life of the incident (its epoch), however often the sweep finds it.
                idempotency_key=f"repair:trigger:{incident.id}:{{epoch}}",
                incident=mark,
            )
        ]
        if translation.acknowledge:
            jobs.append(
                NewJob(
                    PdEvent(
                        incident.id, "acknowledge", acknowledge_event(incident.id), stored_routing
                    ),
                    ordering_key(incident.id),
                    idempotency_key=f"repair:ack:{incident.id}:{{epoch}}",
                    incident=mark,
                )
            )
        return jobs

    async def _repair(self, found: Difference) -> None:
        ctx = self.ctx
        incident_id = found.incident_id
        if found.repair == "trigger":
            made = self._trigger(found)
            if made is None:
                ctx.metrics.sweep_drift.labels(found.reason).inc()
                return
            jobs = made
            direction = "to_pagerduty"
        elif found.repair == "resolve_pagerduty":
            job = NewJob(
                PdEvent(
                    incident_id, "resolve", {"event_action": "resolve", "dedup_key": incident_id}
                ),
                ordering_key(incident_id),
                idempotency_key=f"repair:pd:{incident_id}:{found.pd_incident_id}",
                incident=IncidentMark(incident_id, "resolve", None),
            )
            jobs = [job]
            direction = "to_pagerduty"
        else:
            assert found.pd_incident_id is not None
            job = NewJob(
                BpResolve(
                    found.pd_incident_id,
                    incident_key=incident_id,
                    by="PagerBridge repair",
                    repair=True,
                ),
                f"pd:{found.pd_incident_id}",
                idempotency_key=f"repair:bp:{found.pd_incident_id}",
                unless_seen=echo.resolved_pd_key(incident_id),
            )
            jobs = [job]
            direction = "to_bigpanda"
        stored = await ctx.jobs.enqueue(jobs)
        queued = [result for result in stored if isinstance(result, Job)]
        if isinstance(stored[0], Job):
            ctx.metrics.repairs.labels(direction, found.reason).inc()
            logger.info(
                "repair sweep: difference repaired through the outbox",
                extra={"incident_id": incident_id, "reason": found.reason},
            )
        for new, result in zip(jobs, stored, strict=True):
            if isinstance(result, Job):
                ctx.metrics.jobs_enqueued.labels(new.kind).inc()
        if queued:
            self.dispatcher.submit(queued)
