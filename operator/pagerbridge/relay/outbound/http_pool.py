"""The relay's outbound HTTP transport: several small keep-alive pools instead of one big one.

Why: httpcore 1.0.x rescans every pooled connection (and polls each idle socket) whenever a
request starts or ends, and counts idle connections in a nested loop, so the cost of one
request grows with the square of the pool size (encode/httpcore#1035). With one 64-connection
pool that bookkeeping was most of the relay's CPU while delivering (py-spy: ~40 % of the
process in ``_assign_requests_to_connections``; 8-10 ms CPU per delivered event), which
capped end-to-end delivery at about 80 events/s. The same number of keep-alive connections
as independent small pools keeps the scan short (loopback micro-benchmark, 64 concurrent
posts: one pool of 64 2.3-3.3 ms CPU per request, 8 pools of 8 1.5-1.9 ms, 64 pools of 1
1.15-1.2 ms). Each request goes to the pool with the fewest requests in flight, so with the
dispatcher's concurrency equal to the pool count nothing waits inside a pool.

All pools share one TLS context: httpx builds a context per transport by default, loading
the CA bundle each time (about 0.85 MB apiece, 55 MB of an idle relay's memory with 64
pools).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx


class _Tracked(httpx.AsyncByteStream):
    """A response body that tells its shard when the connection is released."""

    def __init__(self, stream: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            if self._release is not None:
                self._release()
                self._release = None


class ShardedTransport(httpx.AsyncBaseTransport):
    """``shards`` independent connection pools of ``per_shard`` keep-alive connections."""

    def __init__(self, shards: int = 8, per_shard: int = 8) -> None:
        self._limits = httpx.Limits(max_connections=per_shard, max_keepalive_connections=per_shard)
        self._tls = httpx.create_ssl_context()
        # Pools are made on first use: an idle relay holds none.
        self._pools: list[httpx.AsyncHTTPTransport | None] = [None] * max(1, shards)
        self._in_flight = [0] * len(self._pools)

    def _pool(self, index: int) -> httpx.AsyncHTTPTransport:
        pool = self._pools[index]
        if pool is None:
            pool = httpx.AsyncHTTPTransport(limits=self._limits, verify=self._tls)
            self._pools[index] = pool
        return pool

    def _release(self, index: int) -> Callable[[], None]:
        def release() -> None:
            self._in_flight[index] -= 1

        return release

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = min(range(len(self._pools)), key=self._in_flight.__getitem__)
        self._in_flight[index] += 1
        release = self._release(index)
        try:
            response = await self._pool(index).handle_async_request(request)
        except BaseException:
            release()
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _Tracked(response.stream, release)
        return response

    async def aclose(self) -> None:
        for pool in self._pools:
            if pool is not None:
                await pool.aclose()


class _AiohttpBody(httpx.AsyncByteStream):
    """An aiohttp response body as httpx's stream; closing it returns (or, when unread,
    drops) the connection."""

    def __init__(self, response: Any) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except Exception as exc:
            raise _mapped(exc) from None

    async def aclose(self) -> None:
        # release(): back to the pool when read to the end, else the connection is closed
        # (aiohttp's protocol says should_close while a payload is unfinished).
        self._response.release()


# Request headers aiohttp computes itself from the URL and the body.
_OWN_HEADERS = frozenset({b"host", b"content-length", b"transfer-encoding"})


def _mapped(exc: BaseException) -> BaseException:
    """aiohttp's errors as httpx's, so callers (clients._http.call) see one vocabulary."""
    import aiohttp

    if isinstance(exc, aiohttp.ServerTimeoutError | TimeoutError):
        return httpx.ReadTimeout(str(exc) or type(exc).__name__)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(str(exc))
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError(str(exc))
    if isinstance(exc, aiohttp.ClientError):
        return httpx.NetworkError(f"{type(exc).__name__}: {exc}")
    return exc


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx's client API over aiohttp's connection pool and C HTTP parser.

    Why (tests/bench/outbound_clients.py, README "Outbound HTTP"): per delivered event the
    httpcore/h11/anyio stack under httpx costs the relay more CPU than everything else in
    a delivery; aiohttp (already installed: kopf's HTTP stack) does the same POST for a
    fraction. The relay's clients and :func:`pagerbridge.clients._http.call` keep speaking
    httpx (requests, responses, errors, the deadline and the streamed size cap), so every
    bound stays where it is: only the bytes on the wire go through aiohttp.

    Never decompresses (``call`` refuses a compressed answer unread), never follows
    redirects (httpx decides), reads no proxy settings from the environment; TLS uses the
    same trust as httpx (``httpx.create_ssl_context``). aiohttp is imported, and the
    session made, on the first request: an idle relay holds neither.
    """

    def __init__(self, connections: int = 64) -> None:
        self._connections = max(1, connections)
        self._session: Any = None
        self._tls: Any = None

    def _client(self) -> Any:
        if self._session is None:
            import aiohttp

            self._tls = httpx.create_ssl_context()
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._connections,
                    limit_per_host=self._connections,
                    ssl=self._tls,
                    enable_cleanup_closed=False,
                ),
                auto_decompress=False,
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("Accept-Encoding", "User-Agent"),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        import aiohttp

        session = self._client()
        timeouts = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=timeouts.get("connect"),
            sock_read=timeouts.get("read"),
        )
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in request.headers.raw
            if name.lower() not in _OWN_HEADERS
        ]
        body = await request.aread()
        try:
            response = await session.request(
                request.method,
                str(request.url),
                data=body or None,
                headers=headers,
                allow_redirects=False,
                timeout=timeout,
            )
        except Exception as exc:
            raise _mapped(exc) from None
        return httpx.Response(
            response.status,
            headers=list(response.raw_headers),
            stream=_AiohttpBody(response),
            extensions={"http_version": b"HTTP/1.1"},
            request=request,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def delivery_client(connections: int) -> httpx.AsyncClient:
    """The relay's one upstream client: ``connections`` keep-alive connections over
    :class:`AiohttpTransport`, and a cookie jar that keeps nothing. No upstream call needs a
    cookie, and httpx otherwise stores every ``Set-Cookie`` of every answer for the life of
    the process: an upstream answering each delivery with new cookies would grow the relay's
    memory without bound."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(10.0, connect=5.0),
        transport=AiohttpTransport(max(1, connections)),
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
    )
