"""Delivering PagerDuty's side to BigPanda: resolves (``bp_resolve``) and comments
(``bp_comment``) through the Incidents API v2. Handlers for the dispatcher.

The BigPanda incident id is the PagerDuty ``incident_key`` (the relay set it as the
Events v2 ``dedup_key``). When the webhook did not carry it, the relay's own records or a
REST read of the PagerDuty incident supply it. Incidents PagerBridge did not create are
ignored and counted.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from pagerbridge.clients.bigpanda_incidents import BigPandaIncidentsClient
from pagerbridge.clients.errors import (
    ConnectionFailed,
    RateLimited,
    ServerError,
    Unauthorized,
)
from pagerbridge.relay.context import RelayContext
from pagerbridge.relay.incidents import echo
from pagerbridge.relay.outbound import crashpoints, owned
from pagerbridge.relay.outbound.dispatcher import Done, reserve, spend
from pagerbridge.relay.outbox.jobs import BpComment, BpResolve, expect
from pagerbridge.relay.outbox.port import Job
from pagerbridge.relay.outcomes import DeliveryOutcome, Upstream

logger = logging.getLogger(__name__)


class BigPandaDelivery:
    def __init__(self, ctx: RelayContext) -> None:
        self.ctx = ctx

    async def _bigpanda_id(self, job: Job, spec: BpResolve | BpComment) -> tuple[str | None, str]:
        """The BigPanda incident behind a PagerDuty incident, or None and why when it is not
        ours: only the PagerDuty incident the relay's own trigger produced (see owned) maps
        to a BigPanda incident; another with the same ``incident_key`` maps to none."""
        ctx = self.ctx
        pd_id = spec.pd_incident_id
        owner = await ctx.memory.owner_of(pd_id)
        if owner is not None:
            return owner, ""
        key = spec.incident_key
        client = ctx.pagerduty_rest()
        if not key and client is not None:
            spend(job, ctx.limiter.rest(ctx.holder.current.secrets.pagerduty_api_token))
            try:
                incident = await client.get_incident(pd_id)
            except Unauthorized:
                ctx.health.unauthorized(Upstream.PAGERDUTY_REST)
                raise
            found = incident.get("incident_key")
            key = found if isinstance(found, str) else None
        if not key:
            return None, "not_ours"
        stored = await ctx.memory.incident(key)
        if stored is None:
            return None, "not_ours"  # no trigger of this relay's has that key
        ours = stored.pd_incident_id
        if ours is None and client is not None:
            try:
                ours = await owned.bind(ctx, job, client, key)
            except Unauthorized:
                ctx.health.unauthorized(Upstream.PAGERDUTY_REST)
                raise
        if ours == pd_id:
            return key, ""
        if ours is None and client is None:
            # Without REST access the relay cannot tell which incident is its own: the
            # webhook's incident_key names one of its incidents, which is all it knows.
            return key, ""
        logger.info(
            "PagerDuty incident with one of our incident keys, not produced by our trigger; "
            "ignored",
            extra={"pd_incident_id": pd_id, "incident_id": key},
        )
        return None, "foreign_same_key"

    async def _prepare(
        self, job: Job, spec: BpResolve | BpComment
    ) -> tuple[BigPandaIncidentsClient, str] | None:
        bp = self.ctx.bigpanda()
        if bp is None:
            self.ctx.metrics.ignored.labels("bigpanda_not_configured").inc()
            return None
        incident_id, reason = await self._bigpanda_id(job, spec)
        if incident_id is None:
            self.ctx.metrics.ignored.labels(reason).inc()
            logger.info(
                "PagerDuty incident not created by PagerBridge; ignored",
                extra={"pd_incident_id": spec.pd_incident_id},
            )
            return None
        return bp, incident_id

    async def resolve(self, job: Job) -> Done:
        ctx = self.ctx
        spec = expect(job.spec, BpResolve)
        prepared = await self._prepare(job, spec)
        if prepared is None:
            return Done(outcome=DeliveryOutcome.IGNORED)
        bp, incident_id = prepared
        if await ctx.memory.seen(echo.resolved_pd_key(incident_id)):
            ctx.metrics.echo_suppressed.labels("resolve").inc()
            return Done(outcome=DeliveryOutcome.ECHO)
        mirrored = echo.mirrored_resolve_key(spec.pd_incident_id)
        repaired = echo.mirrored_resolve_key(spec.pd_incident_id, by_repair=True)
        # The repair sweep's resolve and the webhook's, whichever comes second (one lane,
        # in order), write nothing. (Two webhooks about it both write, the second answered
        # 409 = already resolved, as before.)
        if await ctx.memory.seen(mirrored if spec.repair else repaired):
            ctx.metrics.duplicates.labels(job.kind).inc()
            return Done(outcome=DeliveryOutcome.IGNORED)
        # Remember before calling: BigPanda's webhook about this resolve may arrive before
        # its answer to us does.
        await ctx.memory.remember([echo.resolved_bp_key(incident_id)])
        text = echo.comment_text("Resolved in PagerDuty", spec.by)
        await self._call(job, "resolve", lambda: bp.resolve(incident_id, text))
        return Done(remember=[mirrored, repaired] if spec.repair else [mirrored])

    async def comment(self, job: Job) -> Done:
        ctx = self.ctx
        spec = expect(job.spec, BpComment)
        prepared = await self._prepare(job, spec)
        if prepared is None:
            return Done(outcome=DeliveryOutcome.IGNORED)
        bp, incident_id = prepared
        text = echo.comment_text(spec.content, spec.by)
        await ctx.memory.remember([echo.wrote_comment_key(incident_id, text)])
        if (job.attempts > 0 or job.restored) and not job.looked:
            # An earlier attempt (this process's, or one killed by a crash) may have
            # written the comment and not lived to record it (BigPanda's 204 lost, or the
            # process killed after the POST and before the commit): look in the
            # incident's activity feed before writing again, as notes do in PagerDuty.
            found: list[str] = []

            async def look() -> None:
                found.extend(await bp.comment_texts(incident_id))

            await self._call(job, "activities", look)
            if text in found:
                ctx.metrics.duplicates.labels("bp_comment_found").inc()
                return Done()
            job.looked = True  # not there: a retry waiting for a token need not look again
        crashpoints.reached("bp_comment:before_post")
        job.looked = False  # from here on the comment may exist: a retry looks again
        try:
            await self._call(job, "comments", lambda: bp.comment(incident_id, text))
        except (RateLimited, Unauthorized):
            job.looked = True  # refused, so surely not written: the retry need not look
            raise
        crashpoints.reached("bp_comment:after_post")
        return Done()

    def slots(self, job: Job) -> tuple[str, ...]:
        """The delivery-slot group of every BigPanda write (see relay.outbound.slots)."""
        return (f"upstream:{Upstream.BIGPANDA}",)

    async def resolve_gate(self, job: Job) -> None:
        """The endpoint's token, taken before a delivery slot (see Dispatcher)."""
        await reserve(job, self.ctx.limiter.bigpanda("resolve"))

    async def comment_gate(self, job: Job) -> None:
        await reserve(job, self.ctx.limiter.bigpanda("comments"))

    async def _call(self, job: Job, endpoint: str, call: Callable[[], Awaitable[object]]) -> None:
        """One write to BigPanda (its rate-limit token was taken by the gate)."""
        ctx = self.ctx
        bucket = ctx.limiter.bigpanda(endpoint)
        spend(job, bucket)
        try:
            await call()
        except RateLimited as exc:
            await bucket.throttled(exc.retry_after if exc.retry_after is not None else 1.0)
            raise
        except (ServerError, ConnectionFailed):
            await bucket.penalize(1.0)
            raise
        except Unauthorized:
            ctx.health.unauthorized(Upstream.BIGPANDA)
            logger.error("BigPanda refused the API key (401/403); retrying slowly")
            raise
        ctx.health.ok(Upstream.BIGPANDA)
