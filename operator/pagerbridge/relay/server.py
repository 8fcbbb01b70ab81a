"""The HTTP server around the relay's ASGI app: uvicorn, plus the read deadlines and the
memory budget it lacks.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but has no deadline for
*reading a request*: a client that sends its headers or its body a byte at a time, or not
at all (slowloris), holds a connection and its buffers for ever, and enough of them exhaust
the server. :func:`guarded_protocol` returns uvicorn's httptools protocol with two deadlines:

- **headers**: from the connection's first byte (or a kept-alive connection's next
  request) to the end of the headers, at most ``header_timeout`` seconds;
- **body**: from the end of the headers to the end of the body, at most ``body_timeout``
  seconds (512 KB, the largest body accepted, needs a fraction of that on any real link).

Past a deadline the connection is closed, one info line is logged and ``on_stall(phase)``
is called (the relay counts it in ``pagerbridge_relay_stalled_connections_total``). The
application sees a closed connection as a client disconnect (see
:func:`pagerbridge.relay.inbound.common.read_body`).

And, with an :class:`Edge`, the fixed memory budget of :mod:`pagerbridge.relay.inbound.budget`:

- **header size**, on every port: httptools (what ``uvicorn[standard]`` picks) has no limit
  at all (h11's ``h11_max_incomplete_event_size`` does not apply to it) and buffered a
  single 64 MiB header whole (+128 MiB RSS). Request line and headers over
  ``max_header_bytes`` are answered 431 as soon as the bytes read say so.
- **connections and bodies**, on the public port only (the internal port's probes and
  metrics are never refused): admitted when the connection opens and when a request's
  headers are complete, before uvicorn reads a byte of its body into memory; refused with
  413, 429 or 503 (``Retry-After``) without starting the application.

A refusal is written by the protocol itself (the relay's JSON error body, ``connection:
close``); the connection is then read and dropped for ``linger`` seconds (at most
``linger_bytes`` of it), so the client sees the answer rather than a reset, and closed.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from pagerbridge.relay import options
from pagerbridge.relay.inbound.budget import (
    EdgeBudget,
    EdgeLimits,
    Refusal,
    Reservation,
    source_of,
)
from pagerbridge.relay.inbound.common import error_document

logger = logging.getLogger(__name__)

HEADER_TIMEOUT = options.HEADER_TIMEOUT
BODY_TIMEOUT = options.BODY_TIMEOUT
REFUSAL_LOG_INTERVAL = 10.0  # one warning per refusal reason per interval, with a count

Headers = list[tuple[bytes, bytes]]


@dataclass
class Edge:
    """What the protocol needs to keep the public port's budget: the books, the internal
    port (exempt), and how to tell a verified request from its headers alone."""

    budget: EdgeBudget
    internal_port: int | None
    authenticate: Callable[[str, Headers], bool]
    on_refused: Callable[[Refusal], None] | None = None
    _logged: dict[str, tuple[float, int]] = field(default_factory=dict)

    def refused(self, refusal: Refusal, client: str | None) -> None:
        if self.on_refused is not None:
            self.on_refused(refusal)
        # Under attack refusals come by the thousand: one line per reason per interval.
        now = time.monotonic()
        last, count = self._logged.get(refusal.reason, (0.0, 0))
        if now - last < REFUSAL_LOG_INTERVAL:
            self._logged[refusal.reason] = (last, count + 1)
            return
        self._logged[refusal.reason] = (now, 0)
        logger.warning(
            "request refused at the edge",
            extra={
                "status": refusal.status,
                "reason": refusal.reason,
                "client": client,
                "refused_since_last_line": count,
            },
        )


def _response(refusal: Refusal) -> bytes:
    body = json.dumps(error_document(refusal.code, refusal.message)).encode()
    head = [
        f"HTTP/1.1 {refusal.status} {http.HTTPStatus(refusal.status).phrase}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
    ]
    if refusal.retry_after is not None:
        head.append(f"retry-after: {refusal.retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _declared_length(headers: Headers) -> int | None:
    """Content-Length (httptools has checked it is a number), -1 when chunked, else None."""
    for name, value in headers:
        if name == b"content-length":
            return int(value)
        if name == b"transfer-encoding" and b"chunked" in value.lower():
            return -1
    return None


def guarded_protocol(
    header_timeout: float = HEADER_TIMEOUT,
    body_timeout: float = BODY_TIMEOUT,
    on_stall: Callable[[str], None] | None = None,
    edge: Edge | None = None,
) -> type[HttpToolsProtocol]:
    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None
        _public = False  # counted in the edge's books (the public port, admitted)
        _stranger = False  # ... and not yet verified
        _source = "?"
        _refused = False
        _drop_left = 0
        _in_head = True
        _head_bytes = 0
        _body_allowed = 0
        _body_seen = 0
        _held: deque[Reservation | None]  # one entry per request whose response is due

        def _arm(self, phase: str, seconds: float) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(seconds, self._expired, phase)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self, phase: str) -> None:
            self._deadline = None
            if self.transport.is_closing():
                return
            logger.info(
                "connection closed: request not received in time",
                extra={"phase": phase, "client": self.client and self.client[0]},
            )
            if on_stall is not None:
                on_stall(phase)
            self.transport.close()

        def _refuse(self, refusal: Refusal) -> None:
            """Answer ``refusal`` from here, read and drop whatever else comes, close."""
            self._refused = True
            self._disarm()
            if edge is not None:
                edge.refused(refusal, self.client and self.client[0])
            if self.transport.is_closing():
                return
            if self.cycle is not None and not self.cycle.response_complete:
                self.transport.close()  # a pipelined request: no answer can go in between
                return
            self.transport.write(_response(refusal))
            self.flow.resume_reading()
            limits = edge.budget.limits if edge is not None else EdgeLimits()
            self._drop_left = limits.linger_bytes
            self._deadline = self.loop.call_later(limits.linger, self.transport.close)

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._held = deque()
            self._arm("headers", header_timeout)
            if edge is None:
                return
            local = self.server[1] if self.server else None
            if local is not None and local == edge.internal_port:
                return
            self._source = source_of(self.client[0] if self.client else None)
            refusal = edge.budget.connect(self._source)
            if refusal is not None:
                self._refuse(refusal)
                return
            self._public = self._stranger = True

        def data_received(self, data: bytes) -> None:
            if self._refused:
                # Refused: dropped until the linger ends, the client closes, or it has sent
                # more than a real refused request would (then a reset is its problem).
                self._drop_left -= len(data)
                if self._drop_left < 0:
                    self.transport.close()
                return
            counted = self._in_head
            if counted:
                self._head_bytes += len(data)
            super().data_received(data)
            if (
                edge is not None
                and counted
                and self._in_head
                and not self._refused
                and self._head_bytes > edge.budget.limits.max_header_bytes
            ):
                self._refuse(self._header_refusal())
                # What httptools has buffered of the headers goes now, not after the linger.
                self.parser = httptools.HttpRequestParser(self)

        def _header_refusal(self) -> Refusal:
            limit = edge.budget.limits.max_header_bytes if edge else 0
            return Refusal(
                431,
                "header_too_large",
                f"request line and headers over {limit // 1024} KB",
                "header_too_large",
            )

        def on_message_begin(self) -> None:
            if self._refused:
                return
            super().on_message_begin()
            self._in_head = True
            self._head_bytes = 0
            self._arm("headers", header_timeout)

        def on_headers_complete(self) -> None:
            if self._refused:
                return
            self._in_head = False
            if edge is not None and not self._admit(edge):
                return
            self._arm("body", body_timeout)
            super().on_headers_complete()

        def _admit(self, edge: Edge) -> bool:
            limits = edge.budget.limits
            size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
            if size > limits.max_header_bytes:
                self._refuse(self._header_refusal())
                return False
            if not self._public:
                return True
            declared = _declared_length(self.headers)
            if declared is not None and declared > limits.max_body:
                self._refuse(
                    Refusal(
                        413,
                        "payload_too_large",
                        f"body over {limits.max_body // 1024} KB",
                        "body_too_large",
                    )
                )
                return False
            nbytes = limits.max_body if declared == -1 else (declared or 0)
            path = httptools.parse_url(self.url).path.decode("latin-1")
            verified = edge.authenticate(path, self.headers)
            if verified and self._stranger:
                edge.budget.verified(self._source)
                self._stranger = False
            reservation: Reservation | None = None
            if nbytes > 0:
                granted = edge.budget.reserve(self._source, nbytes, verified)
                if isinstance(granted, Refusal):
                    self._refuse(granted)
                    return False
                reservation = granted
            self._held.append(reservation)
            self._body_allowed, self._body_seen = nbytes, 0
            return True

        def on_body(self, body: bytes) -> None:
            if self._refused:
                return
            if self._public:
                # Only a chunked body can outgrow its reservation (httptools holds a declared
                # length to its word). One byte more than reserved still goes through, so
                # the handler sees the body is too large and answers 413; the rest is dropped.
                room = self._body_allowed + 1 - self._body_seen
                if room <= 0:
                    return
                body = body[:room]
                self._body_seen += len(body)
            super().on_body(body)

        def on_message_complete(self) -> None:
            if self._refused:
                return
            self._disarm()
            super().on_message_complete()

        def on_response_complete(self) -> None:
            if self._held and edge is not None:
                reservation = self._held.popleft()
                if reservation is not None:
                    edge.budget.release(reservation)
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if edge is not None and self._public:
                while self._held:
                    reservation = self._held.popleft()
                    if reservation is not None:
                        edge.budget.release(reservation)
                edge.budget.disconnect(self._source, self._stranger)
                self._public = False
            super().connection_lost(exc)

    return GuardedHttpToolsProtocol
