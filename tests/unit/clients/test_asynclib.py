"""httpcore's per-operation ``import sniffio`` (:mod:`pagerbridge.clients._asynclib`): with
``sniffio`` absent it must fail at once and httpcore must still find asyncio; an installed
``sniffio`` is never shadowed."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import httpcore._synchronization as synchronization
import httpx

import pagerbridge.clients  # noqa: F401  (applies the marking)
from pagerbridge.clients import _asynclib


def test_httpcore_still_runs_on_asyncio() -> None:
    async def library() -> str:
        return synchronization.current_async_library()

    assert asyncio.run(library()) == "asyncio"


def test_an_absent_sniffio_is_marked_absent_and_an_installed_one_left_alone() -> None:
    code = (
        "import sys, importlib.util\n"
        "installed = importlib.util.find_spec('sniffio') is not None\n"
        "import pagerbridge.clients\n"
        "marked = 'sniffio' in sys.modules and sys.modules['sniffio'] is None\n"
        "assert marked != installed, (marked, installed)\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"
    assert _asynclib.mark_sniffio_absent() is False  # already decided: nothing more to do


async def test_the_lean_stream_says_readable_when_httpcore_would() -> None:
    """Idle: not readable; the server wrote or closed: readable; the same answers as the
    stock stream's, on a real loopback connection."""
    peers: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        stream = await _asynclib.LeanBackend().connect_tcp("127.0.0.1", port)
        stock = stream._inner  # type: ignore[attr-defined]
        while not peers:
            await asyncio.sleep(0.01)
        answers = [(stream.get_extra_info("is_readable"), stock.get_extra_info("is_readable"))]
        peers[0].write(b"x")
        await peers[0].drain()
        await asyncio.sleep(0.05)
        answers.append((stream.get_extra_info("is_readable"), stock.get_extra_info("is_readable")))
        assert await stream.read(1) == b"x"
        peers[0].close()
        await asyncio.sleep(0.05)
        answers.append((stream.get_extra_info("is_readable"), stock.get_extra_info("is_readable")))
        assert answers == [(False, False), (True, True), (True, True)]
        assert stream.get_extra_info("socket") is stock.get_extra_info("socket")
        await stream.aclose()
    finally:
        server.close()
        await server.wait_closed()


def test_lean_transport_wraps_a_direct_pool_and_leaves_a_proxy_pool_alone() -> None:
    transport = _asynclib.lean_transport(httpx.AsyncHTTPTransport())
    assert isinstance(transport._pool._network_backend, _asynclib.LeanBackend)
    proxied = _asynclib.lean_transport(httpx.AsyncHTTPTransport(proxy="http://127.0.0.1:9"))
    assert not isinstance(proxied._pool._network_backend, _asynclib.LeanBackend)
