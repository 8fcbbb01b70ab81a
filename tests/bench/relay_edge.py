"""The relay at the internet's edge (issue 25): what each attack costs the real relay
process, and how fast a legitimate BigPanda webhook is accepted meanwhile.

For every attack a fresh relay (default settings, PagerDuty webhooks on, a PagerDuty
simulator behind it) is started; the attack runs for ``--duration`` seconds while a
legitimate BigPanda sender on 127.0.0.1 posts one webhook every 50 ms, each on a new
connection (so the connection, too, must be admitted under attack). Printed per attack:
the relay's peak RSS (``VmHWM``: the kernel's high-water mark, nothing between samples is
missed), the accepted share and accept latency (p50/p99) of the legitimate webhooks, and
what the attacker got back. The bar: peak RSS <= 128 MiB (half the pod's default limit),
legitimate p99 <= 1 s.

    python tests/bench/relay_edge.py [--duration 10] [--only NAME ...] [--relay-arg=--flag ...]

Adding a row: write ``def my_attack(bench: Bench) -> Row`` (start the relay with
``bench.relay()``, run the attack inside ``bench.measure(relay)``) and list it in
``ATTACKS``. ``PYTHONPATH=<other checkout>/operator`` measures another version of the relay
(the attacking clients stay these); ``RELAY_PYTHONPATH`` does the same for the relay only
(the simulators then stay these too: needed when they import what an older relay lacks).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "unit"))

from relay import edgeattacks as attack  # noqa: E402
from relay.relayproc import PD_WEBHOOK_SECRET, RelayProcess, write_config  # noqa: E402
from relay.support import incident  # noqa: E402

from pagerbridge_devkit.sandbox.hostile import EventsAttack, HostileEventsApi  # noqa: E402
from pagerbridge_devkit.sandbox.pagerduty import (  # noqa: E402
    DEFAULT_ROUTING_KEY,
    PagerDutySimulator,
)
from pagerbridge_devkit.sandbox.server import BackgroundServer  # noqa: E402
from pagerbridge_devkit.waiting import wait_for  # noqa: E402

RSS_LIMIT = 128 * attack.MiB
P99_LIMIT = 1.0


@dataclass
class Row:
    attack: str
    peak_rss: int
    idle_rss: int
    legit: attack.Legit
    attacker_got: str
    cpu: float = float("nan")  # relay CPU seconds per second of attack

    @property
    def accepted(self) -> str:
        sent = sum(self.legit.statuses.values())
        return f"{self.legit.statuses[202]}/{sent}"


@dataclass
class Bench:
    duration: float
    relay_args: list[str]
    tmp: Path
    pd_url: str
    env: dict[str, str] | None = None
    cpu: dict[int, float] = field(default_factory=dict)
    _started: list[RelayProcess] = field(default_factory=list)

    def relay(
        self,
        name: str,
        args: list[str] | None = None,
        pd_url: str | None = None,
        extra: dict[str, object] | None = None,
    ) -> RelayProcess:
        sub = self.tmp / name
        sub.mkdir()
        config = write_config(
            sub,
            pd_url=pd_url or self.pd_url,
            routing_key=DEFAULT_ROUTING_KEY,
            webhook_secrets=[PD_WEBHOOK_SECRET],
            extra=extra,
        )
        relay = RelayProcess(config, sub / "relay.log", [*self.relay_args, *(args or [])])
        relay.env = self.env
        self._started.append(relay)
        return relay.start()

    @contextlib.contextmanager
    def measure(self, relay: RelayProcess) -> Iterator[attack.Legit]:
        """The legitimate sender runs for the duration of the block; the relay's CPU use
        meanwhile is noted for the row."""
        assert relay.proc is not None
        legit = attack.Legit(relay.url)
        proc = psutil.Process(relay.proc.pid)
        with legit.running():
            cpu, wall = sum(proc.cpu_times()[:2]), time.monotonic()
            yield legit
            with contextlib.suppress(psutil.Error):
                self.cpu[relay.port] = (sum(proc.cpu_times()[:2]) - cpu) / (time.monotonic() - wall)

    def close(self) -> None:
        for relay in self._started:
            relay.kill()


def _row(
    bench: Bench, name: str, relay: RelayProcess, idle: int, legit: attack.Legit, got: str
) -> Row:
    assert relay.proc is not None
    cpu = bench.cpu.get(relay.port, float("nan"))
    if relay.proc.poll() is not None:
        got += f" (relay exited {relay.proc.returncode})"
        return Row(name, -1, idle, legit, got, cpu)
    return Row(name, attack.peak_rss(relay.proc.pid), idle, legit, got, cpu)


def no_attack(bench: Bench) -> Row:
    """Reference: the legitimate sender alone."""
    relay = bench.relay("none")
    assert relay.proc is not None
    idle = attack.peak_rss(relay.proc.pid)
    with bench.measure(relay) as legit:
        asyncio.run(asyncio.sleep(bench.duration))
    return _row(bench, "no attack (reference)", relay, idle, legit, "-")


def header_64mib(bench: Bench) -> Row:
    """One connection at a time sends a single 64 MiB header, again and again."""
    relay = bench.relay("header")
    assert relay.proc is not None
    idle = attack.peak_rss(relay.proc.pid)
    statuses: list[str] = []

    async def repeat() -> None:
        stop = asyncio.get_running_loop().time() + bench.duration
        while asyncio.get_running_loop().time() < stop and relay.proc.poll() is None:  # type: ignore[union-attr]
            try:
                raw = await attack.huge_header(relay.port)
            except OSError as exc:
                statuses.append(type(exc).__name__)
                continue
            statuses.append(str(attack.status_of(raw) or "closed"))

    with bench.measure(relay) as legit:
        asyncio.run(repeat())
    counts = {s: statuses.count(s) for s in sorted(set(statuses))}
    got = " ".join(f"{k}:{v}" for k, v in counts.items())
    return _row(bench, "1 conn, one 64 MiB header (repeated)", relay, idle, legit, got)


def _stalled(bench: Bench, name: str, title: str, sources: int) -> Row:
    relay = bench.relay(name)
    assert relay.proc is not None
    idle = attack.peak_rss(relay.proc.pid)
    with bench.measure(relay) as legit:
        outcomes = asyncio.run(
            attack.stalled_bodies(relay.port, 400, sources=sources, duration=bench.duration)
        )
    return _row(bench, title, relay, idle, legit, f"{outcomes} ({outcomes.connections} conns)")


def stalled_pd_bodies(bench: Bench) -> Row:
    """400 connections from 100 addresses, each ~511 KB of a PagerDuty body, then stall;
    whoever is answered or cut off comes back 0.5 s later."""
    return _stalled(bench, "stalled100", "400 conns x 511 KB PD body, 100 sources", 100)


def stalled_pd_bodies_one_source(bench: Bench) -> Row:
    """The same from one address (the measurement of the issue)."""
    return _stalled(bench, "stalled1", "400 conns x 511 KB PD body, 1 source", 1)


# -- the upstream side: hostile answers to the relay's own calls (issue 25, item 2) -----
# The 64 attacked events go out at once: the routing key's rate limit (2 per second) is
# lifted for these rows, so what is measured is the delivery slots and the call bounds.
UNPACED = ["--events-rate-limit", "1e6"]
HOSTILE_KEY = "h" * 32


def hostile_ids(n: int) -> Callable[[dict[str, Any]], bool]:
    """The first ``n`` incidents' events (by dedup key)."""
    ids = {incident(i)["id"] for i in range(1, n + 1)}
    return lambda event: event.get("dedup_key") in ids


def _bp_incident(n: int, key: str | None = None) -> dict[str, Any]:
    body = incident(n)
    if key is not None:
        body["alerts"][0]["pd_key"] = key
    return body


def _upstream_attack(
    bench: Bench,
    name: str,
    title: str,
    app: HostileEventsApi,
    hostile_key: str | None,
) -> Row:
    """64 incidents the hostile Events API attacks, then an unrelated one (default key):
    how long the unrelated one takes to be delivered, and what became of the 64."""
    with BackgroundServer(app) as upstream:
        relay = bench.relay(name, UNPACED, upstream.url, {"keyOverrideTag": "pd_key"})
        assert relay.proc is not None
        idle = attack.peak_rss(relay.proc.pid)
        with bench.measure(relay) as legit:
            for n in range(1, 65):
                relay.post_bigpanda(_bp_incident(n, hostile_key))
            wait_for(lambda: app.in_attack > 0 or app.attacked, timeout=30, what="attack on")
            started = time.monotonic()
            unrelated = str(_bp_incident(65)["id"])
            relay.post_bigpanda(_bp_incident(65))
            try:
                wait_for(lambda: unrelated in app.accepted, timeout=60, what="unrelated")
                took = f"unrelated incident delivered in {time.monotonic() - started:.2f} s"
            except AssertionError:
                took = "unrelated incident NOT delivered within 60 s"
            rest = max(0.0, bench.duration - (time.monotonic() - started))
            time.sleep(rest)
        got = f"{took}; {len(app.attacked)} attacked, {app.in_attack} still held, {app.cut} cut"
        return _row(bench, title, relay, idle, legit, got)


def dripping_answers(bench: Bench) -> Row:
    """64 events answered 202, then one byte every 5 s (the issue's row); the unrelated
    incident goes to the same routing key and the same upstream."""
    app = HostileEventsApi(EventsAttack.DRIP, hostile_ids(64))
    return _upstream_attack(bench, "drip", "64 upstream answers: 202, then 1 byte / 5 s", app, None)


def hanging_key(bench: Bench) -> Row:
    """64 events of one routing key whose calls get no answer at all; the unrelated
    incident goes to the default key (same upstream)."""
    app = HostileEventsApi(EventsAttack.HANG, lambda event: event.get("routing_key") == HOSTILE_KEY)
    title = "64 calls of one routing key never answered"
    return _upstream_attack(bench, "hang", title, app, HOSTILE_KEY)


def gzip_bombs(bench: Bench) -> Row:
    """64 events answered 202 with a gzip bomb (510 KB inflating to 512 MiB) at once."""
    app = HostileEventsApi(EventsAttack.GZIP_BOMB, hostile_ids(64))
    title = "64 upstream answers: 202 + gzip bomb (512 MiB)"
    return _upstream_attack(bench, "bomb", title, app, None)


ATTACKS: dict[str, Callable[[Bench], Row]] = {
    "none": no_attack,
    "header": header_64mib,
    "stalled": stalled_pd_bodies,
    "stalled-one-source": stalled_pd_bodies_one_source,
    "upstream-drip": dripping_answers,
    "upstream-hang": hanging_key,
    "upstream-gzip-bomb": gzip_bombs,
}


def print_table(rows: list[Row]) -> None:
    print()
    print(
        "| Attack | Relay peak RSS (idle) | Legit BigPanda accepted | p50 | p99 | "
        "Relay CPU | The attacker got |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        peak = "exited" if row.peak_rss < 0 else f"{row.peak_rss / attack.MiB:.0f} MiB"
        p50, p99 = row.legit.percentile(0.5), row.legit.percentile(0.99)
        verdict = "ok" if 0 <= row.peak_rss <= RSS_LIMIT and p99 <= P99_LIMIT else "OVER"
        print(
            f"| {row.attack} | {peak} ({row.idle_rss / attack.MiB:.0f}) | {row.accepted} | "
            f"{p50 * 1000:.0f} ms | {p99 * 1000:.0f} ms | {row.cpu:.0%} | {row.attacker_got} | "
            f"{verdict}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--only", nargs="*", choices=sorted(ATTACKS), default=None)
    parser.add_argument(
        "--relay-arg", action="append", default=[], help="extra flag for every relay"
    )
    args = parser.parse_args()
    names = args.only or list(ATTACKS)
    path = os.environ.get("RELAY_PYTHONPATH") or os.environ.get("PYTHONPATH")
    env = {"PYTHONPATH": path} if path else None
    relay_args = [part for arg in args.relay_arg for part in shlex.split(arg)]
    sim = PagerDutySimulator()
    rows: list[Row] = []
    with sim, BackgroundServer(sim.app) as server, tempfile.TemporaryDirectory() as tmp:
        bench = Bench(args.duration, relay_args, Path(tmp), server.url, env)
        try:
            for name in names:
                row = ATTACKS[name](bench)
                print(
                    f"# {row.attack}: peak RSS {row.peak_rss / attack.MiB:.1f} MiB, "
                    f"legit {row.accepted}, p99 {row.legit.percentile(0.99) * 1000:.0f} ms",
                    flush=True,
                )
                rows.append(row)
                bench.close()
        finally:
            bench.close()
    print_table(rows)


if __name__ == "__main__":
    main()
