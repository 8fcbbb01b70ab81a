"""``pagerbridge sandbox``: run the PagerDuty and BigPanda simulators on local ports.

Prints each simulator's URL and the credentials it accepts (sandbox values, not
secrets), then serves until interrupted. Kept light to import: the simulators are
imported only when the command runs.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--pagerduty-port", type=int, default=8091, help="PagerDuty simulator port (0: any free)"
    )
    parser.add_argument(
        "--bigpanda-port", type=int, default=8092, help="BigPanda simulator port (0: any free)"
    )
    parser.add_argument(
        "--events-per-minute",
        type=int,
        default=120,
        help="PagerDuty Events API limit per routing key (0: unlimited)",
    )
    parser.add_argument(
        "--rest-per-minute", type=int, default=960, help="PagerDuty REST limit (0: unlimited)"
    )


def run(args: argparse.Namespace) -> int:
    from pagerbridge_devkit.ports import free_port
    from pagerbridge_devkit.sandbox import pagerduty
    from pagerbridge_devkit.sandbox.server import BackgroundServer

    pd_port = args.pagerduty_port or free_port(args.host)
    pd_sim = pagerduty.PagerDutySimulator(
        events_per_minute=args.events_per_minute,
        rest_per_minute=args.rest_per_minute,
        base_url=f"http://{args.host}:{pd_port}",  # "self" links lead back to the sandbox
    )
    servers = [BackgroundServer(pd_sim.app, args.host, pd_port)]
    lines = [
        f"PagerDuty simulator  {servers[0].url}",
        f"  Events API v2      POST {servers[0].url}/v2/enqueue",
        f"  REST API v2        {servers[0].url}  (Authorization: Token token=<API key>)",
        f"  routing key        {pagerduty.DEFAULT_ROUTING_KEY} (any other 32-char key too)",
        f"  API key            {pagerduty.DEFAULT_API_TOKEN}",
        f"  inspect            {servers[0].url}/_sandbox/incidents",
    ]
    closers = [pd_sim.close]
    try:
        from pagerbridge_devkit.sandbox import bigpanda
    except ImportError:
        lines.append("BigPanda simulator   not available in this build")
    else:
        bp_sim = bigpanda.BigPandaSimulator()
        closers.append(bp_sim.close)
        port = args.bigpanda_port or free_port(args.host)
        servers.append(BackgroundServer(bp_sim.app, args.host, port))
        lines += [
            f"BigPanda simulator   {servers[1].url}",
            f"  Incidents API v2   {servers[1].url}/resources/v2.0  (Authorization: Bearer <key>)",
            f"  API key            {bigpanda.DEFAULT_API_TOKEN}",
            f"  environment id     {bigpanda.DEFAULT_ENVIRONMENT_ID}",
        ]
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        for server in servers:
            server.start()
        print("\n".join(lines), flush=True)
        print("Ready. Ctrl-C stops.", flush=True)
        stop.wait()
    except RuntimeError as exc:
        print(f"pagerbridge sandbox: {exc}", file=sys.stderr)
        return 1
    finally:
        for server in servers:
            server.stop()
        for close in closers:
            close()
    return 0
