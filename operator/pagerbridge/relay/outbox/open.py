"""Which outbox adapter a relay uses: PostgreSQL when ``PAGERBRIDGE_OUTBOX_DSN`` is set
(shared by active-active replicas; in the schema ``PAGERBRIDGE_OUTBOX_SCHEMA`` names, when
set), else the embedded SQLite file at ``outboxPath``."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping

from pagerbridge.api.contract import OUTBOX_DSN_ENV, OUTBOX_SCHEMA_ENV
from pagerbridge.relay.outbound.ratelimit import RateLimiter
from pagerbridge.relay.outbox.port import OutboxClosed, OutboxPort
from pagerbridge.relay.outbox.postgres import PostgresOutbox
from pagerbridge.relay.outbox.sqlite import Outbox

log = logging.getLogger(__name__)
SHARE_INTERVAL = 2.0


def open_outbox(
    path: str, synchronous: str = "FULL", environ: Mapping[str, str] | None = None
) -> OutboxPort:
    env = environ if environ is not None else os.environ
    dsn = env.get(OUTBOX_DSN_ENV, "").strip()
    if dsn:
        return PostgresOutbox(dsn, schema=env.get(OUTBOX_SCHEMA_ENV, "").strip() or None)
    return Outbox(path, synchronous)


async def share_limits_forever(
    outbox: OutboxPort, limiter: RateLimiter, interval: float = SHARE_INTERVAL
) -> None:
    """Keep this replica's share of the upstream rate limits at 1/(live replicas)."""
    while True:
        try:
            replicas = await outbox.replicas()
        except OutboxClosed:
            replicas = limiter.share  # keep the last known share while the store is down
        if replicas != limiter.share:
            log.info("upstream rate limits shared", extra={"replicas": replicas})
            limiter.set_share(replicas)
        await asyncio.sleep(interval)
