"""A loopback stand-in for the Ingress in front of the relay.

The integration's ``relay.publicUrl`` must be known when it is applied, before the relay
runs; the harness kubelet picks the relay's port only when it starts the process (and a
new one on every restart). This reverse proxy has a fixed address, is the public URL, and
forwards each request to wherever the relay runs right now, as an Ingress would to the
relay Service. PagerDuty's webhook subscription and BigPanda's webhook both go through it.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

# Connection-level headers a proxy must not forward (RFC 9110 §7.6.1), plus the ones
# httpx sets itself.
_HOP_HEADERS = frozenset(
    {
        "host",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)


class Ingress:
    """``Ingress(lambda: relay_url_or_None).app`` is an ASGI app to serve."""

    def __init__(self, upstream: Callable[[], str | None], timeout: float = 10.0) -> None:
        self.upstream = upstream
        self.timeout = timeout
        self.app = Starlette(
            routes=[Route("/{path:path}", self._forward, methods=["GET", "POST", "PUT", "DELETE"])]
        )

    async def _forward(self, request: Request) -> Response:
        target = self.upstream()
        if target is None:
            return JSONResponse({"error": "relay_unavailable"}, status_code=503)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                upstream = await client.request(
                    request.method,
                    target.rstrip("/") + request.url.path,
                    params=request.query_params,
                    headers=headers,
                    content=await request.body(),
                )
        except httpx.HTTPError:
            return JSONResponse({"error": "relay_unreachable"}, status_code=502)
        reply = {
            k: v
            for k, v in upstream.headers.items()
            if k.lower() not in _HOP_HEADERS and k.lower() != "content-encoding"
        }
        return Response(upstream.content, status_code=upstream.status_code, headers=reply)
