"""Fault injection shared by both simulators: fail, slow down or drop chosen requests.

A :class:`FaultInjector` holds rules; :class:`FaultMiddleware` applies them to every
request whose path starts with the rule's prefix, before the simulator sees it. Rules
are set from Python (``sim.faults.fail_next(...)``) or over HTTP through the routes of
:func:`admin_routes` (``POST /_sandbox/faults``), so an out-of-process test or a person
running ``pagerbridge sandbox`` can break things on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from pagerbridge_devkit.sandbox.server import TRANSPORT_EXTENSION

FaultKind = Literal["fail", "latency", "drop"]


class FaultRule(BaseModel):
    """One rule; ``remaining`` counts down (None = until cleared)."""

    kind: FaultKind
    path_prefix: str = "/"
    method: str | None = None
    remaining: int | None = Field(default=1, ge=0)
    status: int = Field(default=503, ge=400, le=599)
    body: dict[str, object] | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    seconds: float = Field(default=0.0, ge=0.0, le=60.0)

    def matches(self, method: str, path: str) -> bool:
        if self.remaining == 0:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return path.startswith(self.path_prefix)


@dataclass
class FaultInjector:
    """Thread-safe set of fault rules (tests set them from another thread)."""

    rules: list[FaultRule] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def fail_next(
        self,
        count: int = 1,
        status: int = 503,
        *,
        path_prefix: str = "/",
        method: str | None = None,
        body: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
    ) -> FaultRule:
        """Answer the next ``count`` matching requests with ``status`` (None: forever)."""
        return self.add(
            FaultRule(
                kind="fail",
                remaining=count,
                status=status,
                path_prefix=path_prefix,
                method=method,
                body=body,
                headers=headers or {},
            )
        )

    def add_latency(
        self,
        seconds: float,
        *,
        count: int | None = None,
        path_prefix: str = "/",
        method: str | None = None,
    ) -> FaultRule:
        """Delay matching requests by ``seconds`` before handling them."""
        return self.add(
            FaultRule(
                kind="latency",
                seconds=seconds,
                remaining=count,
                path_prefix=path_prefix,
                method=method,
            )
        )

    def drop_next(
        self, count: int = 1, *, path_prefix: str = "/", method: str | None = None
    ) -> FaultRule:
        """Close the connection without an answer for the next ``count`` matching requests."""
        return self.add(
            FaultRule(kind="drop", remaining=count, path_prefix=path_prefix, method=method)
        )

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def take(self, method: str, path: str) -> list[FaultRule]:
        """The rules that apply to this request, counting each one down."""
        taken: list[FaultRule] = []
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    taken.append(rule)
            self.rules = [r for r in self.rules if r.remaining != 0]
        return taken


# Set in the request scope when a request was dropped, so recording can say "no answer".
DROPPED_SCOPE_KEY = "pagerbridge.dropped"


async def _drop(scope: Scope, receive: Receive, send: Send) -> None:
    """Close the client's connection without an answer.

    Served through :func:`pagerbridge_devkit.sandbox.server.uvicorn_config`, the request scope
    carries the TCP transport: abort it, so the client gets not one byte back (httpx:
    ``RemoteProtocolError: Server disconnected without sending a response``). Then wait
    (bounded) until the server has seen the disconnect, or it would try to answer a 500 on
    the dead socket. Under another server, fall back to starting a response and never
    finishing it, which makes the server close the connection mid-response.
    """
    scope[DROPPED_SCOPE_KEY] = True
    transport = scope.get("extensions", {}).get(TRANSPORT_EXTENSION)
    abort = getattr(transport, "abort", None)  # asyncio and uvloop transports both have it
    if not callable(abort):
        await send({"type": "http.response.start", "status": 502, "headers": []})
        return
    abort()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(1.0):
            while (await receive())["type"] != "http.disconnect":
                pass


class FaultMiddleware:
    """ASGI middleware applying a :class:`FaultInjector` to HTTP requests.

    Paths under ``/_sandbox`` (admin and inspection) are never faulted.
    """

    def __init__(self, app: ASGIApp, faults: FaultInjector) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sandbox"):
            await self.app(scope, receive, send)
            return
        for rule in self.faults.take(scope["method"], scope["path"]):
            if rule.kind == "latency":
                await asyncio.sleep(rule.seconds)
            elif rule.kind == "drop":
                await _drop(scope, receive, send)
                return
            else:
                body = (
                    rule.body
                    if rule.body is not None
                    else {"error": {"message": "Injected fault", "code": rule.status}}
                )
                response = Response(
                    json.dumps(body),
                    status_code=rule.status,
                    headers=rule.headers,
                    media_type="application/json",
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def admin_routes(faults: FaultInjector) -> list[Route]:
    """``GET/POST/DELETE /_sandbox/faults``: list, add (a :class:`FaultRule` body), clear."""

    async def list_rules(_: Request) -> Response:
        return JSONResponse([r.model_dump() for r in faults.rules])

    async def add_rule(request: Request) -> Response:
        try:
            rule = FaultRule.model_validate_json(await request.body())
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        faults.add(rule)
        return JSONResponse(rule.model_dump(), status_code=201)

    async def clear_rules(_: Request) -> Response:
        faults.clear()
        return Response(status_code=204)

    return [
        Route("/_sandbox/faults", list_rules, methods=["GET"]),
        Route("/_sandbox/faults", add_rule, methods=["POST"]),
        Route("/_sandbox/faults", clear_rules, methods=["DELETE"]),
    ]
