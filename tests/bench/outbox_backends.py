"""Outbox backends benchmark (a script, not a test): SQLite vs PostgreSQL, and PostgreSQL
active-active. ``python tests/bench/outbox_backends.py [--webhooks 1500] [--rounds 5]``

Real relay processes, a real throw-away PostgreSQL (dev kit), the PagerDuty simulator.

1. Throughput, both backends in one run: accepted webhooks/s (C concurrent senders, every
   webhook answered 202 only once committed) and delivered events/s (all N delivered to
   the simulator), upstream rate limits lifted so the store is what is measured. Goal:
   PostgreSQL at least 0.5x SQLite.
2. Failover: two replicas on one database; replica A holds lanes with work queued (slow
   upstream) and is SIGKILLed; time from the kill to the survivor's first delivery, p50 and
   max over ``--rounds``. Goal: at most 5 s.
3. Storm across 2 replicas with PagerDuty's real limit (120 events/min per routing key):
   PagerDuty requests per delivered event (429s count). Goal: at most 1.2.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "unit"))

from relay.relayproc import WEBHOOK_TOKEN, RelayProcess, write_config  # noqa: E402

from pagerbridge.api.contract import OUTBOX_DSN_ENV  # noqa: E402
from pagerbridge_devkit.postgres import PostgresServer, running  # noqa: E402
from pagerbridge_devkit.sandbox.pagerduty import (  # noqa: E402
    DEFAULT_API_TOKEN,
    DEFAULT_ROUTING_KEY,
    PagerDutySimulator,
)
from pagerbridge_devkit.sandbox.server import BackgroundServer  # noqa: E402

UNLIMITED = ["--events-rate-limit", "1000000", "--rest-rate-limit", "1000000"]


def body(tag: str, n: int, key: str | None = None) -> dict[str, Any]:
    alert: dict[str, Any] = {
        "status": "critical",
        "description": f"alert {n}",
        "primary_property": "host",
        "host": f"host-{n}",
    }
    if key:
        alert["pd_key"] = key
    return {
        "id": f"{tag}-{n:05d}",
        "status": "critical",
        "updatedOn": 1764140000 + n,
        "alerts": [alert],
    }


def post_all(urls: list[str], bodies: list[dict[str, Any]], senders: int = 32) -> float:
    """Post every body (round-robin over ``urls``); seconds until all were answered 202."""
    headers = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=senders)) as client:

        def post(item: tuple[int, dict[str, Any]]) -> None:
            n, b = item
            r = client.post(urls[n % len(urls)] + "/v1/bigpanda/webhook", json=b, headers=headers)
            assert r.status_code == 202, r.text

        start = time.monotonic()
        with ThreadPoolExecutor(senders) as pool:
            list(pool.map(post, enumerate(bodies)))
        return time.monotonic() - start


def relay(tmp: Path, pd_url: str, name: str, args: list[str], dsn: str | None) -> RelayProcess:
    config = write_config(
        tmp,
        pd_url=pd_url,
        routing_key=DEFAULT_ROUTING_KEY,
        pd_api_token=DEFAULT_API_TOKEN,
        extra={"keyOverrideTag": "pd_key"},
    )
    env = {OUTBOX_DSN_ENV: dsn} if dsn else None
    return RelayProcess(config, tmp / f"{name}.log", [*args, "--log-level", "warning"], env=env)


def throughput(pg: PostgresServer, n: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for backend in ("sqlite", "postgresql"):
        pd = PagerDutySimulator(events_per_minute=0, rest_per_minute=0, validate=False)
        with tempfile.TemporaryDirectory() as tmp, pd, BackgroundServer(pd.app) as srv:
            dsn = (
                pg.create_database(f"bench_tp_{int(time.time() * 1000)}")
                if backend != "sqlite"
                else None
            )
            proc = relay(Path(tmp), srv.url, backend, UNLIMITED, dsn).start()
            try:
                start = time.monotonic()
                accepted_in = post_all([proc.url], [body(backend, i) for i in range(n)])
                while len(pd.incidents()) < n:
                    time.sleep(0.05)
                drained_in = time.monotonic() - start
            finally:
                proc.kill()
        out[backend] = {"accepted_per_s": n / accepted_in, "delivered_per_s": n / drained_in}
    return out


def failover(pg: PostgresServer, rounds: int) -> list[float]:
    times: list[float] = []
    pd = PagerDutySimulator(events_per_minute=0, rest_per_minute=0, validate=False)
    with tempfile.TemporaryDirectory() as tmp, pd, BackgroundServer(pd.app) as srv:
        dsn = pg.create_database("bench_failover")
        for r in range(rounds):
            # A may send one event per minute: after its first, all its lanes still wait.
            slow = ["--events-rate-limit", "1", "--rest-rate-limit", "1000000"]
            a = relay(Path(tmp), srv.url, f"a{r}", slow, dsn).start()
            b = relay(Path(tmp), srv.url, f"b{r}", UNLIMITED, dsn).start()
            try:
                post_all([a.url], [body(f"fo{r}", i) for i in range(40)], senders=8)
                while a.metric("pagerbridge_relay_deliveries_total", outcome="delivered") < 1:
                    time.sleep(0.02)
                before = b.metric("pagerbridge_relay_deliveries_total", outcome="delivered")
                a.kill()
                killed = time.monotonic()
                while b.metric("pagerbridge_relay_deliveries_total", outcome="delivered") <= before:
                    time.sleep(0.02)
                times.append(time.monotonic() - killed)
                while len({i.incident_key for i in pd.incidents()}) < 40 * (r + 1):
                    time.sleep(0.1)
                deadline = time.monotonic() + 60  # its last commits may still be on the way
                while b.metric("pagerbridge_relay_outbox_pending") != 0:
                    if time.monotonic() > deadline:
                        raise RuntimeError("survivor still has work")
                    time.sleep(0.1)
            finally:
                a.kill()
                b.kill()
    return times


def storm(pg: PostgresServer, keys: int, per_key: int) -> dict[str, float]:
    pd = PagerDutySimulator(events_per_minute=120, rest_per_minute=960, validate=False)
    routing = [f"{k:02d}".ljust(32, "k") for k in range(keys)]
    with tempfile.TemporaryDirectory() as tmp, pd, BackgroundServer(pd.app) as srv:
        dsn = pg.create_database("bench_storm")
        replicas = [relay(Path(tmp), srv.url, f"s{n}", [], dsn).start() for n in range(2)]
        try:
            bodies = [
                body(f"st{k}", n, key) for n in range(per_key) for k, key in enumerate(routing)
            ]
            start = time.monotonic()
            post_all([r.url for r in replicas], bodies)
            total = len(bodies)
            while len({i.incident_key for i in pd.incidents()}) < total:
                time.sleep(0.5)
            drained = time.monotonic() - start
        finally:
            for r in replicas:
                r.kill()
    requests = pd.requests.matching("POST", "/v2/enqueue")
    return {
        "events": float(total),
        "requests": float(len(requests)),
        "requests_per_event": len(requests) / total,
        "http_429": float(sum(r.status == 429 for r in requests)),
        "drain_s": drained,
        "bound_s": per_key / 2.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--webhooks", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--storm-keys", type=int, default=2)
    parser.add_argument("--storm-per-key", type=int, default=150)
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["throughput", "failover", "storm"]
    )
    args = parser.parse_args()
    with running() as pg:
        print("load average before:", [round(x, 2) for x in os.getloadavg()])
        if "throughput" not in args.skip:
            tp = throughput(pg, args.webhooks)
            for name, row in tp.items():
                print(
                    f"{name}: {row['accepted_per_s']:.0f} accepted webhooks/s, "
                    f"{row['delivered_per_s']:.0f} delivered events/s"
                )
            ratio_a = tp["postgresql"]["accepted_per_s"] / tp["sqlite"]["accepted_per_s"]
            ratio_d = tp["postgresql"]["delivered_per_s"] / tp["sqlite"]["delivered_per_s"]
            print(
                f"postgresql/sqlite: accepted {ratio_a:.2f}x, delivered {ratio_d:.2f}x "
                "(goal >= 0.5)"
            )
        if "failover" not in args.skip:
            times = failover(pg, args.rounds)
            print(
                f"failover (kill -> survivor's first delivery) over {len(times)} rounds: "
                f"p50 {statistics.median(times):.2f} s, max {max(times):.2f} s (goal <= 5 s); "
                f"all {[round(t, 2) for t in times]}"
            )
        if "storm" not in args.skip:
            st = storm(pg, args.storm_keys, args.storm_per_key)
            print(
                f"storm across 2 replicas: {st['events']:.0f} events, {st['requests']:.0f} "
                f"PagerDuty requests ({st['http_429']:.0f} x 429) = "
                f"{st['requests_per_event']:.3f} requests/event (goal <= 1.2); drained in "
                f"{st['drain_s']:.0f} s (bound {st['bound_s']:.0f} s)"
            )
        print("load average after:", [round(x, 2) for x in os.getloadavg()])
    return 0


if __name__ == "__main__":
    sys.exit(main())
