"""``POST /v1/pagerduty/webhook``: PagerDuty Webhooks v3 in, BigPanda work out.

Order matters: size cap, then the HMAC signature over the raw bytes (:mod:`.signatures`),
and only then JSON parsing. A verified webhook is deduplicated by its signed ``event.id``
(the unsigned ``X-Webhook-Id`` only when the body has none: a captured body replayed under
a new header id is still a duplicate), durably, in the same transaction that stores its
job, and answered 200 as soon as the job is committed, well inside PagerDuty's 5 s
deadline; BigPanda is called by the dispatcher. An event whose signed ``occurred_at`` is
older than ``pagerDuty.webhookMaxAgeSeconds`` (default 24 h, inside PagerDuty's 48 h retry
horizon and the 30-day idempotency memory) is ignored, so an old capture cannot be
replayed once its key has been pruned.

Handled event types: ``incident.resolved`` → BigPanda resolve (``sync.resolve``),
``incident.annotated`` → BigPanda comment (``sync.notes``), and each lifecycle change
turned on in ``sync.pagerDutyEvents`` (acknowledged, reassigned, priority updated, ...; the
deprecated ``sync.acknowledge`` still turns on the first) → one BigPanda comment saying who
did what (:mod:`pagerbridge.relay.incidents.lifecycle`). Types turned off, and unknown
ones, are answered 200 and ignored: nothing is stored or written.
Echoes (see :mod:`.echo`) are dropped here when the marker or memory already tells.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pagerbridge.api.relay_config import SyncConfig
from pagerbridge.relay.context import RelayContext
from pagerbridge.relay.errors import (
    InboundError,
    InvalidIncident,
    NotConfigured,
    SenderUnauthorized,
)
from pagerbridge.relay.inbound.common import (
    check_json_content_type,
    decode_json,
    error_response,
    read_body,
)
from pagerbridge.relay.inbound.signatures import verify
from pagerbridge.relay.incidents import echo, lifecycle
from pagerbridge.relay.incidents.identifiers import is_pagerduty_id, is_safe_text_id
from pagerbridge.relay.outbound.dispatcher import Dispatcher
from pagerbridge.relay.outbox.jobs import BpComment, BpResolve
from pagerbridge.relay.outbox.port import Job, NewJob, OutboxClosed

logger = logging.getLogger(__name__)
ENDPOINT = "pagerduty"
SIGNATURE_HEADER = "x-pagerduty-signature"
WEBHOOK_ID_HEADER = "x-webhook-id"


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _pd_id(value: Any, what: str) -> str | None:
    """A PagerDuty object id from the webhook, or None when absent; refused if implausible."""
    text = _str(value)
    if text is not None and not is_pagerduty_id(text):
        raise InvalidIncident(f"{what} is not a PagerDuty id")
    return text


def _incident_key(value: Any) -> str | None:
    text = _str(value)
    if text is not None and not is_safe_text_id(text):
        raise InvalidIncident("incident_key is not a plausible BigPanda incident id")
    return text


def _agent(event: dict[str, Any]) -> str | None:
    agent = event.get("agent")
    if isinstance(agent, dict):
        return _str(agent.get("summary")) or _str(agent.get("email")) or _str(agent.get("id"))
    return None


def is_stale(occurred_at: Any, now: float, max_age: float) -> bool:
    """True when a signed ``occurred_at`` (ISO 8601) is older than ``max_age`` seconds.

    An absent or unreadable timestamp is not stale: PagerDuty always sends one, and the
    body is signed, so only PagerDuty could have left it out.
    """
    if not isinstance(occurred_at, str):
        return False
    try:
        moment = datetime.fromisoformat(occurred_at.replace("Z", "+00:00"))
    except ValueError:
        return False
    if moment.tzinfo is None:
        return False
    return now - moment.timestamp() > max_age


class PagerDutyWebhook:
    def __init__(self, ctx: RelayContext, dispatcher: Dispatcher) -> None:
        self.ctx = ctx
        self.dispatcher = dispatcher

    async def endpoint(self, request: Request) -> Response:
        started = time.perf_counter()
        try:
            response = await self._handle(request)
        except InboundError as exc:
            self.ctx.metrics.webhooks.labels(ENDPOINT, exc.code).inc()
            return error_response(exc, ENDPOINT)
        except OutboxClosed:
            self.ctx.metrics.webhooks.labels(ENDPOINT, "outbox_unavailable").inc()
            return JSONResponse(
                {"error": "outbox_unavailable", "message": "not stored; retry later"},
                status_code=503,
            )
        self.ctx.metrics.accept_latency.labels(ENDPOINT).observe(time.perf_counter() - started)
        return response

    async def _handle(self, request: Request) -> Response:
        ctx = self.ctx
        settings = ctx.holder.current
        secrets = settings.secrets.pagerduty_webhook_secrets
        if not secrets:
            raise NotConfigured("PagerDuty webhooks are not configured (no webhookSecretFile)")
        body = await read_body(request)
        if not verify(request.headers.get(SIGNATURE_HEADER), body, secrets):
            raise SenderUnauthorized("missing or invalid X-PagerDuty-Signature")
        check_json_content_type(request)
        data = decode_json(body)
        event = data.get("event") if isinstance(data, dict) else None
        if not isinstance(event, dict) or not isinstance(event.get("event_type"), str):
            raise InvalidIncident("not a PagerDuty v3 webhook (no event.event_type)")
        if is_stale(
            event.get("occurred_at"),
            time.time(),
            settings.config.pager_duty.webhook_max_age_seconds,
        ):
            ctx.metrics.webhooks.labels(ENDPOINT, "stale").inc()
            return JSONResponse({"status": "ignored", "reason": "stale"})
        # The signed event id first: the header is not covered by the signature.
        webhook_id = _str(event.get("id")) or _str(request.headers.get(WEBHOOK_ID_HEADER))
        if webhook_id is not None and not is_safe_text_id(webhook_id, 200):
            raise InvalidIncident("webhook id is not a plausible identifier")
        job = self._job(event, settings.config.sync)
        if job is None:
            ctx.metrics.webhooks.labels(ENDPOINT, "ignored").inc()
            return JSONResponse({"status": "ignored", "event_type": event["event_type"][:100]})
        if webhook_id:
            job = replace(job, idempotency_key=f"pdwh:{webhook_id}")
        (stored,) = await ctx.jobs.enqueue([job])
        if stored == "echo":
            ctx.metrics.echo_suppressed.labels(
                "resolve" if isinstance(job.spec, BpResolve) else "note"
            ).inc()
            ctx.metrics.webhooks.labels(ENDPOINT, "echo").inc()
            return JSONResponse({"status": "ignored", "reason": "echo"})
        if not isinstance(stored, Job):
            ctx.metrics.duplicates.labels(job.kind).inc()
            ctx.metrics.webhooks.labels(ENDPOINT, "duplicate").inc()
            return JSONResponse({"status": "duplicate"})
        self.dispatcher.submit([stored])
        ctx.metrics.jobs_enqueued.labels(job.kind).inc()
        ctx.metrics.webhooks.labels(ENDPOINT, "accepted").inc()
        return JSONResponse({"status": "accepted", "kind": job.kind})

    def _job(self, event: dict[str, Any], sync: SyncConfig) -> NewJob | None:
        metrics = self.ctx.metrics
        event_type: str = event["event_type"]
        data = event.get("data")
        if not isinstance(data, dict):
            return None
        by = _agent(event)
        if event_type == "incident.resolved":
            pd_id = _pd_id(data.get("id"), "data.id")
            if pd_id is None or not sync.resolve:
                return None
            key = _incident_key(data.get("incident_key"))
            return NewJob(
                BpResolve(pd_id, incident_key=key, by=by),
                f"pd:{pd_id}",
                unless_seen=echo.resolved_pd_key(key) if key else None,
            )
        if event_type in lifecycle.EVENT_TYPES:
            if event_type not in sync.comment_events:
                return None  # turned off in sync.pagerDutyEvents: acknowledged, not written
            if lifecycle.is_relay_acknowledgement(event):  # our own snooze acknowledge
                metrics.echo_suppressed.labels("acknowledge").inc()
                return None
            change = lifecycle.comment_for(event_type, data, lifecycle.agent_name(event))
            if change is None:
                return None
            if echo.is_relay_text(change.text):  # a status update quoting a synced text
                metrics.echo_suppressed.labels("note").inc()
                return None
            # Who is in the text already ("... by Jane Doe"): no "(PagerDuty by ...)".
            return NewJob(
                BpComment(change.pd_incident_id, change.text, incident_key=change.incident_key),
                f"pd:{change.pd_incident_id}",
            )
        if event_type == "incident.annotated":
            if not sync.notes:
                return None
            incident = data.get("incident")
            pd_id = (
                _pd_id(incident.get("id"), "data.incident.id")
                if isinstance(incident, dict)
                else None
            )
            content = _str(data.get("content"))
            note_id = _pd_id(data.get("id"), "data.id")
            if pd_id is None or content is None:
                return None
            if echo.is_relay_text(content):
                metrics.echo_suppressed.labels("note").inc()
                return None
            return NewJob(
                BpComment(pd_id, content, by=by, note_id=note_id),
                f"pd:{pd_id}",
                unless_seen=echo.wrote_note_key(note_id) if note_id else None,
            )
        return None
