"""Outbound HTTP stacks side by side (a script, not a test): ``python outbound_clients.py``.

The relay's delivery path is one bounded POST per event (:func:`pagerbridge.clients._http.
call`: overall deadline, streamed size cap, identity encoding, ``status_only`` grace) at up
to ``concurrency`` at once over keep-alive connections. This script sends the same events to
the PagerDuty simulator (Events v2, loopback, its own process on CPU 1) from a client process
pinned to CPU 0, once per stack, in one run:

- ``httpx-today``: the relay's client before issue 30 (httpx, 64 one-connection httpcore
  pools, ``relay/outbound/http_pool.py``'s ShardedTransport).
- ``httpx-tuned``: the same pools with what can be tuned without leaving httpx: the body
  serialized once (``content=``, no ``json=`` re-encoding), headers prebuilt, no
  ``build_request`` per call, and httpcore's per-request ``import sniffio`` miss avoided
  (it scans ``sys.path`` on every request when sniffio is not installed).
- ``aiohttp``: aiohttp's ClientSession (C HTTP parser; kopf's stack, already installed),
  with the same bounds as ``call``.
- ``httpx-on-aiohttp``: httpx's client API (what the relay's clients and ``call`` use)
  over an aiohttp-backed transport (``relay/outbound/http_pool.py``'s AiohttpTransport).

Printed per stack: client CPU per request (user + system of the client process, the
steady figure on a shared machine), p50 / p99 / max latency, and the ratio of each to
``httpx-today`` measured in the same run, beside the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "bench"))

from pagerbridge_devkit.ports import free_port  # noqa: E402

STACKS = ("httpx-today", "httpx-tuned", "aiohttp", "httpx-on-aiohttp")


def event(i: int) -> dict[str, Any]:
    return {
        "routing_key": "R" * 32,
        "event_action": "trigger",
        "dedup_key": f"bp-bench-{i}",
        "payload": {
            "summary": f"CPU load above 95% for 10 minutes on db-{i}",
            "source": f"db-{i}",
            "severity": "critical",
            "custom_details": {"host": f"db-{i}", "check": "cpu_load", "service": "payments"},
        },
    }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _drive(post: Any, n: int, concurrency: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            started = time.perf_counter()
            await post(i)
            latencies.append(time.perf_counter() - started)

    before = _cpu()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, _cpu() - before


async def run_stack(stack: str, url: str, n: int, concurrency: int) -> dict[str, Any]:
    from pagerbridge.clients._http import CallLimits, call
    from pagerbridge.relay.outbound.http_pool import ShardedTransport

    limits = CallLimits(deadline=30.0, max_response_bytes=1 << 20)
    if stack in ("httpx-today", "httpx-tuned", "httpx-on-aiohttp"):
        if stack == "httpx-on-aiohttp":
            from pagerbridge.relay.outbound.http_pool import AiohttpTransport

            transport: httpx.AsyncBaseTransport = AiohttpTransport(concurrency)
        else:
            transport = ShardedTransport(shards=concurrency, per_shard=1)
        client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0), transport=transport)
        if stack == "httpx-tuned":
            import httpcore._synchronization as sync

            sync.current_async_library = lambda: "asyncio"  # the sniffio miss, see above
            headers = {"content-type": "application/json", "accept-encoding": "identity"}

            async def post(i: int) -> None:
                body = json.dumps(event(i), separators=(",", ":")).encode()
                request = httpx.Request("POST", url, content=body, headers=headers)
                async with asyncio.timeout(limits.deadline):
                    response = await client.send(request, stream=True)
                    try:
                        size = 0
                        async for chunk in response.aiter_raw():
                            size += len(chunk)
                            if size > limits.max_response_bytes:
                                break
                    finally:
                        await response.aclose()
                assert response.status_code == 202, response.status_code

        else:

            async def post(i: int) -> None:
                response = await call(
                    client, "POST", "POST", url, limits, json_body=event(i), status_only=True
                )
                assert response.status_code == 202, response.status_code

        try:
            await post(-1)  # connect outside the measurement
            latencies, cpu = await _drive(post, n, concurrency)
        finally:
            await client.aclose()
    else:
        import aiohttp

        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency),
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=10),
        )
        headers = {"content-type": "application/json", "accept-encoding": "identity"}

        async def post(i: int) -> None:
            body = json.dumps(event(i), separators=(",", ":")).encode()
            async with asyncio.timeout(limits.deadline):
                async with session.post(url, data=body, headers=headers) as response:
                    size = 0
                    async for chunk in response.content.iter_any():
                        size += len(chunk)
                        if size > limits.max_response_bytes:
                            break
            assert response.status == 202, response.status

        try:
            await post(-1)
            latencies, cpu = await _drive(post, n, concurrency)
        finally:
            await session.close()
    latencies.sort()
    return {
        "stack": stack,
        "cpu_ms": cpu / n * 1000,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "max_ms": latencies[-1] * 1000,
    }


def child(stack: str, url: str, n: int, concurrency: int) -> None:
    try:
        import uvloop

        uvloop.install()  # as the relay runs (uvicorn's loop="auto")
    except ImportError:
        pass
    print(json.dumps(asyncio.run(run_stack(stack, url, n, concurrency))))


def serve_pd(port: int) -> None:
    import uvicorn

    from pagerbridge_devkit.sandbox.pagerduty import PagerDutySimulator

    sim = PagerDutySimulator(events_per_minute=0, rest_per_minute=0, validate=False)
    uvicorn.run(sim.app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def pinned(cpu: int, args: list[str]) -> list[str]:
    cmd = [sys.executable, __file__, *args]
    return ["taskset", "-c", str(cpu), *cmd] if shutil.which("taskset") else cmd


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="each stack this many times")
    parser.add_argument("--child", nargs=2, metavar=("STACK", "URL"))
    parser.add_argument("--serve-pd", type=int, metavar="PORT")
    args = parser.parse_args()
    if args.serve_pd:
        serve_pd(args.serve_pd)
        return 0
    if args.child:
        child(args.child[0], args.child[1], args.requests, args.concurrency)
        return 0
    port = free_port()
    sim = subprocess.Popen(pinned(1, ["--serve-pd", str(port)]))
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                httpx.get(base + "/_sandbox/incidents", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        url = base + "/v2/enqueue"
        print(f"# {args.requests} POST /v2/enqueue to the PagerDuty simulator (CPU 1), "
              f"{args.concurrency} at once, client on CPU 0; load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
        results: dict[str, list[dict[str, Any]]] = {s: [] for s in STACKS}
        for _ in range(args.rounds):  # interleaved: drifting load hits every stack alike
            for stack in STACKS:
                out = subprocess.run(
                    pinned(0, ["--child", stack, url, "--requests", str(args.requests),
                               "--concurrency", str(args.concurrency)]),
                    check=True, capture_output=True, text=True,
                )  # fmt: skip
                results[stack].append(json.loads(out.stdout.strip().splitlines()[-1]))
        best = {s: min(r, key=lambda x: x["cpu_ms"]) for s, r in results.items()}
        ref = best["httpx-today"]
        print(f"{'stack':<18} {'CPU ms/req':>10} {'ratio':>6} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'ratio':>6} {'max ms':>8}   (best CPU of {args.rounds} rounds)")  # fmt: skip
        for stack in STACKS:
            r = best[stack]
            print(
                f"{stack:<18} {r['cpu_ms']:10.3f} {r['cpu_ms'] / ref['cpu_ms']:5.2f}x "
                f"{r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['p99_ms'] / ref['p99_ms']:5.2f}x "
                f"{r['max_ms']:8.2f}"
            )
        print(f"# load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        sim.kill()
        sim.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
