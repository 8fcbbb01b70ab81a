"""The HTTP server around the relay's ASGI app: uvicorn, plus read deadlines it lacks.

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
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)

HEADER_TIMEOUT = 10.0
BODY_TIMEOUT = 30.0


def guarded_protocol(
    header_timeout: float = HEADER_TIMEOUT,
    body_timeout: float = BODY_TIMEOUT,
    on_stall: Callable[[str], None] | None = None,
) -> type[HttpToolsProtocol]:
    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None

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
            log.info(
                "connection closed: request not received in time",
                extra={"phase": phase, "client": self.client and self.client[0]},
            )
            if on_stall is not None:
                on_stall(phase)
            self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm("headers", header_timeout)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm("headers", header_timeout)

        def on_headers_complete(self) -> None:
            self._arm("body", body_timeout)
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._disarm()
            super().on_message_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return GuardedHttpToolsProtocol
