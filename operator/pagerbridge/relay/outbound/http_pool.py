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
