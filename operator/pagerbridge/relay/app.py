"""The relay's ASGI application: routes, startup and graceful shutdown.

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
from dataclasses import dataclass, field

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pagerbridge.api.contract import BIGPANDA_WEBHOOK_PATH, PAGERDUTY_WEBHOOK_PATH
from pagerbridge.clients.errors import Unauthorized
from pagerbridge.relay import openapi
from pagerbridge.relay.config_watch import SettingsHolder
from pagerbridge.relay.context import RelayContext
from pagerbridge.relay.delivery import Dispatcher, RetryPolicy
from pagerbridge.relay.health import UpstreamHealth
from pagerbridge.relay.http_pool import ShardedTransport
from pagerbridge.relay.inbound_bigpanda import BigPandaWebhook
from pagerbridge.relay.inbound_pagerduty import PagerDutyWebhook
from pagerbridge.relay.jobs import BpComment, BpResolve, PdEvent, PdNote
from pagerbridge.relay.jsonlog import REDACTOR, Redactor
from pagerbridge.relay.log_secrets import LogSecrets
from pagerbridge.relay.metrics import RelayMetrics
from pagerbridge.relay.outbox_port import Job, OutboxPort
from pagerbridge.relay.ratelimit import Limit, RateLimiter
from pagerbridge.relay.settings import Settings
from pagerbridge.relay.storage import open_outbox, share_limits_forever
from pagerbridge.relay.to_bigpanda import BigPandaDelivery
from pagerbridge.relay.to_pagerduty import PagerDutyDelivery

log = logging.getLogger(__name__)


@dataclass
class RelayOptions:
    rate_limits: dict[str, Limit] = field(default_factory=dict)
    late_trigger_after: float = 5.0
    confirm_after: float = 120.0
    concurrency: int = 64
    reload_interval: float = 1.0
    unauthorized_retry: float = 60.0
    outbox_sync: str = "FULL"
    retention: float = 30 * 24 * 3600  # idempotency/echo memory kept this long (seconds)
    retry: RetryPolicy = field(default_factory=RetryPolicy)


async def _prune_forever(outbox: OutboxPort, retention: float) -> None:
    while True:
        try:
            removed = await outbox.prune(retention)
            if removed:
                log.info("outbox memory pruned", extra={"removed": removed})
        except Exception:  # pruning is housekeeping; never take the relay down for it
            log.exception("outbox prune failed")
        await asyncio.sleep(3600)


def create_app(
    config_path: str,
    settings: Settings,
    options: RelayOptions | None = None,
    redactor: Redactor = REDACTOR,
) -> Starlette:
    options = options or RelayOptions()
    metrics = RelayMetrics()
    log_secrets = LogSecrets(redactor, settings.secrets.values())
    holder = SettingsHolder(
        config_path,
        settings,
        metrics,
        on_change=lambda new: log_secrets.set_loaded(new.secrets.values()),
        interval=options.reload_interval,
    )
    outbox = open_outbox(settings.config.outbox_path, options.outbox_sync)
    health = UpstreamHealth(metrics)
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(10.0, connect=5.0),
        # One keep-alive connection per delivery slot, each its own tiny pool (see
        # relay.http_pool for why not one pool of 64).
        transport=ShardedTransport(shards=max(1, options.concurrency), per_shard=1),
    )
    ctx = RelayContext(
        holder=holder,
        outbox=outbox,
        metrics=metrics,
        limiter=RateLimiter(options.rate_limits),
        health=health,
        http=http,
        late_trigger_after=options.late_trigger_after,
        confirm_after=options.confirm_after,
        log_secrets=log_secrets,
    )
    to_pd = PagerDutyDelivery(ctx)
    to_bp = BigPandaDelivery(ctx)

    def on_unauthorized(job: Job, exc: Unauthorized) -> None:
        log.error(
            "upstream refused credentials (401/403); retrying slowly",
            extra={"kind": job.kind, "status": exc.status},
        )

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
        unauthorized_retry=options.unauthorized_retry,
        policy=options.retry,
        gates={
            PdEvent.KIND: to_pd.event_gate,
            PdNote.KIND: to_pd.note_gate,
            BpResolve.KIND: to_bp.resolve_gate,
            BpComment.KIND: to_bp.comment_gate,
        },
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        outbox.open(asyncio.get_running_loop())
        await outbox.start()
        restored = await dispatcher.load()
        watcher = asyncio.create_task(holder.watch())
        pruner = asyncio.create_task(_prune_forever(outbox, options.retention))
        lanes = asyncio.create_task(dispatcher.maintain())
        shares = asyncio.create_task(share_limits_forever(outbox, ctx.limiter))
        log.info("relay started", extra={"restored_jobs": restored})
        try:
            yield
        finally:
            for task in (watcher, pruner, lanes, shares):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await dispatcher.close()
            await outbox.close()
            await http.aclose()
            log.info("relay stopped", extra={"undelivered_jobs": dispatcher.pending})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        writable = await outbox.check_writable()
        detail = {
            "ready": writable,
            "config": "loaded",
            "configReload": "ok" if holder.last_error is None else "refused",
            "configError": holder.last_error,
            "outbox": "writable" if writable else f"unavailable: {outbox.last_error or 'closed'}",
            "outboxPending": dispatcher.pending,
            "upstream": health.detail(),
        }
        return JSONResponse(detail, status_code=200 if writable else 503)

    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def openapi_endpoint(request: Request) -> Response:
        return JSONResponse(openapi.document())

    app = Starlette(
        routes=[
            Route(
                BIGPANDA_WEBHOOK_PATH, BigPandaWebhook(ctx, dispatcher).endpoint, methods=["POST"]
            ),
            Route(
                PAGERDUTY_WEBHOOK_PATH,
                PagerDutyWebhook(ctx, dispatcher).endpoint,
                methods=["POST"],
            ),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            Route("/openapi.json", openapi_endpoint, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    app.state.dispatcher = dispatcher
    return app
