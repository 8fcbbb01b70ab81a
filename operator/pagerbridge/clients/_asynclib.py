"""httpcore asks which async library runs it by importing ``sniffio`` on every lock,
semaphore and connection-pool operation (``httpcore._synchronization.current_async_library``),
falling back to asyncio when the import fails. ``sniffio`` is not installed here (anyio 4
no longer needs it), so every one of those calls searched ``sys.path`` for a module that is
not there: about 30 µs each, several per request, measured at about 1 s of CPU in the
operator's 300-integration benchmark (``tests/bench/operator_scale.py --profile``) and a
share of the relay's CPU per delivered event.

Marking the absent module as absent (``sys.modules["sniffio"] = None``, which makes
``import sniffio`` raise ``ImportError`` at once, as documented for the import system)
gives httpcore the same answer, asyncio, in about 1 µs. An installed ``sniffio`` is left
alone and used.

:func:`lean_transport` removes the next cost of the same kind in the pool's keep-alive
check (see :class:`_LeanStream`); the Kubernetes client uses it.
"""

from __future__ import annotations

import select
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

# Defined (and done, at the package's import) in ._sniffio, which needs no httpcore.
from pagerbridge.clients._sniffio import mark_sniffio_absent as mark_sniffio_absent


class _LeanStream(httpcore.AsyncNetworkStream):
    """A network stream that answers httpcore's ``is_readable`` from the socket it keeps.

    The connection pool asks every pooled connection ``has_expired()`` on each request and
    each response close, and an idle HTTP/1.1 connection answers by asking its stream
    ``get_extra_info("is_readable")``: on anyio's TLS stream that builds two attribute
    dicts and calls ``getpeername()`` before the one ``poll`` that matters. Here it is that
    ``poll`` alone (the same test on the same raw socket as httpcore's); everything else
    goes to the wrapped stream.
    """

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket: socket.socket | None = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore signature)
    ) -> httpcore.AsyncNetworkStream:
        return _LeanStream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable" and self._socket is not None:
            fd = self._socket.fileno()
            if fd < 0:
                return True  # closed: as httpcore, "readable" (the next read returns b"")
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            return bool(poller.poll(0))
        return self._inner.get_extra_info(info)


class LeanBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with :class:`_LeanStream` streams."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore signature)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _LeanStream(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore signature)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return _LeanStream(await self._inner.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def lean_transport(transport: httpx.AsyncHTTPTransport) -> httpx.AsyncHTTPTransport:
    """``transport`` with its connection pool connecting through :class:`LeanBackend` (its
    proxy settings, TLS context and limits kept); unchanged if its pool is not httpcore's."""
    pool = getattr(transport, "_pool", None)
    if isinstance(pool, httpcore.AsyncConnectionPool) and not hasattr(pool, "_proxy_url"):
        pool._network_backend = LeanBackend(pool._network_backend)
    return transport
