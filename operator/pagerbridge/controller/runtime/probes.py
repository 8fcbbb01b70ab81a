"""The liveness endpoint of a standing-by operator (a follower of the leader election).

kopf serves ``--liveness`` only once it runs; a follower is healthy too, and must not be
restarted by its probe while it waits. This tiny server answers on the same address until
the operator leads, then makes way for kopf's.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlparse

import aiohttp.web


@contextlib.asynccontextmanager
async def standby_liveness(url: str | None) -> AsyncIterator[None]:
    if not url:
        yield
        return
    parsed = urlparse(url)

    async def healthz(_: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.json_response({"standby": True})

    app = aiohttp.web.Application()
    app.router.add_get(parsed.path or "/", healthz)
    runner = aiohttp.web.AppRunner(app, access_log=None)
    await runner.setup()
    site = aiohttp.web.TCPSite(
        runner,
        parsed.hostname or "0.0.0.0",  # noqa: S104
        parsed.port or 80,
        reuse_address=True,
    )
    await site.start()
    try:
        yield
    finally:
        await runner.cleanup()
