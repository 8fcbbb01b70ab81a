"""The outbound transports over real loopback HTTP (the sharded httpcore pools, and the
aiohttp-backed one the relay delivers through): keep-alive connections are
reused, spread over the shards, never more than shards x per_shard, and every response
(success, error status, connection failure) gives its slot back."""

from __future__ import annotations

import asyncio
import gzip

import httpx
import pytest

from pagerbridge.relay.outbound.http_pool import AiohttpTransport, ShardedTransport, delivery_client

ANSWER = b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


async def _serve(connections: list[int]) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while True:
                length = 0
                line = await reader.readline()
                if not line:
                    return
                while line not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                    line = await reader.readline()
                if length:
                    await reader.readexactly(length)
                await asyncio.sleep(0.01)  # keep requests overlapping
                writer.write(ANSWER)
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def test_connections_are_reused_and_bounded() -> None:
    connections: list[int] = []
    server = await _serve(connections)
    port = server.sockets[0].getsockname()[1]
    transport = ShardedTransport(shards=4, per_shard=2)
    async with server, httpx.AsyncClient(transport=transport) as client:
        for _ in range(3):
            answers = await asyncio.gather(
                *(client.post(f"http://127.0.0.1:{port}/x", json={"n": i}) for i in range(8))
            )
            assert [a.status_code for a in answers] == [202] * 8
        assert transport._in_flight == [0, 0, 0, 0]
        # 8 concurrent requests over 4 shards x 2: at most 8 sockets, reused across rounds.
        assert len(connections) <= 8
        assert len(connections) >= 4  # spread over the shards, not one pool


async def test_failed_request_releases_its_slot() -> None:
    transport = ShardedTransport(shards=2, per_shard=1)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("http://127.0.0.1:9/")  # discard port: refused
    assert transport._in_flight == [0, 0]


# -- AiohttpTransport (what the relay delivers through: httpx's API over aiohttp) --------
async def test_aiohttp_transport_reuses_and_bounds_connections() -> None:
    connections: list[int] = []
    server = await _serve(connections)
    port = server.sockets[0].getsockname()[1]
    transport = AiohttpTransport(connections=4)
    async with server, httpx.AsyncClient(transport=transport) as client:
        for _ in range(3):
            answers = await asyncio.gather(
                *(client.post(f"http://127.0.0.1:{port}/x", json={"n": i}) for i in range(8))
            )
            assert [a.status_code for a in answers] == [202] * 8
            assert [a.json() for a in answers] == [{}] * 8
        assert 1 <= len(connections) <= 4  # bounded, and kept alive across rounds


async def test_aiohttp_transport_maps_connection_failure_to_httpx() -> None:
    async with httpx.AsyncClient(transport=AiohttpTransport(2)) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("http://127.0.0.1:9/")  # discard port: refused


async def test_aiohttp_transport_sends_the_body_and_headers_and_never_decompresses() -> None:
    seen: list[bytes] = []
    gzipped = gzip.compress(b"{}")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        seen.append(head + await reader.readexactly(length))
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: "
            + str(len(gzipped)).encode()
            + b"\r\n\r\n"
            + gzipped
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, httpx.AsyncClient(transport=AiohttpTransport(2)) as client:
        request = client.build_request(
            "POST",
            f"http://127.0.0.1:{port}/v2/enqueue",
            content=b'{"a":1}',
            headers={"Accept-Encoding": "identity", "X-Test": "yes"},
        )
        response = await client.send(request, stream=True)
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
        await response.aclose()
    assert raw == gzipped  # the raw bytes: call() refuses compressed answers unread
    assert response.headers["content-encoding"] == "gzip"
    head, _, body = seen[0].partition(b"\r\n\r\n")
    assert body == b'{"a":1}'
    lines = head.lower().split(b"\r\n")
    assert lines[0] == b"post /v2/enqueue http/1.1"
    assert b"x-test: yes" in lines
    assert b"accept-encoding: identity" in lines
    assert sum(line.startswith(b"content-length:") for line in lines) == 1


async def test_the_delivery_client_keeps_no_cookies() -> None:
    """An upstream setting new cookies on every answer must not grow the relay's memory."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nset-cookie: a=1; Path=/\r\nset-cookie: b=2\r\n"
            b"content-length: 0\r\n\r\n"
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, delivery_client(2) as client:
        for _ in range(3):
            response = await client.get(f"http://127.0.0.1:{port}/")
            assert response.status_code == 200
            assert response.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2"]
        assert len(client.cookies.jar) == 0
