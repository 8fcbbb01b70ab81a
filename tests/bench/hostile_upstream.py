"""What a hostile upstream costs one operator call, with the default CallLimits.

Against the dev kit's HostileUpstream on 127.0.0.1 (allowlisted), measures for the
PagerDuty subscription listing: peak Python heap (tracemalloc) and wall time of an
endless ``more: true`` listing and of an endless body, and the wall time until a server
dribbling one byte every 0.2 s is cut off. Issue 18 measured the unbounded listing at
73 MB -> 590 MB RSS in 20 s, and the dribble as holding a worker forever.

    python tests/bench/hostile_upstream.py [--deadline 30]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import tracemalloc

from pagerbridge.clients._http import CallLimits
from pagerbridge.clients.egress import EgressPolicy
from pagerbridge.clients.errors import ClientError
from pagerbridge.clients.pagerduty_subscriptions import PagerDutySubscriptions
from pagerbridge_devkit.sandbox.hostile import HostileUpstream, Mode
from pagerbridge_devkit.sandbox.server import BackgroundServer


async def one(url: str, policy: EgressPolicy, limits: CallLimits, dribble: bool) -> str:
    async with PagerDutySubscriptions(url, "token", policy=policy, limits=limits) as client:
        try:
            await (client.get("PX") if dribble else client.list())
        except ClientError as exc:
            return type(exc).__name__
    return "ok"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deadline", type=float, default=CallLimits().deadline)
    args = parser.parse_args()
    limits = CallLimits(deadline=args.deadline)
    for mode in (Mode.ENDLESS, Mode.HUGE, Mode.DRIBBLE):
        app = HostileUpstream(mode)
        with BackgroundServer(app) as server:
            port = server.url.rsplit(":", 1)[1]
            policy = EgressPolicy.parse([f"127.0.0.1:{port}"], allow_http=True)
            tracemalloc.start()
            started = time.monotonic()
            outcome = asyncio.run(one(server.url, policy, limits, mode is Mode.DRIBBLE))
            elapsed = time.monotonic() - started
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            print(
                f"{mode.value:9} -> {outcome:18} requests={len(app.seen):3} "
                f"peak_heap={peak / 1e6:6.1f} MB  wall={elapsed:5.1f} s"
            )


if __name__ == "__main__":
    main()
