"""The embedded outbox adapter (the default): SQLite in WAL mode, written by one thread with
group commit. Implements :class:`pagerbridge.relay.outbox.port.OutboxPort` for one relay
process per file (the port's lanes are all this process's).

Why this shape:

- **Durable before 202.** A webhook is answered only after its jobs are committed.
  ``journal_mode=WAL`` + ``synchronous=FULL`` (the default) fsyncs the WAL on every commit,
  so an accepted event survives a power cut, not just a process crash. ``NORMAL``
  (``--outbox-sync normal``) skips that fsync: still safe when the process is killed
  (SIGKILL, OOM, pod eviction: the WAL is in the page cache), but a node power loss can lose
  the last commits. It trades that for accept latency on disks with slow fsync tails.
- **Group commit.** Every database operation is a function handed to one writer thread.
  The thread takes everything queued (up to 1024 operations) and runs it in *one*
  transaction, each operation inside its own savepoint, then commits once: 200 concurrent
  webhooks cost one fsync, not 200. Futures resolve on the event loop after the commit.
- **The event loop never touches SQLite**, so a slow disk delays answers, not the server.

Tables: ``jobs`` (pending work, deleted when done), ``seen`` (idempotency and echo memory:
event content hashes, BigPanda comment ids, PagerDuty webhook ids, notes/comments the relay
wrote), ``incidents`` (per BigPanda incident: the routing the trigger used, the PagerDuty
incident id once known), ``dead_letters`` (permanent failures, kept for inspection).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pagerbridge.relay.outbox.jobs import decode, encode
from pagerbridge.relay.outbox.port import (
    IncidentMark,
    IncidentRecord,
    IncidentUpdate,
    Job,
    NewJob,
    OpenIncident,
    OutboxClosed,
    ReplayConflict,
    Skipped,
)

__all__ = [
    "IncidentMark",
    "IncidentRecord",
    "IncidentUpdate",
    "Job",
    "NewJob",
    "Outbox",
    "OutboxClosed",
    "ReplayConflict",
    "Skipped",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
MAX_BATCH = 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    ordering_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    interrupted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS incidents (
    incident_id TEXT PRIMARY KEY,
    routing TEXT,
    pd_incident_id TEXT,
    updated REAL NOT NULL,
    live INTEGER NOT NULL DEFAULT 0,
    absent INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS incident_state (
    incident_id TEXT PRIMARY KEY,
    epoch INTEGER NOT NULL,
    open INTEGER NOT NULL,
    last_updated_on REAL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS incident_life (
    incident_id TEXT PRIMARY KEY,
    first_trigger REAL,
    checked REAL,
    updated REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pd_owned (
    pd_incident_id TEXT PRIMARY KEY,
    incident_id TEXT NOT NULL,
    service_id TEXT,
    at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS probe (id INTEGER PRIMARY KEY, at REAL NOT NULL, filler BLOB);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    ordering_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at REAL NOT NULL,
    failed_at REAL NOT NULL,
    status INTEGER,
    error TEXT
);
"""


_STOP = object()


class Outbox:
    leases_lanes = False  # one process per file: every lane is this process's

    def __init__(self, path: str, synchronous: str = "FULL") -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError("synchronous must be FULL or NORMAL")
        self.path = path
        self.synchronous = synchronous
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.healthy = False
        self.last_error: str | None = None
        self.refused: str | None = None  # a file of the relay's own: never refused
        self.last_failure_at: float | None = None  # time.monotonic() of the last failed commit
        self.last_failure_wall: float | None = None  # time.time() of it (compared with jobs)
        self.commits = 0
        self.operations = 0
        # Called by the writer thread with each grouped transaction's seconds (a metric).
        self.on_commit: Callable[[float], None] | None = None
        # Called with the operations of each committed transaction (a debug metric).
        self.on_operations: Callable[[Sequence[Callable[..., Any]]], None] | None = None
        self._taken_over = False

    # -- lifecycle -------------------------------------------------------------------
    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.executescript(_SCHEMA)
        _migrate(conn)
        self._loop = loop
        self.healthy = True
        self._thread = threading.Thread(
            target=self._writer, args=(conn,), name="outbox-writer", daemon=True
        )
        self._thread.start()

    async def start(self) -> None:
        """Nothing more to do: :meth:`open` created the schema synchronously."""

    async def close(self) -> None:
        """Finish everything queued, then stop the writer."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join, 30)
        self._thread = None
        self.healthy = False

    # -- the writer thread ------------------------------------------------------------
    def _writer(self, conn: sqlite3.Connection) -> None:
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                batch = [first]
                stop = False
                while len(batch) < MAX_BATCH:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop = True
                        break
                    batch.append(item)
                self._run_batch(conn, batch)
                if stop:
                    return
        finally:
            conn.close()

    def _run_batch(
        self,
        conn: sqlite3.Connection,
        batch: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]],
    ) -> None:
        results: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        started = time.perf_counter()
        try:
            conn.execute("BEGIN IMMEDIATE")
            for fn, fut in batch:
                conn.execute("SAVEPOINT op")
                try:
                    value = fn(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    results.append((fut, None, exc))
                else:
                    conn.execute("RELEASE op")
                    results.append((fut, value, None))
            conn.execute("COMMIT")
            if self.on_commit is not None:
                self.on_commit(time.perf_counter() - started)
            if self.on_operations is not None:
                self.on_operations([fn for fn, _ in batch])
            self.commits += 1
            self.operations += len(batch)
            self.healthy = True  # last_error stays: /readyz shows it while recovering
        except sqlite3.Error as exc:
            self.healthy = False
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.last_failure_at = time.monotonic()
            self.last_failure_wall = time.time()
            logger.error("outbox commit failed", extra={"error": self.last_error})
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            failure = OutboxClosed(f"outbox write failed: {type(exc).__name__}")
            results = [(fut, None, failure) for _, fut in batch]
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # loop already closed (shutdown)
            self._loop.call_soon_threadsafe(_resolve_all, results)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in the writer thread inside a (grouped) transaction."""
        if self._thread is None or self._loop is None:
            raise OutboxClosed("outbox is not open")
        fut: asyncio.Future[T] = self._loop.create_future()
        self._queue.put((fn, fut))
        return await fut

    # -- operations -------------------------------------------------------------------
    async def enqueue(
        self, jobs: Sequence[NewJob], remember: Sequence[str] = ()
    ) -> list[Job | Skipped]:
        """Store jobs; a job whose idempotency key was seen before is skipped
        (``"duplicate"``), one whose ``unless_seen`` key is present too (``"echo"``)."""
        now = time.time()

        def op(conn: sqlite3.Connection) -> list[Job | Skipped]:
            out: list[Job | Skipped] = []
            for job in jobs:
                idempotency_key = job.idempotency_key
                if job.incident is not None:
                    epoch = _advance_incident(conn, job.incident)
                    if epoch is None:
                        out.append("stale")
                        continue
                    if idempotency_key is not None:
                        idempotency_key = idempotency_key.replace("{epoch}", str(epoch))
                if (
                    job.unless_seen is not None
                    and conn.execute(
                        "SELECT 1 FROM seen WHERE key = ?", (job.unless_seen,)
                    ).fetchone()
                ):
                    out.append("echo")
                    continue
                if idempotency_key is not None:
                    cur = conn.execute(
                        "INSERT OR IGNORE INTO seen(key, at) VALUES (?, ?)",
                        (idempotency_key, now),
                    )
                    if cur.rowcount == 0:
                        out.append("duplicate")
                        continue
                kind, payload = encode(job.spec)
                cur = conn.execute(
                    "INSERT INTO jobs(kind, ordering_key, payload, created_at) VALUES (?,?,?,?)",
                    (kind, job.ordering_key, payload, now),
                )
                assert cur.lastrowid is not None
                out.append(Job(cur.lastrowid, job.spec, job.ordering_key, now, leased=True))
            for key in remember:
                conn.execute("INSERT OR IGNORE INTO seen(key, at) VALUES (?, ?)", (key, now))
            return out

        return await self.run(op)

    async def complete(
        self,
        job_id: int,
        remember: Sequence[str] = (),
        forget: Sequence[str] = (),
        incident: IncidentUpdate | None = None,
        release_lane: str | None = None,
    ) -> list[Job]:
        """Delete a delivered job; in the same transaction record what its delivery taught
        (``seen`` keys, the incident's routing): one commit per delivered event. (Lanes are
        all this process's: nothing to release.)"""
        now = time.time()

        def op(conn: sqlite3.Connection) -> None:
            if incident is not None:
                _save_incident(conn, incident, now)
            conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            for key in remember:
                conn.execute("INSERT OR IGNORE INTO seen(key, at) VALUES (?, ?)", (key, now))
            for key in forget:
                conn.execute("DELETE FROM seen WHERE key = ?", (key,))

        await self.run(op)
        return []

    async def begin_attempt(self, job: Job, trigger: tuple[str, float] | None = None) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE jobs SET attempts = ?, interrupted = interrupted + 1 WHERE id = ?",
                (job.attempts + 1, job.id),
            )
            if trigger is not None:
                _note_trigger(conn, *trigger)

        await self.run(op)

    async def retry_later(self, job: Job, error: str) -> None:
        _, payload = encode(job.spec)

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE jobs SET attempts = ?, last_error = ?, payload = ?, interrupted = 0 "
                "WHERE id = ?",
                (job.attempts, error[:500], payload, job.id),
            )

        await self.run(op)

    async def dead_letter(self, job: Job, status: int | None, error: str) -> None:
        now = time.time()
        kind, payload = encode(job.spec)

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO dead_letters(job_id, kind, ordering_key, payload, created_at, "
                "failed_at, status, error) VALUES (?,?,?,?,?,?,?,?)",
                (
                    job.id,
                    kind,
                    job.ordering_key,
                    payload,
                    job.created_at,
                    now,
                    status,
                    error[:2000],
                ),
            )
            conn.execute("DELETE FROM jobs WHERE id = ?", (job.id,))

        await self.run(op)

    async def pending(self) -> list[Job]:
        def op(conn: sqlite3.Connection) -> list[Job]:
            rows = conn.execute(
                "SELECT id, kind, ordering_key, payload, created_at, attempts, interrupted "
                "FROM jobs ORDER BY id"
            ).fetchall()
            return [
                Job(r[0], decode(r[1], r[3]), r[2], r[4], r[5], restored=True, interrupted=r[6])
                for r in rows
            ]

        return await self.run(op)

    async def seen(self, key: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            return conn.execute("SELECT 1 FROM seen WHERE key = ?", (key,)).fetchone() is not None

        return await self.run(op)

    async def remember(self, keys: Sequence[str]) -> None:
        now = time.time()

        def op(conn: sqlite3.Connection) -> None:
            for key in keys:
                conn.execute("INSERT OR IGNORE INTO seen(key, at) VALUES (?, ?)", (key, now))

        await self.run(op)

    async def incident(self, incident_id: str) -> IncidentRecord | None:
        """What is stored about a BigPanda incident, or None."""

        def op(conn: sqlite3.Connection) -> IncidentRecord | None:
            row = conn.execute(
                "SELECT routing, pd_incident_id, absent FROM incidents WHERE incident_id = ?",
                (incident_id,),
            ).fetchone()
            if row is None:
                return None
            return IncidentRecord(json.loads(row[0]) if row[0] else None, row[1], bool(row[2]))

        return await self.run(op)

    async def incident_open(self, incident_id: str) -> bool | None:
        """Whether the newest webhook accepted for the incident left it open (None: none)."""

        def op(conn: sqlite3.Connection) -> bool | None:
            row = conn.execute(
                "SELECT open FROM incident_state WHERE incident_id = ?", (incident_id,)
            ).fetchone()
            return None if row is None else bool(row[0])

        return await self.run(op)

    async def save_incident(
        self,
        incident_id: str,
        routing: dict[str, Any] | None = None,
        pd_incident_id: str | None = None,
        clear_pd_incident: bool = False,
    ) -> None:
        update = IncidentUpdate(incident_id, routing, pd_incident_id, clear_pd_incident)
        now = time.time()
        await self.run(lambda conn: _save_incident(conn, update, now))

    async def incident_by_pd_id(self, pd_incident_id: str) -> str | None:
        def op(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT incident_id FROM incidents WHERE pd_incident_id = ?", (pd_incident_id,)
            ).fetchone()
            return str(row[0]) if row else None

        return await self.run(op)

    async def note_trigger(self, incident_id: str, at: float) -> float:
        return await self.run(lambda conn: _note_trigger(conn, incident_id, at))

    async def end_trigger(self, incident_id: str) -> None:
        now = time.time()
        await self.run(
            lambda conn: conn.execute(
                "UPDATE incident_life SET first_trigger = NULL, updated = ? WHERE incident_id = ?",
                (now, incident_id),
            )
        )

    async def first_trigger(self, incident_id: str) -> float | None:
        def op(conn: sqlite3.Connection) -> float | None:
            row = conn.execute(
                "SELECT first_trigger FROM incident_life WHERE incident_id = ?", (incident_id,)
            ).fetchone()
            return None if row is None or row[0] is None else float(row[0])

        return await self.run(op)

    async def bind_pd_incident(
        self, incident_id: str, pd_incident_id: str, service_id: str | None
    ) -> None:
        now = time.time()

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR IGNORE INTO pd_owned(pd_incident_id, incident_id, service_id, at) "
                "VALUES (?,?,?,?)",
                (pd_incident_id, incident_id, service_id, now),
            )
            _save_incident(conn, IncidentUpdate(incident_id, pd_incident_id=pd_incident_id), now)

        await self.run(op)

    async def owner_of(self, pd_incident_id: str) -> str | None:
        def op(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT incident_id FROM pd_owned WHERE pd_incident_id = ?", (pd_incident_id,)
            ).fetchone()
            return str(row[0]) if row else None

        return await self.run(op)

    async def open_incidents(self, limit: int) -> list[OpenIncident]:
        def op(conn: sqlite3.Connection) -> list[OpenIncident]:
            rows = conn.execute(
                "SELECT k.incident_id, i.pd_incident_id, COALESCE(i.live, 0), s.open, l.checked, "
                "COALESCE(l.first_trigger, i.updated, l.updated, 0) "
                "FROM (SELECT incident_id FROM incident_state WHERE open = 1 "
                "      UNION SELECT incident_id FROM incidents WHERE live = 1) k "
                "LEFT JOIN incidents i ON i.incident_id = k.incident_id "
                "LEFT JOIN incident_state s ON s.incident_id = k.incident_id "
                "LEFT JOIN incident_life l ON l.incident_id = k.incident_id "
                "ORDER BY l.checked IS NOT NULL, l.checked, k.incident_id LIMIT ?",
                (limit,),
            ).fetchall()
            return [
                OpenIncident(
                    r[0], r[1], bool(r[2]), None if r[3] is None else bool(r[3]), r[4], float(r[5])
                )
                for r in rows
            ]

        return await self.run(op)

    async def mark_checked(self, incident_ids: Sequence[str], at: float) -> None:
        def op(conn: sqlite3.Connection) -> None:
            for incident_id in incident_ids:
                conn.execute(
                    "INSERT INTO incident_life(incident_id, checked, updated) VALUES (?,?,?) "
                    "ON CONFLICT(incident_id) DO UPDATE SET checked = excluded.checked",
                    (incident_id, at, at),
                )

        await self.run(op)

    async def close_incident(self, incident_id: str, ordering_key: str) -> bool:
        now = time.time()

        def op(conn: sqlite3.Connection) -> bool:
            pending = conn.execute(
                "SELECT 1 FROM jobs WHERE ordering_key = ? LIMIT 1", (ordering_key,)
            ).fetchone()
            if pending is not None:
                return False
            conn.execute("UPDATE incident_state SET open = 0 WHERE incident_id = ?", (incident_id,))
            _save_incident(conn, IncidentUpdate(incident_id, clear_pd_incident=True), now)
            conn.execute(
                "UPDATE incident_life SET first_trigger = NULL, updated = ? WHERE incident_id = ?",
                (now, incident_id),
            )
            return True

        return await self.run(op)

    async def dead_letters(self) -> list[dict[str, Any]]:
        def op(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = conn.execute(
                "SELECT job_id, kind, ordering_key, status, error FROM dead_letters ORDER BY id"
            ).fetchall()
            return [
                {"job_id": r[0], "kind": r[1], "ordering_key": r[2], "status": r[3], "error": r[4]}
                for r in rows
            ]

        return await self.run(op)

    async def prune(self, older_than: float) -> int:
        """Forget idempotency/echo memory and incident records untouched for ``older_than``
        seconds (BigPanda does not re-send incidents that old)."""
        cutoff = time.time() - older_than

        def op(conn: sqlite3.Connection) -> int:
            removed = conn.execute("DELETE FROM seen WHERE at < ?", (cutoff,)).rowcount
            conn.execute("DELETE FROM incidents WHERE updated < ?", (cutoff,))
            conn.execute("DELETE FROM pd_owned WHERE at < ?", (cutoff,))
            conn.execute("DELETE FROM incident_life WHERE updated < ?", (cutoff,))
            return int(removed)

        return await self.run(op)

    # -- lanes: one process owns every lane of its file ------------------------------
    async def claim_lane(self, ordering_key: str) -> list[Job] | None:
        return []  # this process's copies are all there is

    async def release_lane(self, ordering_key: str) -> list[Job]:
        return []  # every job of this file was submitted to, or loaded by, this process

    async def renew_lanes(self, ordering_keys: Sequence[str]) -> set[str]:
        return set()

    async def replicas(self) -> int:
        return 1

    async def take_over(self) -> list[Job]:
        """Every pending job the first time (the restart's reload), then nothing."""
        if self._taken_over:
            return []
        jobs = await self.pending()
        self._taken_over = True
        return jobs

    async def check_writable(self, quiet_after_failure: float = 5.0) -> bool:
        """A real write: commit a page-sized row through the writer (a read would succeed on
        a full disk). Writable when that commits and no commit failed in the last
        ``quiet_after_failure`` seconds (so readiness does not flap while deliveries still
        fail to record)."""
        now = time.time()

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO probe(id, at, filler) VALUES (1, ?, randomblob(4096)) "
                "ON CONFLICT(id) DO UPDATE SET at = excluded.at, filler = excluded.filler",
                (now,),
            )

        try:
            await asyncio.wait_for(self.run(op), 2)
        except (OutboxClosed, TimeoutError, sqlite3.Error) as exc:
            if isinstance(exc, TimeoutError):
                self.last_error = "write probe timed out (store stalled)"
            return False
        failed = self.last_failure_at
        return failed is None or time.monotonic() - failed > quiet_after_failure

    # -- day 2: the admin API ---------------------------------------------------------
    async def oldest_pending_age(self) -> float | None:
        """Seconds since the oldest pending job was accepted; None when nothing is pending."""
        now = time.time()

        def op(conn: sqlite3.Connection) -> float | None:
            oldest = conn.execute("SELECT MIN(created_at) FROM jobs").fetchone()[0]
            return None if oldest is None else max(0.0, now - float(oldest))

        return await self.run(op)

    async def replay_dead_letter(self, job_id: int) -> bool:
        """Move dead letter ``job_id`` back into ``jobs`` under the same id, as a new
        acceptance (fresh age and attempts); False when there is no such dead letter.

        Raises :class:`ReplayConflict` while any job of the same incident (ordering key) is
        pending: queued behind them it would reach PagerDuty after newer events of its
        incident, and after a restart (jobs load by id) before them. Once they are done it
        is the incident's only job; a trigger among them is then confirmed against
        BigPanda's state before it is sent (it is loaded as restored), so a replay never
        reopens an incident resolved meanwhile.
        """
        now = time.time()

        def op(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT id, kind, ordering_key, payload FROM dead_letters WHERE job_id = ? "
                "ORDER BY id DESC LIMIT 1",
                (job_id,),
            ).fetchone()
            if row is None:
                return False
            busy = conn.execute(
                "SELECT 1 FROM jobs WHERE ordering_key = ? OR id = ?", (row[2], job_id)
            ).fetchone()
            if busy is not None:
                raise ReplayConflict(f"jobs of ordering key {row[2]!r} are pending")
            conn.execute(
                "INSERT INTO jobs(id, kind, ordering_key, payload, created_at) VALUES (?,?,?,?,?)",
                (job_id, row[1], row[2], row[3], now),
            )
            conn.execute("DELETE FROM dead_letters WHERE id = ?", (row[0],))
            return True

        return await self.run(op)


def _save_incident(conn: sqlite3.Connection, update: IncidentUpdate, now: float) -> None:
    if update.clear_pd_incident:
        conn.execute(
            # The routing (an override key is a credential) is not needed after the resolve.
            "UPDATE incidents SET pd_incident_id = NULL, live = 0, routing = NULL "
            "WHERE incident_id = ?",
            (update.incident_id,),
        )
        # The next trigger starts a new life (see OutboxMemory.note_trigger).
        conn.execute(
            "UPDATE incident_life SET first_trigger = NULL WHERE incident_id = ?",
            (update.incident_id,),
        )
        return
    if update.never_created:
        conn.execute(
            "INSERT INTO incidents(incident_id, updated, live, absent) VALUES (?, ?, 0, 1) "
            "ON CONFLICT(incident_id) DO UPDATE SET absent = 1 - live, updated = excluded.updated",
            (update.incident_id, now),
        )
        return
    delivered = 1 if update.routing else 0  # a trigger reached PagerDuty
    conn.execute(
        "INSERT INTO incidents(incident_id, routing, pd_incident_id, updated, live, absent) "
        "VALUES (?,?,?,?,?,0) ON CONFLICT(incident_id) DO UPDATE SET "
        "routing = COALESCE(excluded.routing, routing), "
        "pd_incident_id = COALESCE(excluded.pd_incident_id, pd_incident_id), "
        "updated = excluded.updated, "
        "live = MAX(live, excluded.live), "
        "absent = CASE WHEN excluded.live = 1 THEN 0 ELSE absent END",
        (
            update.incident_id,
            json.dumps(update.routing) if update.routing else None,
            update.pd_incident_id,
            now,
            delivered,
        ),
    )


def _note_trigger(conn: sqlite3.Connection, incident_id: str, at: float) -> float:
    conn.execute(
        "INSERT INTO incident_life(incident_id, first_trigger, updated) VALUES (?,?,?) "
        "ON CONFLICT(incident_id) DO UPDATE SET "
        "first_trigger = COALESCE(first_trigger, excluded.first_trigger), "
        "updated = excluded.updated",
        (incident_id, at, at),
    )
    row = conn.execute(
        "SELECT first_trigger FROM incident_life WHERE incident_id = ?", (incident_id,)
    ).fetchone()
    return float(row[0])


def _migrate(conn: sqlite3.Connection) -> None:
    """Columns added after the first release (outbox files from older relays)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(incidents)")}
    for name in ("live", "absent"):
        if name not in columns:
            conn.execute(f"ALTER TABLE incidents ADD COLUMN {name} INTEGER NOT NULL DEFAULT 0")
    if "interrupted" not in {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}:
        conn.execute("ALTER TABLE jobs ADD COLUMN interrupted INTEGER NOT NULL DEFAULT 0")


def _advance_incident(conn: sqlite3.Connection, mark: IncidentMark) -> int | None:
    """Apply one webhook's action to the incident's state; its epoch, or None if stale."""
    row = conn.execute(
        "SELECT epoch, open, last_updated_on FROM incident_state WHERE incident_id = ?",
        (mark.incident_id,),
    ).fetchone()
    epoch, was_open, last = (row[0], bool(row[1]), row[2]) if row else (0, None, None)
    if mark.updated_on is not None and last is not None and mark.updated_on < last:
        return None
    if mark.action == "trigger" and was_open is False:
        epoch += 1  # triggered again after a resolve: a reopen, not a re-send
    newest = max(v for v in (last, mark.updated_on, float("-inf")) if v is not None)
    conn.execute(
        "INSERT INTO incident_state(incident_id, epoch, open, last_updated_on) VALUES (?,?,?,?) "
        "ON CONFLICT(incident_id) DO UPDATE SET epoch = excluded.epoch, open = excluded.open, "
        "last_updated_on = excluded.last_updated_on",
        (
            mark.incident_id,
            epoch,
            1 if mark.action == "trigger" else 0,
            None if newest == float("-inf") else newest,
        ),
    )
    return int(epoch)


def _resolve_all(results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for fut, value, exc in results:
        if fut.done():
            continue
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(value)
