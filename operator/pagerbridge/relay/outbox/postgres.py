"""The shared outbox adapter: PostgreSQL (>= 13), for several active-active relay replicas.

Chosen when ``PAGERBRIDGE_OUTBOX_DSN`` (a libpq URI) is set; its tables and functions live
in the schema ``PAGERBRIDGE_OUTBOX_SCHEMA`` names (created if missing), else in the
connection's default schema; implements
:class:`pagerbridge.relay.outbox.port.OutboxPort` with the SQLite adapter's semantics (same
conformance suite). Driver: asyncpg (tests/bench/outbox_driver.py measured it 1.4x faster
than psycopg 3 on the outbox's transactions).

Why this shape:

- **Durable before 202.** Every operation is one transaction on a pooled connection,
  committed (``synchronous_commit`` as the server says; ``on`` by default) before the
  caller continues. PostgreSQL groups concurrent commits into one WAL flush itself.
- **Any replica accepts.** Idempotency and echo memory (``pagerbridge_seen``), incident
  records and incident life cycles are rows every replica reads and writes in the same
  transaction as the jobs they guard: two replicas given the same webhook store it once.
- **Any replica delivers, one lane at a time.** ``pagerbridge_lanes`` holds one lease per
  ordering key (a BigPanda or PagerDuty incident): owner and expiry, on the database's
  clock. A replica delivers a lane only while it holds the lease, renews it every second
  (relay.delivery.Dispatcher.maintain), and releases it when it has no more of its jobs;
  the release looks for jobs other replicas stored meanwhile under the lease row's lock,
  so none is left behind. A killed replica's leases expire after :data:`LEASE_SECONDS`
  and the other replicas take its lanes over (their jobs marked restored: notes look
  before writing, so each comment still becomes exactly one note).
- **Rate limits shared by replicas.** ``pagerbridge_rates`` holds one schedule per
  upstream budget (relay.outbox.rates): every replica reserves its requests' slots from the
  same row, atomically, so together they stay within PagerDuty's and BigPanda's limits;
  a 429's pause and what it taught apply to all of them. Names are hashes, never keys.
- **Owned, or refused.** The schema and everything in it must be the relay's role's alone
  (:mod:`.ownership`), checked at start and on every new pooled connection (a reconnect);
  otherwise the relay refuses to serve (webhooks 503, readiness false with the reason, one
  log line) and looks again every :data:`RECHECK_SECONDS`. What it creates it creates with
  PUBLIC's privileges revoked.
- **Down means 503, and back by itself.** Any database failure becomes
  :class:`OutboxClosed` (webhooks answer 503, readiness false, deliveries retry only their
  recording); the pool reconnects on the next operation once the server is back.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg

from pagerbridge.relay.outbox import ownership
from pagerbridge.relay.outbox.jobs import decode, encode
from pagerbridge.relay.outbox.port import (
    IncidentRecord,
    IncidentUpdate,
    Job,
    NewJob,
    OpenIncident,
    OutboxClosed,
    ReplayConflict,
    Skipped,
)
from pagerbridge.relay.outbox.rates import RateRow

logger = logging.getLogger(__name__)

# A pooled connection (asyncpg's proxy has the connection's whole interface).
Connection = asyncpg.pool.PoolConnectionProxy
# One caller's enqueue waiting for a grouped call: its jobs, keys to remember, its answer.
_Enqueue = tuple[list[NewJob], list[str], "asyncio.Future[list[Job | Skipped]]"]

T = TypeVar("T")
LEASE_SECONDS = 3.0
# A job is left to the replica that accepted it this long before others may take its lane.
TAKE_OVER_GRACE = 1.0
REPLICA_SECONDS = 10.0
POOL_SIZE = 10
MAX_BATCH = 512  # jobs per grouped enqueue
MAX_FLUSHES = 4  # grouped enqueues in flight at once
MIN_SERVER_VERSION = 13
RECHECK_SECONDS = 5.0  # while refused (ownership), how often the outbox is looked at again
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_SCHEMA_LOCK = 0x70625F6F7574  # pg_advisory_xact_lock key: one schema creation at a time

_SCHEMA = """
CREATE OR REPLACE FUNCTION pagerbridge_now() RETURNS DOUBLE PRECISION
    LANGUAGE sql VOLATILE AS 'SELECT extract(epoch from clock_timestamp())::double precision';
CREATE TABLE IF NOT EXISTS pagerbridge_jobs (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    ordering_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS pagerbridge_jobs_lane ON pagerbridge_jobs (ordering_key, id);
-- Attempts begun in a row and never ended (the process died during them): after the
-- first columns in every store, new or upgraded, so rows read the same everywhere.
ALTER TABLE pagerbridge_jobs ADD COLUMN IF NOT EXISTS interrupted INTEGER NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS pagerbridge_seen (
    key TEXT PRIMARY KEY, at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS pagerbridge_seen_at ON pagerbridge_seen (at);
CREATE TABLE IF NOT EXISTS pagerbridge_incidents (
    incident_id TEXT PRIMARY KEY,
    routing TEXT,
    pd_incident_id TEXT,
    updated DOUBLE PRECISION NOT NULL,
    live INTEGER NOT NULL DEFAULT 0,
    absent INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS pagerbridge_incidents_pd ON pagerbridge_incidents (pd_incident_id);
CREATE TABLE IF NOT EXISTS pagerbridge_incident_state (
    incident_id TEXT PRIMARY KEY,
    epoch INTEGER NOT NULL,
    open INTEGER NOT NULL,
    last_updated_on DOUBLE PRECISION
);
CREATE TABLE IF NOT EXISTS pagerbridge_incident_life (
    incident_id TEXT PRIMARY KEY,
    first_trigger DOUBLE PRECISION,
    checked DOUBLE PRECISION,
    updated DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS pagerbridge_pd_owned (
    pd_incident_id TEXT PRIMARY KEY,
    incident_id TEXT NOT NULL,
    service_id TEXT,
    at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS pagerbridge_dead_letters (
    id BIGSERIAL PRIMARY KEY,
    job_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    ordering_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    failed_at DOUBLE PRECISION NOT NULL,
    status INTEGER,
    error TEXT
);
CREATE TABLE IF NOT EXISTS pagerbridge_lanes (
    ordering_key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS pagerbridge_replicas (
    owner TEXT PRIMARY KEY,
    expires_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS pagerbridge_probe (
    owner TEXT PRIMARY KEY, at DOUBLE PRECISION NOT NULL
);

-- One round trip per outbox operation on the hot path: each is a function run as one
-- statement (its own transaction), instead of 4 to 7 statements of a client transaction.
CREATE OR REPLACE FUNCTION pagerbridge_advance(
    p_incident TEXT, p_action TEXT, p_updated DOUBLE PRECISION
) RETURNS INTEGER LANGUAGE plpgsql AS $fn$
DECLARE
    r RECORD;
    v_epoch INTEGER;
BEGIN
    INSERT INTO pagerbridge_incident_state(incident_id, epoch, open, last_updated_on)
        VALUES (p_incident, 0, -1, NULL) ON CONFLICT DO NOTHING;
    SELECT s.epoch, s.open, s.last_updated_on INTO r FROM pagerbridge_incident_state s
        WHERE s.incident_id = p_incident FOR UPDATE;
    IF p_updated IS NOT NULL AND r.last_updated_on IS NOT NULL
            AND p_updated < r.last_updated_on THEN
        RETURN NULL;  -- stale
    END IF;
    v_epoch := r.epoch;
    IF p_action = 'trigger' AND r.open = 0 THEN
        v_epoch := v_epoch + 1;  -- triggered again after a resolve: a reopen
    END IF;
    UPDATE pagerbridge_incident_state SET epoch = v_epoch,
        open = CASE WHEN p_action = 'trigger' THEN 1 ELSE 0 END,
        last_updated_on = GREATEST(r.last_updated_on, p_updated)
        WHERE incident_id = p_incident;
    RETURN v_epoch;
END
$fn$;

CREATE OR REPLACE FUNCTION pagerbridge_enqueue(
    p_kinds TEXT[], p_keys TEXT[], p_payloads TEXT[], p_idem TEXT[], p_unless TEXT[],
    p_inc TEXT[], p_action TEXT[], p_updated DOUBLE PRECISION[], p_now DOUBLE PRECISION,
    p_remember TEXT[], p_owner TEXT, p_lease DOUBLE PRECISION
) RETURNS TABLE(r_outcome TEXT, r_id BIGINT, r_leased BOOLEAN) LANGUAGE plpgsql AS $fn$
DECLARE
    i INTEGER;
    v_epoch INTEGER;
    v_idem TEXT;
    v_n INTEGER;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_kinds, 1), 0) LOOP
        v_idem := p_idem[i];
        r_id := NULL;
        r_leased := FALSE;
        IF p_inc[i] IS NOT NULL THEN
            v_epoch := pagerbridge_advance(p_inc[i], p_action[i], p_updated[i]);
            IF v_epoch IS NULL THEN
                r_outcome := 'stale'; RETURN NEXT; CONTINUE;
            END IF;
            v_idem := replace(v_idem, '{epoch}', v_epoch::text);
        END IF;
        IF p_unless[i] IS NOT NULL
                AND EXISTS (SELECT 1 FROM pagerbridge_seen s WHERE s.key = p_unless[i]) THEN
            r_outcome := 'echo'; RETURN NEXT; CONTINUE;
        END IF;
        IF v_idem IS NOT NULL THEN
            INSERT INTO pagerbridge_seen(key, at) VALUES (v_idem, p_now) ON CONFLICT DO NOTHING;
            GET DIAGNOSTICS v_n = ROW_COUNT;
            IF v_n = 0 THEN
                r_outcome := 'duplicate'; RETURN NEXT; CONTINUE;
            END IF;
        END IF;
        INSERT INTO pagerbridge_jobs(kind, ordering_key, payload, created_at)
            VALUES (p_kinds[i], p_keys[i], p_payloads[i], p_now) RETURNING id INTO r_id;
        -- The accepting replica takes the lane when nobody holds it (saves a round trip).
        INSERT INTO pagerbridge_lanes(ordering_key, owner, expires_at)
            VALUES (p_keys[i], p_owner, pagerbridge_now() + p_lease)
            ON CONFLICT (ordering_key) DO UPDATE
            SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
            WHERE pagerbridge_lanes.owner = EXCLUDED.owner
                OR pagerbridge_lanes.expires_at < pagerbridge_now();
        r_leased := FOUND;
        r_outcome := 'stored'; RETURN NEXT;
    END LOOP;
    INSERT INTO pagerbridge_seen(key, at) SELECT k, p_now FROM unnest(p_remember) AS k
        ON CONFLICT DO NOTHING;
END
$fn$;

CREATE OR REPLACE FUNCTION pagerbridge_save_incident(
    p_inc TEXT, p_routing TEXT, p_pd TEXT, p_clear BOOLEAN, p_never BOOLEAN,
    p_now DOUBLE PRECISION
) RETURNS VOID LANGUAGE plpgsql AS $fn$
BEGIN
    IF p_clear THEN
        -- The routing (an override key is a credential) is not needed after the resolve.
        UPDATE pagerbridge_incidents SET pd_incident_id = NULL, live = 0, routing = NULL
            WHERE incident_id = p_inc;
        UPDATE pagerbridge_incident_life SET first_trigger = NULL WHERE incident_id = p_inc;
    ELSIF p_never THEN
        INSERT INTO pagerbridge_incidents(incident_id, updated, live, absent)
            VALUES (p_inc, p_now, 0, 1) ON CONFLICT (incident_id) DO UPDATE SET
            absent = 1 - pagerbridge_incidents.live, updated = EXCLUDED.updated;
    ELSE
        INSERT INTO pagerbridge_incidents(incident_id, routing, pd_incident_id, updated, live,
            absent) VALUES (p_inc, p_routing, p_pd, p_now,
            CASE WHEN p_routing IS NULL THEN 0 ELSE 1 END, 0)
            ON CONFLICT (incident_id) DO UPDATE SET
            routing = COALESCE(EXCLUDED.routing, pagerbridge_incidents.routing),
            pd_incident_id = COALESCE(EXCLUDED.pd_incident_id,
                pagerbridge_incidents.pd_incident_id),
            updated = EXCLUDED.updated,
            live = GREATEST(pagerbridge_incidents.live, EXCLUDED.live),
            absent = CASE WHEN EXCLUDED.live = 1 THEN 0 ELSE pagerbridge_incidents.absent END;
    END IF;
END
$fn$;


-- Take the lane: its jobs, or one row with id -1 when another owner holds it.
CREATE OR REPLACE FUNCTION pagerbridge_claim(
    p_key TEXT, p_owner TEXT, p_lease DOUBLE PRECISION
) RETURNS SETOF pagerbridge_jobs LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO pagerbridge_lanes(ordering_key, owner, expires_at)
        VALUES (p_key, p_owner, pagerbridge_now() + p_lease)
        ON CONFLICT (ordering_key) DO UPDATE
        SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
        WHERE pagerbridge_lanes.owner = EXCLUDED.owner
            OR pagerbridge_lanes.expires_at < pagerbridge_now();
    IF NOT FOUND THEN
        RETURN QUERY SELECT -1::BIGINT, ''::TEXT, p_key, ''::TEXT, 0::DOUBLE PRECISION, 0,
            NULL::TEXT, 0;
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM pagerbridge_jobs j WHERE j.ordering_key = p_key ORDER BY j.id;
END
$fn$;

-- Release the lane unless jobs are left (stored meanwhile by other replicas): those are
-- returned and the lease extended. The jobs are read after the lease row is locked (a new
-- snapshot per statement), so a job committed before another replica's claim attempt is
-- never left behind.
CREATE OR REPLACE FUNCTION pagerbridge_release(
    p_key TEXT, p_owner TEXT, p_lease DOUBLE PRECISION
) RETURNS SETOF pagerbridge_jobs LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM 1 FROM pagerbridge_lanes l WHERE l.ordering_key = p_key AND l.owner = p_owner
        FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM pagerbridge_jobs j WHERE j.ordering_key = p_key ORDER BY j.id;
    IF FOUND THEN
        UPDATE pagerbridge_lanes SET expires_at = pagerbridge_now() + p_lease
            WHERE ordering_key = p_key;
    ELSE
        DELETE FROM pagerbridge_lanes WHERE ordering_key = p_key AND owner = p_owner;
    END IF;
END
$fn$;

-- A delivered job, and (p_release: it was the lane's last job here) the lane's release.
-- (An older relay's function of this name returned VOID: replaced, not overloaded.)
DROP FUNCTION IF EXISTS pagerbridge_complete(
    BIGINT, TEXT[], TEXT[], TEXT, TEXT, TEXT, BOOLEAN, BOOLEAN, DOUBLE PRECISION);
CREATE OR REPLACE FUNCTION pagerbridge_complete(
    p_job BIGINT, p_remember TEXT[], p_forget TEXT[], p_inc TEXT, p_routing TEXT, p_pd TEXT,
    p_clear BOOLEAN, p_never BOOLEAN, p_now DOUBLE PRECISION, p_release TEXT, p_owner TEXT,
    p_lease DOUBLE PRECISION
) RETURNS SETOF pagerbridge_jobs LANGUAGE plpgsql AS $fn$
BEGIN
    IF p_inc IS NOT NULL THEN
        PERFORM pagerbridge_save_incident(p_inc, p_routing, p_pd, p_clear, p_never, p_now);
    END IF;
    DELETE FROM pagerbridge_jobs WHERE id = p_job;
    INSERT INTO pagerbridge_seen(key, at) SELECT k, p_now FROM unnest(p_remember) AS k
        ON CONFLICT DO NOTHING;
    DELETE FROM pagerbridge_seen WHERE key = ANY(p_forget);
    IF p_release IS NOT NULL THEN
        RETURN QUERY SELECT * FROM pagerbridge_release(p_release, p_owner, p_lease);
    END IF;
END
$fn$;
"""

# Upstream rate-limit schedules (relay.outbox.rates): one row per bucket, each operation
# one statement that locks the row, so replicas reserve slots one after another.
_RATE_SCHEMA = """
CREATE TABLE IF NOT EXISTS pagerbridge_rates (
    bucket TEXT PRIMARY KEY,
    tat DOUBLE PRECISION NOT NULL DEFAULT 0,
    paused_until DOUBLE PRECISION NOT NULL DEFAULT 0,
    learned DOUBLE PRECISION NOT NULL DEFAULT 0,
    learned_at DOUBLE PRECISION NOT NULL DEFAULT 0,
    last_429 DOUBLE PRECISION NOT NULL DEFAULT 0,
    sent BIGINT NOT NULL DEFAULT 0
);

CREATE OR REPLACE FUNCTION pagerbridge_rate_reserve(
    p_bucket TEXT, p_interval DOUBLE PRECISION, p_tolerance DOUBLE PRECISION
) RETURNS TABLE(r_now DOUBLE PRECISION, r_slot DOUBLE PRECISION, r_paused DOUBLE PRECISION,
    r_learned DOUBLE PRECISION, r_learned_at DOUBLE PRECISION, r_last_429 DOUBLE PRECISION,
    r_sent BIGINT) LANGUAGE plpgsql AS $fn$
DECLARE
    r pagerbridge_rates%ROWTYPE;
BEGIN
    INSERT INTO pagerbridge_rates(bucket) VALUES (p_bucket) ON CONFLICT DO NOTHING;
    SELECT * INTO r FROM pagerbridge_rates WHERE bucket = p_bucket FOR UPDATE;
    r_now := pagerbridge_now();  -- after the lock: slots are handed out in time order
    r_slot := GREATEST(r_now, r.tat - p_tolerance, r.paused_until);
    UPDATE pagerbridge_rates SET tat = GREATEST(r.tat, r_slot) + p_interval, sent = r.sent + 1
        WHERE bucket = p_bucket;
    r_paused := r.paused_until;
    r_learned := r.learned;
    r_learned_at := r.learned_at;
    r_last_429 := r.last_429;
    r_sent := r.sent + 1;
    RETURN NEXT;
END
$fn$;

CREATE OR REPLACE FUNCTION pagerbridge_rate_throttle(
    p_bucket TEXT, p_pause DOUBLE PRECISION, p_tolerance DOUBLE PRECISION,
    p_learned DOUBLE PRECISION
) RETURNS TABLE(r_now DOUBLE PRECISION, r_slot DOUBLE PRECISION, r_paused DOUBLE PRECISION,
    r_learned DOUBLE PRECISION, r_learned_at DOUBLE PRECISION, r_last_429 DOUBLE PRECISION,
    r_sent BIGINT) LANGUAGE plpgsql AS $fn$
DECLARE
    r pagerbridge_rates%ROWTYPE;
BEGIN
    INSERT INTO pagerbridge_rates(bucket) VALUES (p_bucket) ON CONFLICT DO NOTHING;
    SELECT * INTO r FROM pagerbridge_rates WHERE bucket = p_bucket FOR UPDATE;
    r_now := pagerbridge_now();
    r.paused_until := GREATEST(r.paused_until, r_now + p_pause);
    r.tat := GREATEST(r.tat, r.paused_until + p_tolerance);  -- no burst after the pause
    IF p_learned IS NOT NULL THEN
        r.learned := p_learned;
        r.learned_at := r_now;
        r.last_429 := r_now;
        r.sent := 0;
    END IF;
    UPDATE pagerbridge_rates SET tat = r.tat, paused_until = r.paused_until,
        learned = r.learned, learned_at = r.learned_at, last_429 = r.last_429, sent = r.sent
        WHERE bucket = p_bucket;
    r_slot := r_now;
    r_paused := r.paused_until;
    r_learned := r.learned;
    r_learned_at := r.learned_at;
    r_last_429 := r.last_429;
    r_sent := r.sent;
    RETURN NEXT;
END
$fn$;
"""


def _rate_row(row: asyncpg.Record | None) -> RateRow:
    assert row is not None  # the functions return exactly one row
    return RateRow(
        now=float(row["r_now"]),
        slot=float(row["r_slot"]),
        paused_until=float(row["r_paused"]),
        learned=float(row["r_learned"]),
        learned_at=float(row["r_learned_at"]),
        last_429=float(row["r_last_429"]),
        sent=int(row["r_sent"]),
    )


# Errors that mean "the database cannot take this now" (down, restarting, unreachable,
# read-only, full). Anything from the driver counts: nothing was stored either way.
# What a store that cannot serve raises. InternalClientError too: a pooled connection the
# server terminated (a restart, pg_terminate_backend) can fail with "cannot switch to
# state …; another operation is in progress" instead of a connection error; the pool
# discards it on release and the next call gets a new connection.
_STORE_ERRORS = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    TimeoutError,
)


def _row_job(row: asyncpg.Record, restored: bool = True) -> Job:
    return Job(
        int(row["id"]),
        decode(row["kind"], row["payload"]),
        row["ordering_key"],
        float(row["created_at"]),
        int(row["attempts"]),
        restored=restored,
        interrupted=int(row["interrupted"]),
    )


class PostgresOutbox:
    leases_lanes = True  # shared by replicas: leases renewed, lost, taken over

    def __init__(
        self,
        dsn: str,
        owner: str | None = None,
        lease_seconds: float = LEASE_SECONDS,
        pool_size: int = POOL_SIZE,
        take_over_grace: float = TAKE_OVER_GRACE,
        schema: str | None = None,
    ) -> None:
        if schema is not None and not _IDENTIFIER.fullmatch(schema):
            raise ValueError("the outbox schema must be a lower-case PostgreSQL identifier")
        self.schema = schema
        self._dsn = dsn  # a secret (may carry a password): never logged
        self.owner = owner or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.lease_seconds = lease_seconds
        self.pool_size = pool_size
        self.take_over_grace = take_over_grace
        self._pool: asyncpg.Pool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.healthy = False
        self.last_error: str | None = None
        self.last_failure_at: float | None = None
        self.last_failure_wall: float | None = None
        self._batch: collections.deque[_Enqueue] = collections.deque()
        self._flushes = 0
        self._flush_tasks: set[asyncio.Task[None]] = set()
        # Why the relay refuses this outbox (ownership.OutboxNotOwned, one line), or None.
        self.refused: str | None = None
        self._refused_checked = 0.0

    # -- lifecycle -------------------------------------------------------------------
    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    async def start(self) -> None:
        """Connect and create the schema (idempotent; replicas may start together)."""
        self._pool = await asyncpg.create_pool(
            self._dsn,
            min_size=0,
            max_size=self.pool_size,
            timeout=5.0,  # connecting
            command_timeout=10.0,
            max_inactive_connection_lifetime=60.0,
            # Every table and function lives in the integration's schema when one is given
            # (integrations may share a database); names resolve through search_path.
            server_settings={"search_path": self.schema} if self.schema else None,
            init=self._on_connect,  # every new connection: a reconnect checks ownership
        )
        try:
            async with self._pool.acquire() as conn:
                await self._prepare(conn)
        except ownership.OutboxNotOwned as exc:
            self._refuse(exc)  # serve nothing; RECHECK_SECONDS later, look again
            return
        except OutboxClosed:
            if self.refused is None:
                raise
            return
        await self.heartbeat()
        self.healthy = True

    async def _prepare(self, conn: Any) -> None:
        """Check the outbox is ours, create what is missing (PUBLIC revoked), check again.
        Raises :class:`ownership.OutboxNotOwned` (nothing created: one transaction)."""
        version = conn.get_server_version()
        if version.major < MIN_SERVER_VERSION:
            raise RuntimeError(
                f"PostgreSQL {version.major} is too old for the outbox "
                f"(needs {MIN_SERVER_VERSION} or newer)"
            )
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
            await ownership.problems(conn, self.schema)  # before touching anything in it
            if self.schema:
                # A validated identifier (_IDENTIFIER), so quoting it is enough.
                await conn.execute('CREATE SCHEMA IF NOT EXISTS "' + self.schema + '"')
            await conn.execute(_SCHEMA)
            await conn.execute(_RATE_SCHEMA)
            await ownership.revoke_public(conn, self.schema)
            await ownership.problems(conn, self.schema)

    async def _on_connect(self, conn: asyncpg.Connection) -> None:
        try:
            await ownership.problems(conn, self.schema)
        except ownership.OutboxNotOwned as exc:
            self._refuse(exc)
            raise OutboxClosed(str(exc)) from None

    def _refuse(self, exc: ownership.OutboxNotOwned) -> None:
        """Stop serving from this outbox; one log line per distinct reason, no traceback."""
        reason = str(exc)
        self.healthy = False
        self._refused_checked = self.last_failure_at = time.monotonic()
        self.last_failure_wall = time.time()
        if reason != self.refused:
            first = exc.findings[0]
            logger.error(
                reason,
                extra={
                    "schema": exc.schema,
                    "object": f"{first.kind} {first.name}",
                    "objectRole": first.role,
                    "relayRole": exc.relay_role,
                },
            )
        self.refused = reason

    async def _guard(self) -> None:
        """While refused: OutboxClosed, except every RECHECK_SECONDS one caller looks
        again (and creates what is missing once the outbox is ours)."""
        if self.refused is None:
            return
        now = time.monotonic()
        pool = self._pool
        if pool is None or now - self._refused_checked < RECHECK_SECONDS:
            raise OutboxClosed(self.refused)
        self._refused_checked = now
        try:
            async with pool.acquire() as conn:
                await self._prepare(conn)
        except ownership.OutboxNotOwned as exc:
            self._refuse(exc)
            raise OutboxClosed(self.refused) from None
        except _STORE_ERRORS as exc:
            self._failed(exc)
            raise OutboxClosed(f"outbox write failed: {type(exc).__name__}") from None
        self.refused = None
        logger.info("outbox ownership verified; serving", extra={"schema": self.schema})

    async def close(self) -> None:
        """Hand this replica's lanes back at once (a rolling update needs no lease expiry)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        with contextlib.suppress(*_STORE_ERRORS, OutboxClosed):  # (refused: nothing held)
            async with pool.acquire() as conn:
                await conn.execute("DELETE FROM pagerbridge_lanes WHERE owner = $1", self.owner)
                await conn.execute("DELETE FROM pagerbridge_replicas WHERE owner = $1", self.owner)
        with contextlib.suppress(*_STORE_ERRORS):
            await asyncio.wait_for(pool.close(), 10)
        self.healthy = False

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[Connection]:
        await self._guard()
        pool = self._pool
        if pool is None:
            raise OutboxClosed("outbox is not open")
        try:
            async with pool.acquire() as conn, conn.transaction():
                yield conn
        except _STORE_ERRORS as exc:
            self._failed(exc)
            raise OutboxClosed(f"outbox write failed: {type(exc).__name__}") from None
        self.healthy = True

    def _failed(self, exc: BaseException) -> None:
        self.healthy = False
        # The driver's message, never the DSN (asyncpg does not put it in messages).
        self.last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
        self.last_failure_at = time.monotonic()
        self.last_failure_wall = time.time()
        logger.error("outbox transaction failed", extra={"error": self.last_error})

    async def call(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        """Run ``fn(conn)`` outside a client transaction: one statement, its own transaction
        (the server-side functions above)."""
        await self._guard()
        pool = self._pool
        if pool is None:
            raise OutboxClosed("outbox is not open")
        try:
            async with pool.acquire() as conn:
                value = await fn(conn)
        except _STORE_ERRORS as exc:
            self._failed(exc)
            raise OutboxClosed(f"outbox write failed: {type(exc).__name__}") from None
        self.healthy = True
        return value

    async def run(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        """Run ``fn(conn)`` in one transaction."""
        async with self._tx() as conn:
            return await fn(conn)

    # -- jobs ------------------------------------------------------------------------
    async def enqueue(
        self, jobs: Sequence[NewJob], remember: Sequence[str] = ()
    ) -> list[Job | Skipped]:
        """Group commit: concurrent enqueues (webhooks answered at the same time) are
        stored by one function call, one transaction, up to :data:`MAX_BATCH` jobs each
        and :data:`MAX_FLUSHES` calls at once; each caller gets its own results."""
        if self._loop is None or self._pool is None:
            raise OutboxClosed("outbox is not open")
        waiter: asyncio.Future[list[Job | Skipped]] = self._loop.create_future()
        self._batch.append((list(jobs), list(remember), waiter))
        if self._flushes < MAX_FLUSHES:
            self._flushes += 1
            task = asyncio.create_task(self._flush())
            self._flush_tasks.add(task)
            task.add_done_callback(self._flush_tasks.discard)
        return await waiter

    async def _flush(self) -> None:
        try:
            while self._batch:
                batch: list[_Enqueue] = []
                size = 0
                while self._batch and (not batch or size + len(self._batch[0][0]) <= MAX_BATCH):
                    entry = self._batch.popleft()
                    batch.append(entry)
                    size += len(entry[0])
                try:
                    results = await self._store_batch(batch)
                except Exception as exc:  # OutboxClosed, or a bug: every caller hears it
                    for _, _, waiter in batch:
                        if not waiter.done():
                            waiter.set_exception(exc)
                    continue
                for (_, _, waiter), result in zip(batch, results, strict=True):
                    if not waiter.done():
                        waiter.set_result(result)
        finally:
            self._flushes -= 1

    async def _store_batch(self, batch: list[_Enqueue]) -> list[list[Job | Skipped]]:
        now = time.time()
        jobs = [job for entry in batch for job in entry[0]]
        remember = [key for entry in batch for key in entry[1]]
        rows = [encode(job.spec) for job in jobs]

        async def op(conn: Connection) -> list[asyncpg.Record]:
            return await conn.fetch(
                "SELECT r_outcome, r_id, r_leased FROM pagerbridge_enqueue("
                "$1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "
                "$7::text[], $8::float8[], $9, $10::text[], $11, $12)",
                [kind for kind, _ in rows],
                [job.ordering_key for job in jobs],
                [payload for _, payload in rows],
                [job.idempotency_key for job in jobs],
                [job.unless_seen for job in jobs],
                [job.incident.incident_id if job.incident else None for job in jobs],
                [job.incident.action if job.incident else None for job in jobs],
                [job.incident.updated_on if job.incident else None for job in jobs],
                now,
                remember,
                self.owner,
                self.lease_seconds,
            )

        results = iter(await self.call(op))
        out: list[list[Job | Skipped]] = []
        for entry_jobs, _, _ in batch:
            mine: list[Job | Skipped] = []
            for job in entry_jobs:
                result = next(results)
                outcome = result["r_outcome"]
                if outcome == "stored":
                    mine.append(
                        Job(
                            int(result["r_id"]),
                            job.spec,
                            job.ordering_key,
                            now,
                            leased=bool(result["r_leased"]),
                        )
                    )
                elif outcome in ("duplicate", "echo", "stale"):
                    mine.append(outcome)
                else:
                    raise RuntimeError(f"unexpected enqueue outcome {outcome!r}")
            out.append(mine)
        return out

    async def complete(
        self,
        job_id: int,
        remember: Sequence[str] = (),
        forget: Sequence[str] = (),
        incident: IncidentUpdate | None = None,
        release_lane: str | None = None,
    ) -> list[Job]:
        now = time.time()
        inc = incident or IncidentUpdate("")

        async def op(conn: Connection) -> list[Job]:
            rows = await conn.fetch(
                "SELECT * FROM pagerbridge_complete($1, $2::text[], $3::text[], $4, $5, $6, "
                "$7, $8, $9, $10, $11, $12)",
                job_id,
                list(remember),
                list(forget),
                incident.incident_id if incident else None,
                json.dumps(inc.routing) if inc.routing else None,
                inc.pd_incident_id,
                inc.clear_pd_incident,
                inc.never_created,
                now,
                release_lane,
                self.owner,
                self.lease_seconds,
            )
            return [_row_job(r) for r in rows]

        return await self.call(op)

    async def begin_attempt(self, job: Job, trigger: tuple[str, float] | None = None) -> None:
        async def op(conn: Connection) -> None:
            await conn.execute(
                "UPDATE pagerbridge_jobs SET attempts = $1, interrupted = interrupted + 1 "
                "WHERE id = $2",
                job.attempts + 1,
                job.id,
            )
            if trigger is not None:
                await _note_trigger(conn, *trigger)

        await self.run(op)

    async def retry_later(self, job: Job, error: str) -> None:
        _, payload = encode(job.spec)

        async def op(conn: Connection) -> None:
            await conn.execute(
                "UPDATE pagerbridge_jobs SET attempts = $1, last_error = $2, payload = $3, "
                "interrupted = 0 WHERE id = $4",
                job.attempts,
                error[:500],
                payload,
                job.id,
            )

        await self.run(op)

    async def dead_letter(self, job: Job, status: int | None, error: str) -> None:
        now = time.time()
        kind, payload = encode(job.spec)

        async def op(conn: Connection) -> None:
            await conn.execute(
                "INSERT INTO pagerbridge_dead_letters(job_id, kind, ordering_key, payload, "
                "created_at, failed_at, status, error) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
                job.id,
                kind,
                job.ordering_key,
                payload,
                job.created_at,
                now,
                status,
                error[:2000],
            )
            await conn.execute("DELETE FROM pagerbridge_jobs WHERE id = $1", job.id)

        await self.run(op)

    async def pending(self) -> list[Job]:
        async def op(conn: Connection) -> list[Job]:
            rows = await conn.fetch("SELECT * FROM pagerbridge_jobs ORDER BY id")
            return [_row_job(r) for r in rows]

        return await self.run(op)

    async def dead_letters(self) -> list[dict[str, Any]]:
        async def op(conn: Connection) -> list[dict[str, Any]]:
            rows = await conn.fetch(
                "SELECT job_id, kind, ordering_key, status, error FROM pagerbridge_dead_letters "
                "ORDER BY id"
            )
            return [
                {
                    "job_id": int(r["job_id"]),
                    "kind": r["kind"],
                    "ordering_key": r["ordering_key"],
                    "status": r["status"],
                    "error": r["error"],
                }
                for r in rows
            ]

        return await self.run(op)

    async def replay_dead_letter(self, job_id: int) -> bool:
        now = time.time()

        async def op(conn: Connection) -> bool:
            row = await conn.fetchrow(
                "DELETE FROM pagerbridge_dead_letters WHERE id = (SELECT id FROM "
                "pagerbridge_dead_letters WHERE job_id = $1 ORDER BY id DESC LIMIT 1) "
                "RETURNING kind, ordering_key, payload",
                job_id,
            )
            if row is None:
                return False
            busy = await conn.fetchval(
                "SELECT 1 FROM pagerbridge_jobs WHERE ordering_key = $1 OR id = $2 LIMIT 1",
                row["ordering_key"],
                job_id,
            )
            if busy is not None:
                # Raising rolls the transaction back: the dead letter stays.
                raise ReplayConflict(f"jobs of ordering key {row['ordering_key']!r} are pending")
            await conn.execute(
                "INSERT INTO pagerbridge_jobs(id, kind, ordering_key, payload, created_at) "
                "VALUES ($1, $2, $3, $4, $5)",
                job_id,
                row["kind"],
                row["ordering_key"],
                row["payload"],
                now,
            )
            return True

        return await self.run(op)

    async def oldest_pending_age(self) -> float | None:
        async def op(conn: Connection) -> float | None:
            oldest = await conn.fetchval("SELECT MIN(created_at) FROM pagerbridge_jobs")
            return None if oldest is None else max(0.0, time.time() - float(oldest))

        return await self.run(op)

    # -- lanes -----------------------------------------------------------------------
    async def claim_lane(self, ordering_key: str) -> list[Job] | None:
        async def op(conn: Connection) -> list[Job] | None:
            rows = await conn.fetch(
                "SELECT * FROM pagerbridge_claim($1, $2, $3)",
                ordering_key,
                self.owner,
                self.lease_seconds,
            )
            if rows and rows[0]["id"] == -1:
                return None  # held by another replica
            return [_row_job(r) for r in rows]

        return await self.call(op)

    async def release_lane(self, ordering_key: str) -> list[Job]:
        async def op(conn: Connection) -> list[Job]:
            rows = await conn.fetch(
                "SELECT * FROM pagerbridge_release($1, $2, $3)",
                ordering_key,
                self.owner,
                self.lease_seconds,
            )
            return [_row_job(r) for r in rows]

        return await self.call(op)

    async def renew_lanes(self, ordering_keys: Sequence[str]) -> set[str]:
        async def op(conn: Connection) -> set[str]:
            await _heartbeat(conn, self.owner)
            if not ordering_keys:
                return set()
            rows = await conn.fetch(
                "UPDATE pagerbridge_lanes SET expires_at = pagerbridge_now() + $3 "
                "WHERE owner = $1 AND ordering_key = ANY($2::text[]) RETURNING ordering_key",
                self.owner,
                list(ordering_keys),
                self.lease_seconds,
            )
            return set(ordering_keys) - {r["ordering_key"] for r in rows}

        return await self.run(op)

    async def take_over(self) -> list[Job]:
        cutoff = time.time() - self.take_over_grace

        async def op(conn: Connection) -> list[Job]:
            keys = await conn.fetch(
                "INSERT INTO pagerbridge_lanes(ordering_key, owner, expires_at) "
                "SELECT free.k, $1, pagerbridge_now() + $2 FROM (SELECT DISTINCT "
                "j.ordering_key AS k FROM pagerbridge_jobs j "
                "LEFT JOIN pagerbridge_lanes l ON l.ordering_key = j.ordering_key "
                "WHERE (l.ordering_key IS NULL OR l.expires_at < pagerbridge_now()) "
                "AND j.created_at < $3 LIMIT 1000) AS free "
                "ON CONFLICT (ordering_key) DO UPDATE "
                "SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at "
                "WHERE pagerbridge_lanes.expires_at < pagerbridge_now() RETURNING ordering_key",
                self.owner,
                self.lease_seconds,
                cutoff,
            )
            if not keys:
                return []
            rows = await conn.fetch(
                "SELECT * FROM pagerbridge_jobs WHERE ordering_key = ANY($1::text[]) ORDER BY id",
                [k["ordering_key"] for k in keys],
            )
            return [_row_job(r) for r in rows]

        return await self.run(op)

    # -- replicas (rate-limit shares) ------------------------------------------------
    async def heartbeat(self) -> None:
        async def op(conn: Connection) -> None:
            await _heartbeat(conn, self.owner)

        await self.run(op)

    async def replicas(self) -> int:
        """Live replicas sharing this database (at least this one)."""

        async def op(conn: Connection) -> int:
            count = await conn.fetchval(
                "SELECT count(*) FROM pagerbridge_replicas WHERE expires_at > pagerbridge_now()"
            )
            return max(1, int(count or 0))

        return await self.run(op)

    # -- upstream rate limits (relay.outbox.rates.RateStore) -------------------------
    async def rate_reserve(self, bucket: str, interval: float, tolerance: float) -> RateRow:
        async def op(conn: Connection) -> asyncpg.Record | None:
            return await conn.fetchrow(
                "SELECT * FROM pagerbridge_rate_reserve($1, $2, $3)", bucket, interval, tolerance
            )

        return _rate_row(await self.call(op))

    async def rate_throttle(
        self, bucket: str, pause: float, tolerance: float, learned: float | None
    ) -> RateRow:
        async def op(conn: Connection) -> asyncpg.Record | None:
            return await conn.fetchrow(
                "SELECT * FROM pagerbridge_rate_throttle($1, $2, $3, $4)",
                bucket,
                pause,
                tolerance,
                learned,
            )

        return _rate_row(await self.call(op))

    # -- memory ----------------------------------------------------------------------
    async def seen(self, key: str) -> bool:
        async def op(conn: Connection) -> bool:
            found = await conn.fetchval("SELECT 1 FROM pagerbridge_seen WHERE key = $1", key)
            return found is not None

        return await self.run(op)

    async def remember(self, keys: Sequence[str]) -> None:
        now = time.time()

        async def op(conn: Connection) -> None:
            await _remember(conn, keys, now)

        await self.run(op)

    async def incident(self, incident_id: str) -> IncidentRecord | None:
        async def op(conn: Connection) -> IncidentRecord | None:
            row = await conn.fetchrow(
                "SELECT routing, pd_incident_id, absent FROM pagerbridge_incidents "
                "WHERE incident_id = $1",
                incident_id,
            )
            if row is None:
                return None
            routing = json.loads(row["routing"]) if row["routing"] else None
            return IncidentRecord(routing, row["pd_incident_id"], bool(row["absent"]))

        return await self.run(op)

    async def incident_open(self, incident_id: str) -> bool | None:
        async def op(conn: Connection) -> bool | None:
            value = await conn.fetchval(
                "SELECT open FROM pagerbridge_incident_state WHERE incident_id = $1",
                incident_id,
            )
            return None if value is None or value == -1 else bool(value)

        return await self.run(op)

    async def save_incident(
        self,
        incident_id: str,
        routing: dict[str, Any] | None = None,
        pd_incident_id: str | None = None,
        clear_pd_incident: bool = False,
    ) -> None:
        now = time.time()

        async def op(conn: Connection) -> None:
            await conn.execute(
                "SELECT pagerbridge_save_incident($1, $2, $3, $4, false, $5)",
                incident_id,
                json.dumps(routing) if routing else None,
                pd_incident_id,
                clear_pd_incident,
                now,
            )

        await self.call(op)

    async def incident_by_pd_id(self, pd_incident_id: str) -> str | None:
        async def op(conn: Connection) -> str | None:
            value = await conn.fetchval(
                "SELECT incident_id FROM pagerbridge_incidents WHERE pd_incident_id = $1 LIMIT 1",
                pd_incident_id,
            )
            return None if value is None else str(value)

        return await self.run(op)

    async def note_trigger(self, incident_id: str, at: float) -> float:
        return await self.call(lambda conn: _note_trigger(conn, incident_id, at))

    async def end_trigger(self, incident_id: str) -> None:
        now = time.time()

        async def op(conn: Connection) -> None:
            await conn.execute(
                "UPDATE pagerbridge_incident_life SET first_trigger = NULL, updated = $2 "
                "WHERE incident_id = $1",
                incident_id,
                now,
            )

        await self.call(op)

    async def first_trigger(self, incident_id: str) -> float | None:
        async def op(conn: Connection) -> float | None:
            value = await conn.fetchval(
                "SELECT first_trigger FROM pagerbridge_incident_life WHERE incident_id = $1",
                incident_id,
            )
            return None if value is None else float(value)

        return await self.run(op)

    async def bind_pd_incident(
        self, incident_id: str, pd_incident_id: str, service_id: str | None
    ) -> None:
        now = time.time()

        async def op(conn: Connection) -> None:
            await conn.execute(
                "INSERT INTO pagerbridge_pd_owned(pd_incident_id, incident_id, service_id, at) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                pd_incident_id,
                incident_id,
                service_id,
                now,
            )
            await conn.execute(
                "SELECT pagerbridge_save_incident($1, NULL, $2, false, false, $3)",
                incident_id,
                pd_incident_id,
                now,
            )

        await self.run(op)

    async def owner_of(self, pd_incident_id: str) -> str | None:
        async def op(conn: Connection) -> str | None:
            value = await conn.fetchval(
                "SELECT incident_id FROM pagerbridge_pd_owned WHERE pd_incident_id = $1",
                pd_incident_id,
            )
            return None if value is None else str(value)

        return await self.run(op)

    async def open_incidents(self, limit: int) -> list[OpenIncident]:
        async def op(conn: Connection) -> list[OpenIncident]:
            rows = await conn.fetch(
                "SELECT k.incident_id, i.pd_incident_id, COALESCE(i.live, 0) AS live, "
                "s.open, l.checked, COALESCE(l.first_trigger, i.updated, l.updated, 0) AS since "
                "FROM (SELECT incident_id FROM pagerbridge_incident_state WHERE open = 1 "
                "      UNION SELECT incident_id FROM pagerbridge_incidents WHERE live = 1) k "
                "LEFT JOIN pagerbridge_incidents i ON i.incident_id = k.incident_id "
                "LEFT JOIN pagerbridge_incident_state s ON s.incident_id = k.incident_id "
                "LEFT JOIN pagerbridge_incident_life l ON l.incident_id = k.incident_id "
                "ORDER BY l.checked NULLS FIRST, k.incident_id LIMIT $1",
                limit,
            )
            return [
                OpenIncident(
                    r["incident_id"],
                    r["pd_incident_id"],
                    bool(r["live"]),
                    None if r["open"] is None or r["open"] == -1 else bool(r["open"]),
                    r["checked"],
                    float(r["since"]),
                )
                for r in rows
            ]

        return await self.run(op)

    async def mark_checked(self, incident_ids: Sequence[str], at: float) -> None:
        async def op(conn: Connection) -> None:
            await conn.execute(
                "INSERT INTO pagerbridge_incident_life(incident_id, checked, updated) "
                "SELECT unnest($1::text[]), $2, $2 ON CONFLICT (incident_id) DO UPDATE SET "
                "checked = EXCLUDED.checked",
                list(incident_ids),
                at,
            )

        await self.run(op)

    async def close_incident(self, incident_id: str, ordering_key: str) -> bool:
        now = time.time()

        async def op(conn: Connection) -> bool:
            pending = await conn.fetchval(
                "SELECT 1 FROM pagerbridge_jobs WHERE ordering_key = $1 LIMIT 1", ordering_key
            )
            if pending is not None:
                return False
            await conn.execute(
                "UPDATE pagerbridge_incident_state SET open = 0 WHERE incident_id = $1",
                incident_id,
            )
            await conn.execute(
                "SELECT pagerbridge_save_incident($1, NULL, NULL, true, false, $2)",
                incident_id,
                now,
            )
            await conn.execute(
                "UPDATE pagerbridge_incident_life SET first_trigger = NULL, updated = $2 "
                "WHERE incident_id = $1",
                incident_id,
                now,
            )
            return True

        return await self.run(op)

    async def prune(self, older_than: float) -> int:
        cutoff = time.time() - older_than

        async def op(conn: Connection) -> int:
            removed = await conn.fetchval(
                "WITH gone AS (DELETE FROM pagerbridge_seen WHERE at < $1 RETURNING 1) "
                "SELECT count(*) FROM gone",
                cutoff,
            )
            await conn.execute("DELETE FROM pagerbridge_incidents WHERE updated < $1", cutoff)
            await conn.execute("DELETE FROM pagerbridge_pd_owned WHERE at < $1", cutoff)
            await conn.execute("DELETE FROM pagerbridge_incident_life WHERE updated < $1", cutoff)
            await conn.execute(
                "DELETE FROM pagerbridge_replicas WHERE expires_at < pagerbridge_now() - 3600"
            )
            return int(removed or 0)

        return await self.run(op)

    async def check_writable(self, quiet_after_failure: float = 5.0) -> bool:
        """A real write through the pool (a read succeeds on a read-only or full server)."""
        now = time.time()

        async def op(conn: Connection) -> None:
            await conn.execute(
                "INSERT INTO pagerbridge_probe(owner, at) VALUES ($1, $2) "
                "ON CONFLICT (owner) DO UPDATE SET at = EXCLUDED.at",
                self.owner,
                now,
            )

        try:
            await asyncio.wait_for(self.run(op), 2)
        except (OutboxClosed, TimeoutError) as exc:
            if isinstance(exc, TimeoutError):
                self.last_error = "write probe timed out (database stalled)"
            return False
        failed = self.last_failure_at
        return failed is None or time.monotonic() - failed > quiet_after_failure


async def _heartbeat(conn: Connection, owner: str) -> None:
    await conn.execute(
        "INSERT INTO pagerbridge_replicas(owner, expires_at) "
        "VALUES ($1, pagerbridge_now() + $2) ON CONFLICT (owner) DO UPDATE "
        "SET expires_at = EXCLUDED.expires_at",
        owner,
        REPLICA_SECONDS,
    )


async def _remember(conn: Connection, keys: Sequence[str], now: float) -> None:
    if keys:
        await conn.execute(
            "INSERT INTO pagerbridge_seen(key, at) SELECT k, $2 FROM unnest($1::text[]) AS k "
            "ON CONFLICT DO NOTHING",
            list(keys),
            now,
        )


async def _note_trigger(conn: Connection, incident_id: str, at: float) -> float:
    value = await conn.fetchval(
        "INSERT INTO pagerbridge_incident_life(incident_id, first_trigger, updated) "
        "VALUES ($1, $2, $2) ON CONFLICT (incident_id) DO UPDATE SET first_trigger = "
        "COALESCE(pagerbridge_incident_life.first_trigger, EXCLUDED.first_trigger), "
        "updated = EXCLUDED.updated RETURNING first_trigger",
        incident_id,
        at,
    )
    return float(value)
