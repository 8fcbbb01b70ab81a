"""Benchmark (not a test): BigPanda simulator throughput on loopback.

    python tests/bench/bench_bigpanda_sim.py [N]

Prints webhook shares/s (sender -> a minimal receiver) and Incidents API comment
writes/s (rate limit off, one keep-alive client), so the simulator is known not to be
the bottleneck when the relay is measured.
"""

from __future__ import annotations

import sys
import time

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pagerbridge_devkit.sandbox.bigpanda import (
    DEFAULT_API_TOKEN,
    DEFAULT_ENVIRONMENT_ID,
    BigPandaSimulator,
)
from pagerbridge_devkit.sandbox.server import BackgroundServer


def main(n: int) -> None:
    received = 0

    async def sink(_: Request) -> Response:
        nonlocal received
        received += 1
        return Response(status_code=202)

    receiver = Starlette(routes=[Route("/hook", sink, methods=["POST"])])
    with (
        BigPandaSimulator(requests_per_second=None) as sim,
        BackgroundServer(receiver) as target,
        BackgroundServer(sim.app) as server,
    ):
        sim.add_webhook_target(target.url + "/hook")
        alerts = [{"host": "db-1", "check": "cpu", "status": "critical"}]
        started = time.perf_counter()
        ids = [sim.open_incident(alerts=alerts).id for _ in range(n)]
        assert sim.wait_webhooks_idle(120)
        elapsed = time.perf_counter() - started
        print(f"webhook shares: {n} in {elapsed:.2f}s = {n / elapsed:.0f}/s (received {received})")

        url = f"{server.url}/resources/v2.0/environments/{DEFAULT_ENVIRONMENT_ID}/incidents"
        headers = {"Authorization": f"Bearer {DEFAULT_API_TOKEN}"}
        with httpx.Client(headers=headers) as client:
            started = time.perf_counter()
            for incident_id in ids:
                response = client.post(f"{url}/{incident_id}/comments", json={"comment": "c"})
                assert response.status_code == 204
            elapsed = time.perf_counter() - started
        print(f"API comments:   {n} in {elapsed:.2f}s = {n / elapsed:.0f}/s (one client)")
        sim.wait_webhooks_idle(120)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
