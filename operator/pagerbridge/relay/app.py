"""The relay's ASGI application: routes, startup and graceful shutdown.

Two ports, one process: the public port serves only the two webhook paths (anything else is
a JSON 404 there), the internal port serves probes, metrics, the OpenAPI document and the
admin API (:mod:`pagerbridge.relay.admin`). :class:`PortRouter` sends each request to the
app of the port it arrived on (the connection's local port, ``scope["server"]``), so one
uvicorn server, one lifespan and one signal handler serve both.

Startup opens the outbox, reloads undelivered jobs into the dispatcher and starts the
config watcher. Shutdown (uvicorn on SIGTERM has already stopped accepting and let
in-flight requests finish, each of which waited for its commit) stops the workers and the
writer thread; whatever was not delivered stays in the outbox for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from pagerbridge import __version__
from pagerbridge.api.contract import (
    BIGPANDA_WEBHOOK_PATH,
    PAGERDUTY_WEBHOOK_PATH,
    RELAY_ADMIN_DEAD_LETTERS_PATH,
    RELAY_ADMIN_DRIFT_PATH,
    RELAY_ADMIN_PENDING_PATH,
    RELAY_ADMIN_REPLAY_PATH,
    RELAY_INTERNAL_PORT,
    RELAY_LIVENESS_PATH,
    RELAY_METRICS_PATH,
    RELAY_OPENAPI_PATH,
    RELAY_READINESS_PATH,
)
from pagerbridge.clients._http import CallLimits
from pagerbridge.clients.errors import Unauthorized
from pagerbridge.jsonlog import REDACTOR, Redactor
from pagerbridge.relay import openapi
from pagerbridge.relay.admin import AdminApi
from pagerbridge.relay.config.log_secrets import LogSecrets
from pagerbridge.relay.config.settings import Settings
from pagerbridge.relay.config.watch import SettingsHolder
from pagerbridge.relay.context import RelayContext
from pagerbridge.relay.health import UpstreamHealth
from pagerbridge.relay.inbound.bigpanda_webhook import BigPandaWebhook
from pagerbridge.relay.inbound.pagerduty_webhook import PagerDutyWebhook
from pagerbridge.relay.inbound.sweep import RepairSweep
from pagerbridge.relay.metrics import RelayMetrics
from pagerbridge.relay.options import RelayOptions
from pagerbridge.relay.outbound.dispatcher import Dispatcher
from pagerbridge.relay.outbound.http_pool import delivery_client
from pagerbridge.relay.outbound.ratelimit import RateLimiter
from pagerbridge.relay.outbound.retry import RetryPolicy
from pagerbridge.relay.outbound.to_bigpanda import BigPandaDelivery
from pagerbridge.relay.outbound.to_pagerduty import PagerDutyDelivery
from pagerbridge.relay.outbox.jobs import BpComment, BpResolve, PdEvent, PdNote
from pagerbridge.relay.outbox.open import open_outbox, open_rate_store
from pagerbridge.relay.outbox.port import Job, OutboxClosed, OutboxMemory
from pagerbridge.relay.outbox.sqlite import Outbox

logger = logging.getLogger(__name__)


async def _prune_forever(outbox: OutboxMemory, retention: float) -> None:
    while True:
        try:
            removed = await outbox.prune(retention)
            if removed:
                logger.info("outbox memory pruned", extra={"removed": removed})
        except OutboxClosed as exc:
            if outbox.refused is None:
                logger.warning(
                    "outbox prune skipped: outbox unavailable", extra={"error": str(exc)}
                )
        except Exception:  # pruning is housekeeping; never take the relay down for it
            logger.exception("outbox prune failed")
        await asyncio.sleep(3600)


class PortRouter:
    """The relay's ASGI app: HTTP requests to the internal app when they arrived on
    ``internal_port``, else to the public one; the lifespan is the public app's."""

    def __init__(self, public: Starlette, internal: Starlette, internal_port: int) -> None:
        self.public = public
        self.internal = internal
        self.internal_port = internal_port
        self.state = public.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app: ASGIApp = self.public
        server = scope.get("server")
        if scope["type"] == "http" and server is not None and server[1] == self.internal_port:
            app = self.internal
        await app(scope, receive, send)


async def _not_found(request: Request, exc: Any) -> Response:
    status = getattr(exc, "status_code", 404)
    return JSONResponse(
        {"error": "not_found", "message": f"no {request.method} {request.url.path} on this port"},
        status_code=status if status in (404, 405) else 404,
    )


def create_app(
    config_path: str,
    settings: Settings,
    options: RelayOptions | None = None,
    redactor: Redactor = REDACTOR,
    internal_port: int = RELAY_INTERNAL_PORT,
) -> PortRouter:
    options = options or RelayOptions()
    metrics = RelayMetrics()
    identity = settings.config.integration
    metrics.info.labels(
        identity.namespace if identity else "", identity.name if identity else "", __version__
    ).set(1)
    log_secrets = LogSecrets(redactor, settings.secrets.values())
    holder = SettingsHolder(
        config_path,
        settings,
        metrics,
        on_change=lambda new: log_secrets.set_loaded(new.secrets.values()),
        interval=options.reload_interval,
    )
    outbox = open_outbox(settings.config.outbox_path, options.outbox_sync)
    if isinstance(outbox, Outbox):
        outbox.on_commit = metrics.outbox_commit.observe
        outbox.on_operations = metrics.outbox_ran
    health = UpstreamHealth(metrics)
    # One keep-alive connection per delivery slot, in aiohttp's pool under httpx's API
    # (tests/bench/outbound_clients.py: 0.43 ms CPU per POST against 0.94 ms for
    # httpcore's; see relay.outbound.http_pool).
    http = delivery_client(options.concurrency)
    ctx = RelayContext(
        holder=holder,
        jobs=outbox,
        memory=outbox,
        metrics=metrics,
        limiter=RateLimiter(options.rate_limits, open_rate_store(outbox)),
        health=health,
        http=http,
        call_limits=CallLimits(
            deadline=options.upstream_deadline, max_response_bytes=options.max_response_bytes
        ),
        late_trigger_after=options.late_trigger_after,
        confirm_after=options.confirm_after,
        log_secrets=log_secrets,
    )
    to_pd = PagerDutyDelivery(ctx)
    to_bp = BigPandaDelivery(ctx)

    def on_unauthorized(job: Job, exc: Unauthorized) -> None:
        logger.error(
            "upstream refused credentials (401/403); retrying slowly",
            extra={"kind": job.kind, "status": exc.status},
        )

    slot_groups = {
        PdEvent.KIND: to_pd.event_slots,
        PdNote.KIND: to_pd.note_slots,
        BpResolve.KIND: to_bp.slots,
        BpComment.KIND: to_bp.slots,
    }

    def groups_of(job: Job) -> tuple[str, ...]:
        groups = slot_groups.get(job.kind)
        return groups(job) if groups is not None else ()

    dispatcher = Dispatcher(
        outbox,
        {
            PdEvent.KIND: to_pd.event,
            PdNote.KIND: to_pd.note,
            BpResolve.KIND: to_bp.resolve,
            BpComment.KIND: to_bp.comment,
        },
        metrics,
        concurrency=options.concurrency,
        on_unauthorized=on_unauthorized,
        policy=RetryPolicy.of(options),
        gates={
            PdEvent.KIND: to_pd.event_gate,
            PdNote.KIND: to_pd.note_gate,
            BpResolve.KIND: to_bp.resolve_gate,
            BpComment.KIND: to_bp.comment_gate,
        },
        slot_groups=groups_of,
        trigger_notes={PdEvent.KIND: to_pd.trigger_note},
        slot_shares={"upstream": options.upstream_slot_share, "key": options.key_slot_share},
    )

    # The repair sweep (its passes run only with an interval; the drift listing always).
    sweep = RepairSweep(
        ctx,
        outbox,
        dispatcher,
        options.sweep_interval or RelayOptions().sweep_interval,
        options.sweep_share,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        outbox.open(asyncio.get_running_loop())
        await outbox.start()
        # A refused outbox (not the relay's role's alone) serves nothing: lane maintenance
        # takes its jobs over once it is accepted.
        restored = 0 if outbox.refused else await dispatcher.load()
        watcher = asyncio.create_task(holder.watch())
        pruner = asyncio.create_task(_prune_forever(outbox, options.retention))
        lanes = asyncio.create_task(dispatcher.maintain())
        tasks = [watcher, pruner, lanes]
        if options.sweep_interval > 0:
            sweep = RepairSweep(
                ctx, outbox, dispatcher, options.sweep_interval, options.sweep_share
            )
            tasks.append(asyncio.create_task(sweep.run_forever()))
        logger.info("relay started", extra={"restored_jobs": restored})
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await dispatcher.close()
            await outbox.close()
            await http.aclose()
            logger.info("relay stopped", extra={"undelivered_jobs": dispatcher.pending})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        writable = await outbox.check_writable()
        refused = outbox.refused
        store = "writable" if writable else f"unavailable: {outbox.last_error or 'closed'}"
        detail = {
            "ready": writable,
            "config": "loaded",
            "configReload": "ok" if holder.last_error is None else "refused",
            "configError": holder.last_error,
            "outbox": refused or store,  # refused: "outbox refused: <object, owner, role>"
            "outboxPending": dispatcher.pending,
            "upstream": health.detail(),
        }
        return JSONResponse(detail, status_code=200 if writable else 503)

    async def metrics_endpoint(request: Request) -> Response:
        try:
            age = await asyncio.wait_for(outbox.oldest_pending_age(), 2)
        except (OutboxClosed, TimeoutError) as exc:  # the page still answers, stale gauge
            if outbox.refused is None:
                logger.warning("oldest pending job age unknown", extra={"error": str(exc)})
        else:
            metrics.oldest_pending.set(age or 0.0)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def openapi_endpoint(request: Request) -> Response:
        return JSONResponse(openapi.document())

    not_found = {404: _not_found, 405: _not_found}
    bigpanda = BigPandaWebhook(ctx, dispatcher)

    def authenticate(path: str, headers: list[tuple[bytes, bytes]]) -> bool:
        return path == BIGPANDA_WEBHOOK_PATH and bigpanda.verified_by_headers(headers)

    public = Starlette(
        routes=[
            Route(BIGPANDA_WEBHOOK_PATH, bigpanda.endpoint, methods=["POST"]),
            Route(
                PAGERDUTY_WEBHOOK_PATH,
                PagerDutyWebhook(ctx, dispatcher).endpoint,
                methods=["POST"],
            ),
        ],
        exception_handlers=not_found,
        lifespan=lifespan,
    )
    admin = AdminApi(holder, outbox, dispatcher, sweep=sweep)
    internal = Starlette(
        routes=[
            Route(RELAY_LIVENESS_PATH, healthz, methods=["GET"]),
            Route(RELAY_READINESS_PATH, readyz, methods=["GET"]),
            Route(RELAY_METRICS_PATH, metrics_endpoint, methods=["GET"]),
            Route(RELAY_OPENAPI_PATH, openapi_endpoint, methods=["GET"]),
            Route(RELAY_ADMIN_PENDING_PATH, admin.pending, methods=["GET"]),
            Route(RELAY_ADMIN_DEAD_LETTERS_PATH, admin.dead_letters, methods=["GET"]),
            Route(RELAY_ADMIN_REPLAY_PATH, admin.replay, methods=["POST"]),
            Route(RELAY_ADMIN_DRIFT_PATH, admin.drift, methods=["GET"]),
        ],
        exception_handlers=not_found,
    )
    public.state.ctx = ctx
    public.state.dispatcher = dispatcher
    public.state.authenticate = authenticate  # for the edge (relay.server.Edge)
    return PortRouter(public, internal, internal_port)
