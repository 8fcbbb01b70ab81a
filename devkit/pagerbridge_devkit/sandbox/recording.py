"""Inspection: every request a simulator received, with its answer.

Tests assert on these logs ("exactly one resolve reached BigPanda"); the admin route
``GET /_sandbox/requests`` serves them over HTTP.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Header values that are credentials are stored redacted, so a test printing the log
# never prints a secret.
_REDACTED_HEADERS = frozenset({"authorization", "x-pagerduty-signature"})


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    status: int | None
    at: float

    def json(self) -> Any:
        import json

        return json.loads(self.body)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": self.body.decode("utf-8", "replace"),
            "status": self.status,
            "at": self.at,
        }


@dataclass
class RequestLog:
    entries: list[RecordedRequest] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def append(self, entry: RecordedRequest) -> None:
        with self._lock:
            self.entries.append(entry)

    def matching(self, method: str | None = None, path_prefix: str = "/") -> list[RecordedRequest]:
        with self._lock:
            return [
                e
                for e in self.entries
                if (method is None or e.method == method) and e.path.startswith(path_prefix)
            ]

    def clear(self) -> None:
        with self._lock:
            self.entries.clear()


class RecordingMiddleware:
    """Records each HTTP request (outside ``/_sandbox``) and its response status.

    Install it outermost, so injected faults are recorded too.
    """

    def __init__(
        self,
        app: ASGIApp,
        log: RequestLog,
        redact_body: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.app = app
        self.log = log
        # Bodies can hold credentials too (e.g. a webhook config's authorization).
        self.redact_body = redact_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sandbox"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        status: int | None = None
        recorded = False

        def record() -> None:
            nonlocal recorded
            if recorded:
                return
            recorded = True
            self.log.append(
                RecordedRequest(
                    method=scope["method"],
                    path=scope["path"],
                    query=scope.get("query_string", b"").decode("latin-1"),
                    headers=headers,
                    body=self.redact_body(body) if self.redact_body else body,
                    status=None if scope.get("pagerbridge.dropped") else status,
                    at=time.time(),
                )
            )

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # Logged before the client can see the answer: whoever got a response
                # (the relay, then a test looking at the relay) finds its request here.
                record()
            await send(message)

        headers = {
            k.decode("latin-1").lower(): (
                "<redacted>"
                if k.decode("latin-1").lower() in _REDACTED_HEADERS
                else v.decode("latin-1")
            )
            for k, v in scope["headers"]
        }
        try:
            await self.app(scope, replay, capture)
        finally:
            record()  # no answer was started (a dropped connection, an error)


def json_field_redactor(*names: str) -> Callable[[bytes], bytes]:
    """A ``redact_body`` masking the values of these JSON keys at any depth.

    Bodies that are not JSON are recorded as they are.
    """
    wanted = frozenset(n.lower() for n in names)

    def mask(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: "<redacted>" if k.lower() in wanted and v is not None else mask(v)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [mask(v) for v in value]
        return value

    def redact(body: bytes) -> bytes:
        import json

        try:
            parsed = json.loads(body)
        except ValueError:
            return body
        return json.dumps(mask(parsed)).encode()

    return redact


def request_log_routes(log: RequestLog) -> list[Route]:
    """``GET /_sandbox/requests`` (all recorded requests) and ``DELETE`` to clear."""

    async def list_requests(_: Request) -> Response:
        return JSONResponse([e.to_dict() for e in log.entries])

    async def clear_requests(_: Request) -> Response:
        log.clear()
        return Response(status_code=204)

    return [
        Route("/_sandbox/requests", list_requests, methods=["GET"]),
        Route("/_sandbox/requests", clear_requests, methods=["DELETE"]),
    ]
