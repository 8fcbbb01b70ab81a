"""Helpers for the PagerDuty simulator tests: a running simulator and a webhook receiver."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pagerbridge_devkit.sandbox.pagerduty import (
    DEFAULT_API_TOKEN,
    DEFAULT_ROUTING_KEY,
    PagerDutySimulator,
)
from pagerbridge_devkit.sandbox.server import BackgroundServer

T = TypeVar("T")

REST_HEADERS = {
    "Authorization": f"Token token={DEFAULT_API_TOKEN}",
    "Accept": "application/vnd.pagerduty+json;version=2",
    "Content-Type": "application/json",
}
FROM = {"From": "responder@example.com"}


@dataclass
class Running:
    sim: PagerDutySimulator
    server: BackgroundServer
    client: httpx.Client

    @property
    def url(self) -> str:
        return self.server.url

    def enqueue(self, **event: Any) -> httpx.Response:
        return self.client.post("/v2/enqueue", json=event)

    def trigger(
        self, dedup_key: str, routing_key: str = DEFAULT_ROUTING_KEY, **payload: Any
    ) -> httpx.Response:
        body = {"summary": f"Problem {dedup_key}", "source": "db-1", "severity": "critical"}
        body.update(payload)
        return self.enqueue(
            routing_key=routing_key, event_action="trigger", dedup_key=dedup_key, payload=body
        )

    def rest(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**REST_HEADERS, **kwargs.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kwargs)


@contextmanager
def running(sim: PagerDutySimulator | None = None, **client_kwargs: Any) -> Iterator[Running]:
    simulator = sim or PagerDutySimulator(webhook_retry_delays=(0.05, 0.1, 0.1, 0.1))
    with (
        simulator,
        BackgroundServer(simulator.app) as server,
        httpx.Client(base_url=server.url, timeout=10, **client_kwargs) as client,
    ):
        yield Running(simulator, server, client)


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A real HTTP endpoint for webhooks; answers with the scripted statuses, then 202."""

    url: str
    statuses: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def receiving() -> Iterator[Receiver]:
    receiver = Receiver(url="")

    async def hook(request: Request) -> Response:
        body = await request.body()
        with receiver.lock:
            receiver.received.append(Received(dict(request.headers), body))
            status = receiver.statuses.pop(0) if receiver.statuses else 202
        return Response(status_code=status)

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    with BackgroundServer(app) as server:
        receiver.url = server.url + "/hook"
        yield receiver
