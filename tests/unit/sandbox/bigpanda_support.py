"""Helpers for the BigPanda simulator tests: a real HTTP receiver for its webhooks."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pagerbridge_devkit.sandbox.bigpanda import BigPandaSimulator
from pagerbridge_devkit.sandbox.faults import FaultInjector, FaultMiddleware
from pagerbridge_devkit.sandbox.server import BackgroundServer


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """Catches every request; answers 200 unless ``faults`` say otherwise."""

    def __init__(self) -> None:
        self.faults = FaultInjector()
        self._lock = threading.Lock()
        self._received: list[Received] = []

        async def catch(request: Request) -> Response:
            entry = Received(
                request.method,
                request.url.path,
                {k.lower(): v for k, v in request.headers.items()},
                await request.body(),
            )
            with self._lock:
                self._received.append(entry)
            return Response(status_code=200)

        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        self.app = FaultMiddleware(
            Starlette(routes=[Route("/{path:path}", catch, methods=methods)]), self.faults
        )

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)


@contextmanager
def running(sim: BigPandaSimulator) -> Iterator[BackgroundServer]:
    server = BackgroundServer(sim.app).start()
    try:
        yield server
    finally:
        sim.close()
        server.stop()


@contextmanager
def receiving() -> Iterator[tuple[Receiver, BackgroundServer]]:
    receiver = Receiver()
    with BackgroundServer(receiver.app) as server:
        yield receiver, server


# The alerts of specs/bigpanda/samples/incident-new.json (flat tags and a tags list).
SAMPLE_ALERTS: list[dict[str, Any]] = [
    {
        "alert_id": "a1",
        "status": "critical",
        "severity": "critical",
        "description": "CPU load above 95% for 10 minutes",
        "condition_name": "cpu_load",
        "primary_property": "host",
        "secondary_property": "check",
        "source_system": "nagios.prod",
        "host": "db-prod-01",
        "check": "cpu_load",
        "service": "payments",
        "team": "dba",
        "pd_routing_key": "0123456789abcdef0123456789abcdef",
    },
    {
        "alert_id": "a2",
        "status": "warning",
        "severity": "warning",
        "description": "Replication lag 40s",
        "primary_property": "host",
        "secondary_property": "check",
        "source_system": "nagios.prod",
        "tags": [
            {"name": "host", "value": "db-prod-02"},
            {"name": "check", "value": "replication_lag"},
        ],
    },
]
SAMPLE_TAGS: list[dict[str, Any]] = [{"tag_id": "priority", "tag_value": "P1"}]
# Top-level keys of the samples: new (no comments yet), commented, resolved (+ endedOn).
SAMPLE_NEW_KEYS = {
    "id", "status", "active", "severity", "flapping", "environments", "folders",
    "startedOn", "changedOn", "updatedOn", "incident_tags", "alerts",
}  # fmt: skip
SAMPLE_COMMENTED_KEYS = SAMPLE_NEW_KEYS | {"comments"}
SAMPLE_RESOLVED_KEYS = SAMPLE_COMMENTED_KEYS | {"endedOn"}
