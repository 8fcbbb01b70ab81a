"""Which outbox adapter a relay uses: PostgreSQL when ``PAGERBRIDGE_OUTBOX_DSN`` is set
(shared by active-active replicas; in the schema ``PAGERBRIDGE_OUTBOX_SCHEMA`` names, when
set), else the embedded SQLite file at ``outboxPath``; and where its upstream rate-limit
schedules live (the database every replica shares, or this process's memory).

The PostgreSQL adapter (and asyncpg, ~3.4 MiB resident) is imported only when a DSN is set:
a relay on SQLite never loads it (issue 30: idle RSS)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from pagerbridge.api.contract import OUTBOX_DSN_ENV, OUTBOX_SCHEMA_ENV
from pagerbridge.relay.outbox.port import OutboxPort
from pagerbridge.relay.outbox.rates import LocalRates, RateStore
from pagerbridge.relay.outbox.sqlite import Outbox


def open_outbox(
    path: str, synchronous: str = "FULL", environ: Mapping[str, str] | None = None
) -> OutboxPort:
    env = environ if environ is not None else os.environ
    dsn = env.get(OUTBOX_DSN_ENV, "").strip()
    if dsn:
        from pagerbridge.relay.outbox.postgres import PostgresOutbox

        return PostgresOutbox(dsn, schema=env.get(OUTBOX_SCHEMA_ENV, "").strip() or None)
    return Outbox(path, synchronous)


def open_rate_store(outbox: OutboxPort) -> RateStore:
    """PostgreSQL: the schedules shared by every replica; SQLite (one writer): memory."""
    postgres = sys.modules.get("pagerbridge.relay.outbox.postgres")  # not imported: not it
    if postgres is not None and isinstance(outbox, postgres.PostgresOutbox):
        rates: RateStore = outbox
        return rates
    return LocalRates()
