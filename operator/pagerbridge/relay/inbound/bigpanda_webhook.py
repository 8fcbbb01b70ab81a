"""``POST /v1/bigpanda/webhook``: a BigPanda incident in, durable PagerDuty work out.

Per request: bearer token (constant-time), JSON content type, size cap, lenient parse,
translation, key override and tag mappings; then the resulting jobs are committed to the
outbox in one (grouped) transaction and only then answered 202. Idempotency keys make a
re-sent webhook a no-op: the event is keyed by (incident id, content hash), each comment by
(incident id, comment id). A snoozed incident with ``sync.snooze`` adds an acknowledge after
its trigger, keyed like the trigger (see docs/relay.md, "Incident lifecycle").
"""

from __future__ import annotations

import logging
import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pagerbridge.api.contract import KEY_OVERRIDE_HEADER
from pagerbridge.relay.context import RelayContext
from pagerbridge.relay.errors import InboundError
from pagerbridge.relay.inbound.common import (
    bearer_matches,
    check_bearer,
    check_json_content_type,
    decode_json,
    error_response,
    read_body,
)
from pagerbridge.relay.incidents import echo
from pagerbridge.relay.incidents.overrides import (
    Routing,
    choose_routing,
    header_mappings,
    merge_mappings,
)
from pagerbridge.relay.incidents.parsing import Incident, parse_incident
from pagerbridge.relay.incidents.translate import acknowledge_event, translate
from pagerbridge.relay.outbound.dispatcher import Dispatcher
from pagerbridge.relay.outbox.jobs import PdEvent, PdNote
from pagerbridge.relay.outbox.port import IncidentMark, Job, NewJob, OutboxClosed

logger = logging.getLogger(__name__)
ENDPOINT = "bigpanda"


def ordering_key(incident_id: str) -> str:
    return f"bp:{incident_id}"


class BigPandaWebhook:
    def __init__(self, ctx: RelayContext, dispatcher: Dispatcher) -> None:
        self.ctx = ctx
        self.dispatcher = dispatcher

    def verified_by_headers(self, headers: list[tuple[bytes, bytes]]) -> bool:
        """Whether raw request headers already prove the sender (the edge's question, asked
        before the body is read: see :mod:`pagerbridge.relay.inbound.budget`)."""
        tokens = self.ctx.holder.current.secrets.bigpanda_webhook_tokens
        for name, value in headers:
            if name == b"authorization":
                return bearer_matches(value.decode("latin-1"), tokens) is True
        return False

    async def endpoint(self, request: Request) -> Response:
        started = time.perf_counter()
        metrics = self.ctx.metrics
        try:
            response = await self._handle(request)
        except InboundError as exc:
            metrics.webhooks.labels(ENDPOINT, exc.code).inc()
            return error_response(exc, ENDPOINT)
        except OutboxClosed as exc:
            metrics.webhooks.labels(ENDPOINT, "outbox_unavailable").inc()
            logger.error("outbox unavailable; webhook not accepted", extra={"error": str(exc)})
            return JSONResponse(
                {"error": "outbox_unavailable", "message": "not stored; retry later"},
                status_code=503,
            )
        metrics.accept_latency.labels(ENDPOINT).observe(time.perf_counter() - started)
        return response

    def _jobs(self, request: Request, incident: Incident) -> tuple[list[NewJob], str]:
        ctx = self.ctx
        settings = ctx.holder.current
        config = settings.config
        routing = choose_routing(
            incident, config.key_override_tag, request.headers.get(KEY_OVERRIDE_HEADER)
        )
        ctx.saw_override_key(routing.key)  # before anything can log it
        from_headers, ignored = header_mappings(request.headers.items())
        if ignored:
            ctx.metrics.mapping_header_ignored.inc(len(ignored))
            logger.warning(
                "tag mapping headers ignored (unknown field or tag)", extra={"headers": ignored}
            )
        translation = translate(
            incident, config, routing, merge_mappings(config.tag_mappings, from_headers)
        )
        for warning in translation.warnings:
            logger.warning(
                "tag mapping not applied", extra={"incident_id": incident.id, "reason": warning}
            )
        for drop in translation.dropped_links:
            ctx.metrics.links_dropped.labels(drop.kind, drop.reason).inc()
            logger.warning(
                "link not added to the trigger; the trigger is sent without it",
                extra={
                    "incident_id": incident.id,
                    "kind": drop.kind.value,
                    "rule": drop.rule,
                    "source": drop.source,
                    "reason": drop.reason.value,
                },
            )
        if translation.action == "trigger" and routing.fallback_reason:
            ctx.metrics.key_override_invalid.labels(routing.fallback_reason).inc()
            logger.warning(
                "key override not usable; default key used",
                extra={
                    "incident_id": incident.id,
                    "tag": routing.tag,
                    "reason": routing.fallback_reason,
                },
            )
        key = ordering_key(incident.id)
        mark = IncidentMark(incident.id, translation.action, incident.updated_at)
        event = NewJob(
            PdEvent(
                incident.id,
                translation.action,
                translation.event,
                Routing(key=routing.key, tag=routing.tag),  # what is stored of it
            ),
            key,
            idempotency_key=f"ev:{incident.id}:{{epoch}}:{translation.content_hash}",
            # A resolve BigPanda reports because the relay resolved it for PagerDuty: echo.
            unless_seen=echo.resolved_bp_key(incident.id)
            if translation.action == "resolve"
            else None,
            incident=mark,
        )
        events = [event]
        if translation.acknowledge:
            # A snoozed incident (sync.snooze): after its trigger, in the same lane, so the
            # PagerDuty alert exists when the acknowledge arrives and a later resolve still
            # resolves. Once per content of the trigger (which shows the snooze): a re-sent
            # webhook is a duplicate, a new snooze or a new alert during one acknowledges
            # again. The same mark: stale with its trigger, and it never ends a life.
            events.append(
                NewJob(
                    PdEvent(
                        incident.id,
                        "acknowledge",
                        acknowledge_event(incident.id),
                        Routing(key=routing.key, tag=routing.tag),
                    ),
                    key,
                    idempotency_key=f"ack:{incident.id}:{{epoch}}:{translation.content_hash}",
                    incident=mark,
                )
            )
        notes: list[NewJob] = []
        if settings.notes_enabled:
            for comment in incident.comments:
                if echo.is_relay_text(comment.text):
                    continue  # a comment the relay wrote (PagerDuty note → BigPanda)
                notes.append(
                    NewJob(
                        PdNote(
                            incident.id,
                            comment.id,
                            echo.note_text(comment.text, comment.created_by),
                        ),
                        key,
                        idempotency_key=f"comment:{incident.id}:{comment.id}",
                        unless_seen=echo.wrote_comment_key(incident.id, comment.text),
                    )
                )
        # Notes belong to the open PagerDuty incident: before a resolve, after a trigger.
        jobs = [*notes, event] if translation.action == "resolve" else [*events, *notes]
        return jobs, translation.action

    async def _handle(self, request: Request) -> Response:
        ctx = self.ctx
        settings = ctx.holder.current
        stage = ctx.metrics.accept_stage
        started = time.perf_counter()
        check_bearer(request, settings.secrets.bigpanda_webhook_tokens)
        check_json_content_type(request)
        body = await read_body(request)
        incident = parse_incident(decode_json(body))
        parsed = time.perf_counter()
        jobs, action = self._jobs(request, incident)
        translated = time.perf_counter()
        stored = await ctx.jobs.enqueue(jobs)
        committed = time.perf_counter()
        stage.labels("parse").observe(parsed - started)
        stage.labels("translate").observe(translated - parsed)
        stage.labels("commit").observe(committed - translated)
        queued = [job for job in stored if isinstance(job, Job)]
        self.dispatcher.submit(queued)
        duplicates = 0
        for new, result in zip(jobs, stored, strict=True):
            if isinstance(result, Job):
                ctx.metrics.jobs_enqueued.labels(new.kind).inc()
            elif result == "echo":
                echoed = "resolve" if isinstance(new.spec, PdEvent) else "comment"
                ctx.metrics.echo_suppressed.labels(echoed).inc()
            elif result == "stale":
                ctx.metrics.ignored.labels("stale_webhook").inc()
                logger.info(
                    "older webhook than one already seen; event skipped",
                    extra={"incident_id": incident.id},
                )
            else:
                duplicates += 1
                ctx.metrics.duplicates.labels(new.kind).inc()
        ctx.metrics.webhooks.labels(ENDPOINT, "accepted").inc()
        response = JSONResponse(
            {
                "status": "accepted",
                "incident_id": incident.id,
                "action": action,
                "queued": len(queued),
                "duplicates": duplicates,
            },
            status_code=202,
        )
        stage.labels("respond").observe(time.perf_counter() - committed)
        return response
