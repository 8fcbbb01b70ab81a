"""How many Events API v2 events per second the PagerDuty simulator accepts on one core.

The simulator (full OpenAPI validation on, rate limit off, request recording on, as in
tests) runs in a subprocess under uvicorn pinned to CPU 0 with ``taskset``; the load comes
from this process (pinned to CPU 1 when there is one) over keep-alive HTTP/1.1
connections. Each event is a distinct trigger, so every request opens an incident.

The load generator writes pre-serialized requests on raw asyncio streams rather than
through ``httpx``: an ``httpx.AsyncClient`` costs ~1 ms of CPU per request, so it tops out
below the rate being measured and the benchmark would measure the client. Every answer's
status line is still checked (anything but 202 counts as a failure), and a warm-up
request goes through ``httpx``.

    python tests/bench/sandbox_throughput.py [--events 20000] [--concurrency 32]

Target: at least 3,000 events/s, so the simulator is never the bottleneck when the relay
is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time

import httpx
import psutil


def serve(port: int) -> None:
    import uvicorn

    from pagerbridge_devkit.sandbox.pagerduty import PagerDutySimulator
    from pagerbridge_devkit.sandbox.server import uvicorn_config

    sim = PagerDutySimulator(events_per_minute=0, rest_per_minute=0)
    config = uvicorn_config(sim.app, "127.0.0.1", port, log_level="error")
    config.loop = "uvloop"
    uvicorn.Server(config).run()


def event(i: int) -> dict[str, object]:
    from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_ROUTING_KEY

    return {
        "routing_key": DEFAULT_ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": f"bench-{i}",
        "payload": {
            "summary": f"Bench incident {i}: CPU above 95% on db-{i % 50}",
            "source": f"db-{i % 50}.example.com",
            "severity": "critical",
            "component": "postgres",
            "group": "prod-db",
            "class": "cpu",
            "custom_details": {"bigpanda_incident_id": f"bp-{i}", "tags": {"env": "prod"}},
        },
        "client": "PagerBridge",
        "links": [{"href": "https://a.bigpanda.io/incidents/x", "text": "BigPanda"}],
    }


def request_bytes(port: int, body: dict[str, object]) -> bytes:
    payload = json.dumps(body).encode()
    head = (
        f"POST /v2/enqueue HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def load(port: int, total: int, concurrency: int) -> tuple[float, int]:
    requests = [request_bytes(port, event(i)) for i in range(total)]
    counter = iter(range(total))
    failures = 0

    async def worker() -> None:
        nonlocal failures
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in counter:
                writer.write(requests[i])
                head = await reader.readuntil(b"\r\n\r\n")
                failures += not head.startswith(b"HTTP/1.1 202")
                length = re.search(rb"(?i)content-length: *(\d+)", head)
                await reader.readexactly(int(length[1]) if length else 0)
        finally:
            writer.close()

    async with httpx.AsyncClient() as client:  # warm-up, through a real HTTP client
        warm = await client.post(f"http://127.0.0.1:{port}/v2/enqueue", json=event(-1))
        assert warm.status_code == 202, warm.text
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, failures


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0

    from pagerbridge_devkit.ports import free_port

    port = free_port()
    command = [sys.executable, __file__, "--serve", str(port)]
    if shutil.which("taskset"):
        command = ["taskset", "-c", "0", *command]
    server = subprocess.Popen(command)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/_sandbox/rate-limits", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("simulator did not start") from None
                time.sleep(0.1)
        if (os.cpu_count() or 1) > 1 and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {1})
        cpu = psutil.Process(server.pid).children(recursive=True) or [psutil.Process(server.pid)]
        cpu_before = sum(sum(p.cpu_times()[:2]) for p in cpu)
        elapsed, failures = asyncio.run(load(port, args.events, args.concurrency))
        cpu_used = sum(sum(p.cpu_times()[:2]) for p in cpu) - cpu_before
    finally:
        server.terminate()
        server.wait(10)
    rate = args.events / elapsed
    print(
        f"PagerDuty simulator: {args.events} events in {elapsed:.2f} s = {rate:,.0f} events/s "
        f"on one core (concurrency {args.concurrency}, non-202 answers: {failures})\n"
        f"  simulator CPU: {cpu_used:.2f} s = {1e6 * cpu_used / args.events:.0f} us/event, "
        f"i.e. {args.events / cpu_used:,.0f} events per CPU-second "
        f"(the ceiling of one core; the wall-clock figure drops when others share the CPU)"
    )
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
