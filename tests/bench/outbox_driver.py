"""Which PostgreSQL driver for the relay's outbox: asyncpg or psycopg 3 (async)?

The outbox's hot path is many small concurrent transactions: per accepted webhook one
``INSERT ... ON CONFLICT DO NOTHING`` into the idempotency table plus one ``INSERT ...
RETURNING id`` into ``jobs``, committed; per delivered event one ``DELETE`` committed. This
script runs exactly that against a real throw-away PostgreSQL (dev kit), with the same pool
size and concurrency for both drivers, and prints transactions per second.

    .venv/bin/pip install 'psycopg[binary]' psycopg-pool   # the contender, not a dependency
    .venv/bin/python tests/bench/outbox_driver.py [--ops 4000] [--concurrency 64] [--pool 10]

2026-12-02, load average ~3 (shared 2-core machine), PostgreSQL 15 on loopback TCP, pool 10,
64 concurrent tasks, best of 2 alternating rounds: asyncpg 2749 accept-tx/s and 4428
complete-tx/s, psycopg 3 1895 and 3069: asyncpg ~1.45x on both, hence the relay's driver.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable

import asyncpg
import psycopg_pool

from pagerbridge_devkit.postgres import running

SCHEMA = """
DROP TABLE IF EXISTS bench_jobs; DROP TABLE IF EXISTS bench_seen;
CREATE TABLE bench_jobs (id BIGSERIAL PRIMARY KEY, kind TEXT NOT NULL, ordering_key TEXT NOT NULL,
  payload TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL);
CREATE TABLE bench_seen (key TEXT PRIMARY KEY, at DOUBLE PRECISION NOT NULL);
"""
PAYLOAD = json.dumps({"incident_id": "x" * 24, "event": {"summary": "s" * 400}})


async def run_ops(ops: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> float:
    queue = iter(range(ops))

    async def worker() -> None:
        for n in queue:
            await one(n)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ops / (time.perf_counter() - started)


async def bench_asyncpg(dsn: str, ops: int, concurrency: int, pool_size: int) -> dict[str, float]:
    pool = await asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size)
    async with pool.acquire() as conn:
        await conn.execute(SCHEMA)

    async def accept(n: int) -> None:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO bench_seen(key, at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                f"k{n}",
                time.time(),
            )
            await conn.fetchval(
                "INSERT INTO bench_jobs(kind, ordering_key, payload, created_at) "
                "VALUES ($1,$2,$3,$4) RETURNING id",
                "pd_event",
                f"bp:{n}",
                PAYLOAD,
                time.time(),
            )

    async def deliver(n: int) -> None:
        async with pool.acquire() as conn:
            await conn.execute("DELETE FROM bench_jobs WHERE id = $1", n + 1)

    out = {
        "accept_tx_per_s": await run_ops(ops, concurrency, accept),
        "complete_tx_per_s": await run_ops(ops, concurrency, deliver),
    }
    await pool.close()
    return out


async def bench_psycopg(dsn: str, ops: int, concurrency: int, pool_size: int) -> dict[str, float]:
    pool = psycopg_pool.AsyncConnectionPool(dsn, min_size=pool_size, max_size=pool_size, open=False)
    await pool.open()
    async with pool.connection() as conn:
        await conn.execute(SCHEMA)

    async def accept(n: int) -> None:
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO bench_seen(key, at) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (f"k{n}", time.time()),
            )
            cur = await conn.execute(
                "INSERT INTO bench_jobs(kind, ordering_key, payload, created_at) "
                "VALUES (%s,%s,%s,%s) RETURNING id",
                ("pd_event", f"bp:{n}", PAYLOAD, time.time()),
            )
            await cur.fetchone()

    async def deliver(n: int) -> None:
        async with pool.connection() as conn:
            await conn.execute("DELETE FROM bench_jobs WHERE id = %s", (n + 1,))

    out = {
        "accept_tx_per_s": await run_ops(ops, concurrency, accept),
        "complete_tx_per_s": await run_ops(ops, concurrency, deliver),
    }
    await pool.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--pool", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {"asyncpg": [], "psycopg": []}
    with running() as pg:
        for _ in range(args.rounds):  # alternate, so machine noise hits both
            for name, bench in (("asyncpg", bench_asyncpg), ("psycopg", bench_psycopg)):
                results[name].append(
                    asyncio.run(bench(pg.dsn, args.ops, args.concurrency, args.pool))
                )
    for name, rounds in results.items():
        best = {k: max(r[k] for r in rounds) for k in rounds[0]}
        print(name, {k: round(v) for k, v in best.items()})
    print("load average:", os.getloadavg())


if __name__ == "__main__":
    main()
