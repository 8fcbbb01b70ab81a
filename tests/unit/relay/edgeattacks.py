"""Hostile clients of the relay's public port, for the edge tests and ``tests/bench/relay_edge.py``.

Each attack is a real client over real loopback sockets (the whole 127/8 is loopback on
Linux, so an attacker can come from 127.0.0.2, 127.0.0.3, ... while the legitimate BigPanda
sender stays on 127.0.0.1: the relay's per-source fairness sees different addresses, as it
would on the internet). Peak memory is the relay process's own high-water mark
(``VmHWM``), read next to a psutil sampler of its RSS.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from pagerbridge.relay.incidents.limits import MAX_BODY

from .relayproc import WEBHOOK_TOKEN
from .support import incident

MiB = 1024 * 1024
PD_PATH = "/v1/pagerduty/webhook"
BP_PATH = "/v1/bigpanda/webhook"


def peak_rss(pid: int) -> int:
    """The process's peak resident set since it started (bytes), from ``VmHWM``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


@dataclass
class RssSampler:
    """psutil RSS of ``pid`` every ``interval`` seconds while in the ``with`` block."""

    pid: int
    interval: float = 0.02
    peak: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> RssSampler:
        self._proc = psutil.Process(self.pid)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, self._proc.memory_info().rss)
            self._stop.wait(self.interval)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def status_of(response: bytes) -> int | None:
    """The status code of a raw HTTP/1.1 response's first line, if any arrived."""
    if not response.startswith(b"HTTP/1."):
        return None
    try:
        return int(response.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


async def _read_answer(reader: asyncio.StreamReader, patience: float) -> bytes:
    try:
        return await asyncio.wait_for(reader.read(4096), patience)
    except (TimeoutError, ConnectionError):
        return b""


async def huge_header(
    port: int, size: int = 64 * MiB, source: str = "127.0.0.2", chunk: int = 256 * 1024
) -> bytes:
    """One connection sending one header line of ``size`` bytes (never ending it before
    all is sent); the raw answer (empty if the connection just died)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    answer = asyncio.create_task(_read_answer(reader, 120))
    try:
        writer.write(
            f"POST {PD_PATH} HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\n".encode()
            + b"X-Padding: "
        )
        piece = b"a" * chunk
        sent = 0
        while sent < size and not answer.done():
            writer.write(piece)
            sent += chunk
            await writer.drain()
        if not answer.done():
            writer.write(b"\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()
    except ConnectionError:
        pass
    data = await answer
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    return data


def split_answer(raw: bytes) -> tuple[int | None, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of a raw HTTP/1.1 answer."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status_of(raw), headers, body


def pd_body(size: int) -> bytes:
    """A PagerDuty Webhooks v3 body of about ``size`` bytes (a long note)."""
    event = {
        "event": {
            "id": "01ATTACK",
            "event_type": "incident.annotated",
            "occurred_at": "2026-01-01T00:00:00Z",
            "data": {"incident": {"id": "PABCDEF"}, "id": "PNOTE01", "content": ""},
        }
    }
    empty = len(json.dumps(event).encode())
    event["event"]["data"]["content"] = "x" * max(0, size - empty)  # type: ignore[index]
    return json.dumps(event).encode()


@dataclass
class Outcomes:
    """What the attacking connections got: answers by status, and the other endings."""

    statuses: Counter[str] = field(default_factory=Counter)
    connections: int = 0

    def __str__(self) -> str:
        return " ".join(f"{k}:{v}" for k, v in sorted(self.statuses.items()))


async def stalled_bodies(
    port: int,
    connections: int = 400,
    sent: int = MAX_BODY - 1024,
    declared: int = MAX_BODY,
    sources: int = 100,
    duration: float = 10.0,
    reconnect_after: float = 0.5,
    outcomes: Outcomes | None = None,
) -> Outcomes:
    """``connections`` connections, spread over ``sources`` addresses (127.0.0.2 on), each
    sending PagerDuty webhook headers (a forged signature), ``sent`` bytes of a body that
    declares ``declared``, then nothing. Whoever the relay answers or closes comes back
    after ``reconnect_after`` seconds, until ``duration`` is over."""
    outcomes = outcomes or Outcomes()
    body = pd_body(declared)[:sent]
    head = (
        f"POST {PD_PATH} HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\n"
        f"X-PagerDuty-Signature: v1={'0' * 64}\r\nContent-Length: {declared}\r\n\r\n"
    ).encode()
    stop = time.monotonic() + duration

    async def one(i: int) -> None:
        source = f"127.0.{2 + (i % sources) // 250}.{2 + (i % sources) % 250}"
        while time.monotonic() < stop:
            outcomes.connections += 1
            try:
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", port, local_addr=(source, 0)
                )
            except OSError:
                outcomes.statuses["connect_failed"] += 1
                await asyncio.sleep(reconnect_after)
                continue
            try:
                writer.write(head + body)
                answer = await _read_answer(reader, max(0.0, stop - time.monotonic()))
            except ConnectionError:
                answer = b""
            status = status_of(answer)
            if status is not None:
                outcomes.statuses[str(status)] += 1
            elif time.monotonic() < stop:
                outcomes.statuses["closed"] += 1
            else:
                outcomes.statuses["held"] += 1
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            if time.monotonic() < stop:
                await asyncio.sleep(reconnect_after)

    await asyncio.gather(*(one(i) for i in range(connections)))
    return outcomes


def bigpanda_incident(n: int) -> bytes:
    return json.dumps(incident(800_000 + n)).encode()


def _legit_sender(url: str, interval: float, ready: Any, stop: Any, results: Any) -> None:
    """The legitimate sender's loop, in its own process (see :class:`Legit`)."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    n = 0
    limits = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(timeout=30, limits=limits) as client:
        while not stop.is_set():
            n += 1
            started = time.perf_counter()
            try:
                response = client.post(
                    url + BP_PATH,
                    content=bigpanda_incident(n),
                    headers={
                        "Authorization": f"Bearer {WEBHOOK_TOKEN}",
                        "Content-Type": "application/json",
                    },
                )
                if not ready.is_set():  # the first webhook only says the sender is up
                    ready.set()
                    continue
                statuses[response.status_code] += 1
                if response.status_code == 202:
                    latencies.append(time.perf_counter() - started)
            except httpx.TransportError:
                statuses[0] += 1
            stop.wait(interval)
    results.put((latencies, dict(statuses)))


@dataclass
class Legit:
    """A legitimate BigPanda sender on 127.0.0.1, a new connection per webhook. It runs in
    its own process, so the attacking clients' work does not delay it (nor its clock)."""

    url: str
    interval: float = 0.05
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)

    @contextlib.contextmanager
    def running(self) -> Iterator[Legit]:
        ctx = multiprocessing.get_context("spawn")
        ready, stop, results = ctx.Event(), ctx.Event(), ctx.Queue()
        proc = ctx.Process(
            target=_legit_sender,
            args=(self.url, self.interval, ready, stop, results),
            daemon=True,
        )
        proc.start()
        if not ready.wait(60):
            proc.kill()
            raise RuntimeError("the legitimate sender did not get its first webhook through")
        try:
            yield self
        finally:
            stop.set()
            latencies, statuses = results.get(timeout=60)
            proc.join(10)
            self.latencies += latencies
            self.statuses.update(statuses)

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
