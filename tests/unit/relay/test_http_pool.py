"""The sharded outbound transport over real loopback HTTP: keep-alive connections are
reused, spread over the shards, never more than shards x per_shard, and every response
(success, error status, connection failure) gives its slot back."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from pagerbridge.relay.outbound.http_pool import ShardedTransport

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
