"""Relay throughput benchmark (a script, not a test): ``python tests/bench/relay_throughput.py``.

Run 1, BigPanda → PagerDuty: N BigPanda webhooks from C concurrent senders against the real
relay process (durable SQLite outbox, delivery to the PagerDuty simulator), side by side with
a bare pass-through baseline (a minimal ASGI app that forwards each body with httpx: no
parsing, no outbox) under the same uvicorn, on the same pinned core, in the same run.

Run 2, PagerDuty → BigPanda: N signed Webhooks v3 (``incident.resolved``) against the relay
(HMAC verification, dedupe, outbox, delivery to the BigPanda simulator), with the same
baseline forwarding to BigPanda.

Server processes (relay or baseline) are pinned to CPU 0 with ``taskset``; the simulators
and this load generator share the other CPU. The senders speak raw HTTP/1.1 over keep-alive
connections (asyncio streams), so the client is not the bottleneck. Upstream rate limits
are lifted for the measurement (PagerDuty's 120 events/min per routing key would otherwise
be the only thing measured); the relay honours them in production.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "unit"))
sys.path.insert(0, str(ROOT / "tests" / "bench"))

from relay.relayproc import WEBHOOK_TOKEN, RelayProcess, write_config  # noqa: E402

from pagerbridge.relay.inbound.signatures import sign  # noqa: E402
from pagerbridge_devkit.ports import free_port  # noqa: E402

SERVER_CPU = 0
OTHER_CPU = 1


# -- processes this script runs as (simulators, baseline) -------------------------------
def serve_sim(kind: str, port: int) -> None:
    import uvicorn

    if kind == "pd":
        from pagerbridge_devkit.sandbox.pagerduty import PagerDutySimulator

        sim: Any = PagerDutySimulator(events_per_minute=0, rest_per_minute=0, validate=False)
    else:
        from pagerbridge_devkit.sandbox.bigpanda import BigPandaSimulator

        sim = BigPandaSimulator(requests_per_second=None)
    uvicorn.run(sim.app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def serve_sink(port: int) -> None:
    """A bare upstream that answers every request 202 at once (isolates server costs)."""
    answer = (
        b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 20\r\n"
        b'\r\n{"status":"success"}'
    )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                length = 0
                line = await reader.readline()
                if not line:
                    return
                while line not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                    line = await reader.readline()
                if length:
                    await reader.readexactly(length)
                writer.write(answer)
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def serve_baseline(port: int, upstream: str, auth: str) -> None:
    """The pass-through: forward the raw body upstream with httpx, answer with 202."""
    import uvicorn

    client: httpx.AsyncClient | None = None

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal client
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    client = httpx.AsyncClient(
                        limits=httpx.Limits(max_connections=64, max_keepalive_connections=64)
                    )
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        assert client is not None
        headers = {"content-type": "application/json"}
        if auth:
            headers["authorization"] = auth
        await client.post(upstream, content=body, headers=headers)
        await send(
            {
                "type": "http.response.start",
                "status": 202,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"21")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"status":"accepted"}'})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def spawn(args: list[str], cpu: int, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, __file__, *args]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", str(cpu), *cmd]
    with log.open("ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)


def wait_http(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


# -- the load generator -----------------------------------------------------------------
def request_bytes(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode() + b"\r\n" + body


async def _sender(
    port: int,
    requests: list[bytes],
    latencies: list[float],
    statuses: dict[int, int],
    interval: float | None = None,
    first: float = 0.0,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for k, raw in enumerate(requests):
            if interval is not None:
                due = first + k * interval
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                started = due  # from the scheduled time: no coordinated omission
            else:
                started = time.perf_counter()
            writer.write(raw)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            status = int(status_line.split()[1])
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


def drive(port: int, batches: list[list[bytes]], rate: float | None = None) -> dict[str, Any]:
    """Closed loop (each sender sends as soon as its previous answer came) or, with
    ``rate``, open loop: requests leave on a fixed schedule of ``rate`` per second overall."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def main() -> float:
        started = time.perf_counter()
        interval = len(batches) / rate if rate else None
        await asyncio.gather(
            *(
                _sender(port, b, latencies, statuses, interval, started + i / (rate or 1))
                for i, b in enumerate(batches)
            )
        )
        return time.perf_counter() - started

    elapsed = asyncio.run(main())
    latencies.sort()
    n = len(latencies)
    return {
        "requests": n,
        "seconds": elapsed,
        "rps": n / elapsed,
        "p50_ms": latencies[n // 2] * 1000,
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1000,
        "max_ms": latencies[-1] * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000,
        "statuses": statuses,
    }


def bigpanda_batches(senders: int, per_sender: int, run: str) -> list[list[bytes]]:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    batches = []
    for s in range(senders):
        batch = []
        for i in range(per_sender):
            body = {
                "id": f"{run}-{s:03d}-{i:04d}",
                "status": "critical",
                "active": True,
                "updatedOn": 1764140000 + i,
                "environments": ["5f0c1e2d3b4a596877665544"],
                "incident_tags": [{"tag_id": "priority", "tag_value": "P1"}],
                "alerts": [
                    {
                        "status": "critical",
                        "description": "CPU load above 95% for 10 minutes",
                        "condition_name": "cpu_load",
                        "primary_property": "host",
                        "secondary_property": "check",
                        "source_system": "nagios.prod",
                        "host": f"db-{s}-{i}",
                        "check": "cpu_load",
                        "service": "payments",
                    }
                ],
            }
            batch.append(request_bytes("/v1/bigpanda/webhook", json.dumps(body).encode(), headers))
        batches.append(batch)
    return batches


def pagerduty_batches(
    senders: int, per_sender: int, secret: str, incident_ids: list[str]
) -> list[list[bytes]]:
    batches = []
    k = 0
    for s in range(senders):
        batch = []
        for i in range(per_sender):
            inc = incident_ids[k % len(incident_ids)]
            k += 1
            body = json.dumps(
                {
                    "event": {
                        "id": f"ev-{s}-{i}",
                        "event_type": "incident.resolved",
                        "resource_type": "incident",
                        "agent": {"summary": "Bench", "type": "user_reference"},
                        "data": {"id": f"P{s:03d}{i:04d}", "type": "incident", "incident_key": inc},
                    }
                }
            ).encode()
            headers = {
                "Content-Type": "application/json",
                "X-PagerDuty-Signature": sign(secret, body),
                "X-Webhook-Id": f"wh-{s}-{i}",
            }
            batch.append(request_bytes("/v1/pagerduty/webhook", body, headers))
        batches.append(batch)
    return batches


def metric(url: str, name: str) -> float:
    total = 0.0
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def buckets(url: str, name: str) -> dict[tuple[str, float], float]:
    """Cumulative bucket counts of a histogram, by (label set, upper bound)."""
    out: dict[tuple[str, float], float] = {}
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if not line.startswith(name + "_bucket{"):
            continue
        labels, value = line[len(name) + 8 :].rsplit(" ", 1)
        le = labels.split('le="')[1].split('"')[0]
        rest = ",".join(x for x in labels.rstrip("}").split(",") if not x.startswith("le="))
        out[(rest, float(le))] = float(value)
    return out


def quantiles(
    before: dict[tuple[str, float], float], after: dict[tuple[str, float], float]
) -> dict[str, str]:
    """Per label set: the bucket holding p50 and p99 of the observations in between."""
    series: dict[str, list[tuple[float, float]]] = {}
    for (labels, le), value in after.items():
        series.setdefault(labels, []).append((le, value - before.get((labels, le), 0.0)))
    out = {}
    for labels, points in series.items():
        points.sort()
        total = points[-1][1]
        if not total:
            continue

        def bound(q: float, points: list[tuple[float, float]] = points, n: float = total) -> str:
            le = next(le for le, c in points if c >= q * n)
            return "inf" if le == float("inf") else f"<={le * 1000:g}"

        out[labels or "all"] = f"p50 {bound(0.5)} ms, p99 {bound(0.99)} ms, n={total:.0f}"
    return out


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def wait_drained(url: str, timeout: float) -> float | None:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if metric(url, "pagerbridge_relay_outbox_pending") == 0:
            return time.perf_counter() - started
        time.sleep(0.1)
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a server process (steadier than wall clock on a busy box)."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread name (the event loop is the process's own name)."""
    out: dict[str, float] = {}
    for t in psutil.Process(pid).threads():
        try:
            name = Path(f"/proc/{pid}/task/{t.id}/comm").read_text().strip()
        except OSError:
            continue
        name = "event loop" if t.id == pid else name
        out[name] = out.get(name, 0.0) + t.user_time + t.system_time
    return out


OPERATIONS = "pagerbridge_relay_outbox_operations_total"


def outbox_totals(url: str) -> dict[str, float]:
    """The SQLite outbox's committed transactions (``transactions``) and the operations run
    in them so far, by outbox method (every read and write of the relay's store is one)."""
    totals: dict[str, float] = {}
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == "pagerbridge_relay_outbox_commit_seconds_count":
            totals["transactions"] = float(value)
        elif name.startswith(OPERATIONS + "{"):
            totals[name.split('"')[1]] = float(value)
    return totals


def fmt(name: str, r: dict[str, Any]) -> str:
    cpu = f"   CPU {r['cpu_ms']:.2f} ms/req" if "cpu_ms" in r else ""
    if "outbox_per_req" in r:
        per = dict(r["outbox_per_req"])
        tx = per.pop("transactions", 0.0)
        ops = ", ".join(f"{k} {v:.2f}" for k, v in sorted(per.items(), key=lambda kv: -kv[1]))
        cpu += f"\n    outbox per req: {tx:.2f} transactions, {sum(per.values()):.2f} operations"
        cpu += f" ({ops})"
    if r.get("threads_ms"):
        cpu += " (" + ", ".join(f"{k} {v:.2f}" for k, v in r["threads_ms"].items() if v) + ")"
    return (
        f"  {name:<22} {r['rps']:8.0f} req/s   p50 {r['p50_ms']:7.2f} ms   "
        f"p99 {r['p99_ms']:7.2f} ms{cpu}   statuses {r['statuses']}"
    )


PROFILE_DIR: Path | None = None  # --profile: py-spy records each relay measurement here


class profiled:
    """``py-spy record`` attached to ``pid`` while the block runs (with ``--profile``): raw
    collapsed stacks in ``PROFILE_DIR/<name>.txt``, summarized by flame_summary.py."""

    def __init__(self, pid: int, name: str) -> None:
        self.pid, self.name = pid, name
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> None:
        if PROFILE_DIR is None:
            return
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        out = PROFILE_DIR / f"{self.name}.txt"
        self.proc = subprocess.Popen(
            [spy, "record", "--pid", str(self.pid), "--format", "raw", "--nonblocking",
             "--rate", "200", "-o", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1.0)  # attached before the measurement starts

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(30)
        from flame_summary import summarize

        assert PROFILE_DIR is not None
        path = PROFILE_DIR / f"{self.name}.txt"
        if path.exists():
            (PROFILE_DIR / f"{self.name}.summary.txt").write_text(summarize(path, 20))


def measured(
    pid: int, run: Any, *, drain_url: str | None = None, profile: str | None = None
) -> dict[str, Any]:
    """``run()`` plus the server's CPU per request; with ``drain_url`` the CPU spent until
    the relay's outbox is empty is included (accept + delivery)."""
    with profiled(pid, profile) if profile else contextlib.nullcontext():
        stored = outbox_totals(drain_url) if drain_url is not None else None
        before, threads = cpu_seconds(pid), thread_cpu(pid)
        result: dict[str, Any] = run()
        if drain_url is not None:
            wait_drained(drain_url, 300)
        result["cpu_ms"] = (cpu_seconds(pid) - before) / result["requests"] * 1000
        if drain_url is not None and stored is not None:
            after = outbox_totals(drain_url)
            result["outbox_per_req"] = {
                name: (value - stored.get(name, 0.0)) / result["requests"]
                for name, value in after.items()
                if value != stored.get(name, 0.0)
            }
        result["threads_ms"] = {
            name: (spent - threads.get(name, 0.0)) / result["requests"] * 1000
            for name, spent in thread_cpu(pid).items()
        }
    return result


# -- the runs ---------------------------------------------------------------------------
class Bench:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []
        self.relays: list[RelayProcess] = []

    def server(self, args: list[str], cpu: int, name: str) -> str:
        port = free_port()
        self.procs.append(
            spawn(
                [*args[:1], *([str(port)] if args[0] != "--serve-sim" else []), *args[1:]],
                cpu,
                self.tmp / f"{name}.log",
            )
        )
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        for relay in self.relays:
            relay.kill()
        for proc in self.procs:
            proc.kill()
            proc.wait()


RELAY_ARGS = [
    "--events-rate-limit",
    "100000000",
    "--bigpanda-rate-limit",
    "100000",
    "--log-level",
    "warning",
]


def start_relay(b: Bench, name: str, **config: Any) -> RelayProcess:
    sub = b.tmp / name
    sub.mkdir()
    path = write_config(sub, **config)
    relay = RelayProcess(path, sub / "relay.log", RELAY_ARGS, cpu=SERVER_CPU)
    b.relays.append(relay)
    return relay.start()


def start_baseline(b: Bench, upstream: str, auth: str = "") -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = spawn(["--serve-baseline", str(port), upstream, auth], SERVER_CPU, b.tmp / "base.log")
    b.procs.append(proc)
    wait_http(f"http://127.0.0.1:{port}/")
    return proc, port


def run_bench(senders: int, per_sender: int, rate: float, tmp: Path) -> None:
    from pagerbridge_devkit.sandbox.bigpanda import DEFAULT_API_TOKEN as BP_TOKEN
    from pagerbridge_devkit.sandbox.bigpanda import DEFAULT_ENVIRONMENT_ID
    from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_API_TOKEN as PD_TOKEN
    from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_ROUTING_KEY

    b = Bench(tmp)
    summary: list[str] = []
    total = senders * per_sender
    secret = "bench-webhook-secret-0123456789"
    try:
        sink_port, pd_port, bp_port = free_port(), free_port(), free_port()
        b.procs.append(spawn(["--serve-sink", str(sink_port)], OTHER_CPU, tmp / "sink.log"))
        b.procs.append(spawn(["--serve-sim", "pd", str(pd_port)], OTHER_CPU, tmp / "pd.log"))
        b.procs.append(spawn(["--serve-sim", "bp", str(bp_port)], OTHER_CPU, tmp / "bp.log"))
        sink = f"http://127.0.0.1:{sink_port}"
        pd_url, bp_url = f"http://127.0.0.1:{pd_port}", f"http://127.0.0.1:{bp_port}"
        wait_http(sink)
        wait_http(pd_url + "/_sandbox/incidents")
        wait_http(bp_url + "/_sandbox/incidents")
        print(f"# {senders} concurrent senders x {per_sender} = {total} webhooks per measurement")
        print(f"# load average at the start: {loadavg()}")
        print(
            f"# relay/baseline pinned to CPU {SERVER_CPU}; load generator, simulators and the "
            f"bare upstream on CPU {OTHER_CPU}"
        )

        # A. BigPanda -> PagerDuty, upstream = bare sink: the servers' own cost.
        print("\nA. BigPanda webhooks, upstream = bare 202 sink (isolates the server's own work)")
        proc, port = start_baseline(b, sink + "/v2/enqueue")
        drive(port, bigpanda_batches(20, 10, "warm-b"))
        base = measured(
            proc.pid, lambda: drive(port, bigpanda_batches(senders, per_sender, "base"))
        )
        base_open = measured(
            proc.pid,
            lambda: drive(port, bigpanda_batches(senders, max(1, per_sender // 2), "base-o"), rate),
        )
        proc.kill()
        proc.wait()
        relay = start_relay(b, "a", pd_url=sink, routing_key=DEFAULT_ROUTING_KEY)
        drive(relay.port, bigpanda_batches(20, 10, "warm-r"))
        wait_drained(relay.internal_url, 60)
        assert relay.proc is not None
        pid = relay.proc.pid
        closed = measured(
            pid,
            lambda: drive(relay.port, bigpanda_batches(senders, per_sender, "relay")),
            drain_url=relay.internal_url,
            profile="relay-closed",
        )
        stages_before = buckets(relay.internal_url, "pagerbridge_relay_accept_stage_seconds")
        commits_before = buckets(relay.internal_url, "pagerbridge_relay_outbox_commit_seconds")
        open_load = loadavg()
        opened = measured(
            pid,
            lambda: drive(
                relay.port, bigpanda_batches(senders, max(1, per_sender // 2), "relay-o"), rate
            ),
            drain_url=relay.internal_url,
            profile="relay-open",
        )
        stages = quantiles(
            stages_before, buckets(relay.internal_url, "pagerbridge_relay_accept_stage_seconds")
        )
        commits = quantiles(
            commits_before, buckets(relay.internal_url, "pagerbridge_relay_outbox_commit_seconds")
        )
        relay.kill()
        print("  (relay CPU includes delivering every accepted event to the sink)")
        print(fmt("baseline, closed loop", base))
        print(fmt("relay, closed loop", closed))
        print(
            f"  throughput ratio relay/baseline: {closed['rps'] / base['rps']:.2f}x "
            "(target >= 0.5x)"
        )
        print(f"  open loop at {rate:.0f} req/s offered, {senders} senders:")
        print(fmt("baseline, open loop", base_open))
        print(fmt("relay, open loop", opened))
        print("  accept stages in the relay, open loop (histogram buckets):")
        for label, text in sorted(stages.items()):
            print(f"    {label:<20} {text}")
        for text in commits.values():
            print(f"    {'outbox transaction':<20} {text}")
        summary.append(
            f"SUMMARY relay open loop {rate:.0f} req/s: CPU {opened['cpu_ms']:.2f} ms/event "
            f"(baseline {base_open['cpu_ms']:.2f}, "
            f"ratio {opened['cpu_ms'] / base_open['cpu_ms']:.2f}x)"
            f"; accept p50 {opened['p50_ms']:.2f} / p99 {opened['p99_ms']:.2f} / max "
            f"{opened['max_ms']:.1f} ms (baseline p99 {base_open['p99_ms']:.2f} ms, ratio "
            f"{opened['p99_ms'] / base_open['p99_ms']:.2f}x); load average {open_load}"
        )
        summary.append(
            f"SUMMARY relay closed loop: CPU {closed['cpu_ms']:.2f} ms/event (baseline "
            f"{base['cpu_ms']:.2f}, ratio {closed['cpu_ms'] / base['cpu_ms']:.2f}x); "
            f"{closed['rps']:.0f} req/s ({closed['rps'] / base['rps']:.2f}x baseline)"
        )

        # B. BigPanda -> PagerDuty sandbox, end to end.
        print("\nB. BigPanda -> relay -> PagerDuty sandbox (Events v2), end to end")
        relay = start_relay(
            b,
            "b",
            pd_url=pd_url,
            bp_url=bp_url,
            routing_key=DEFAULT_ROUTING_KEY,
            pd_api_token=PD_TOKEN,
            bp_api_token=BP_TOKEN,
            bp_environment=DEFAULT_ENVIRONMENT_ID,
            webhook_secrets=[secret],
        )
        assert relay.proc is not None
        with profiled(relay.proc.pid, "relay-e2e") if PROFILE_DIR else contextlib.nullcontext():
            cpu_before = cpu_seconds(relay.proc.pid)
            started = time.perf_counter()
            result = drive(relay.port, bigpanda_batches(senders, per_sender, "e2e"))
            drained = wait_drained(relay.internal_url, 900)
            e2e = time.perf_counter() - started
            result["cpu_ms"] = (cpu_seconds(relay.proc.pid) - cpu_before) / total * 1000
        e2e_sum = metric(relay.internal_url, "pagerbridge_relay_end_to_end_seconds_sum")
        e2e_count = metric(relay.internal_url, "pagerbridge_relay_end_to_end_seconds_count")
        incidents = len(httpx.get(pd_url + "/_sandbox/incidents", timeout=60).json())
        print(fmt("relay, closed loop", result))
        summary.append(
            f"SUMMARY end to end to the PagerDuty simulator: CPU {result['cpu_ms']:.2f} "
            f"ms/event, {total / e2e:.0f} events/s"
        )
        print(
            f"  all {total} delivered {e2e:.1f} s after the first send (drain after the last "
            f"202: {drained if drained is None else round(drained, 1)} s; "
            f"{total / e2e:.0f} events/s end to end); mean accept->delivered "
            f"{e2e_sum / max(e2e_count, 1):.1f} s; PagerDuty incidents: {incidents}"
        )

        # C. PagerDuty -> BigPanda.
        print(
            "\nC. PagerDuty Webhooks v3 -> relay -> BigPanda sandbox (HMAC verified, deduped, "
            "durable)"
        )
        ids = []
        for _ in range(100):
            r = httpx.post(
                bp_url + "/_sandbox/incidents",
                json={"alerts": [{"host": "h", "status": "critical"}]},
                timeout=10,
            )
            ids.append(r.json()["id"])
        started = time.perf_counter()
        verified = drive(relay.port, pagerduty_batches(senders, per_sender, secret, ids))
        drained = wait_drained(relay.internal_url, 900)
        e2e = time.perf_counter() - started
        relay.kill()
        proc, port = start_baseline(b, sink + "/comments")
        base_pd = drive(port, pagerduty_batches(senders, per_sender, secret, ids))
        proc.kill()
        proc.wait()
        print(fmt("baseline, closed loop", base_pd))
        print(fmt("relay, closed loop", verified))
        print(
            f"  verified webhooks/s ratio relay/baseline: {verified['rps'] / base_pd['rps']:.2f}x;"
            f" all processed {e2e:.1f} s after the first send"
        )
        print()
        print("\n".join(summary))
        print(f"# load average at the end: {loadavg()}")
    finally:
        b.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--senders", type=int, default=200)
    parser.add_argument("--per-sender", type=int, default=25)
    parser.add_argument("--serve-sim", nargs=2, metavar=("KIND", "PORT"))
    parser.add_argument("--serve-baseline", nargs=3, metavar=("PORT", "UPSTREAM", "AUTH"))
    parser.add_argument("--serve-sink", metavar="PORT")
    parser.add_argument("--rate", type=float, default=300.0, help="open-loop offered load")
    parser.add_argument(
        "--profile", type=Path, help="py-spy the relay's measurements into this directory"
    )
    args = parser.parse_args()
    if args.profile:
        global PROFILE_DIR
        PROFILE_DIR = args.profile
        PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    if args.serve_sim:
        serve_sim(args.serve_sim[0], int(args.serve_sim[1]))
        return 0
    if args.serve_sink:
        serve_sink(int(args.serve_sink))
        return 0
    if args.serve_baseline:
        port, upstream, auth = args.serve_baseline
        serve_baseline(int(port), upstream, auth)
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="relay-bench-"))
    try:
        run_bench(args.senders, args.per_sender, args.rate, tmp)
    finally:
        if not os.environ.get("KEEP_BENCH_DIR"):
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
