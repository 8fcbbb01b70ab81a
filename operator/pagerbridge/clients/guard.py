"""An httpx transport that enforces the :class:`~pagerbridge.clients.egress.EgressPolicy`.

Two checks, both inside the transport so no caller can forget them:

1. every request's URL (scheme, host, port, no user info) against the allowlist, before
   any connection is made;
2. every new connection's address: the host is resolved here, each candidate address is
   checked (loopback, link-local, private... refused unless allowed), the connection goes
   to that vetted address (TLS still verifies the certificate and sends SNI for the host
   name), and the peer address of the connected socket is checked once more. A DNS answer
   that changes between the check and the connect (rebinding) therefore cannot reach a
   refused address.

Refusals raise :class:`~pagerbridge.clients.errors.EgressRefused` (through
``_http.call``), whose message never says whether anything listens there. Proxies from
the environment are ignored (``trust_env=False``): the policy is about where our
credentials go, and a proxy would hide the destination.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable

import httpcore
import httpx

from pagerbridge.clients.egress import EgressPolicy
from pagerbridge.clients.errors import EgressRefused

SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore network backend: resolve, vet, connect to the vetted address, re-check."""

    def __init__(self, policy: EgressPolicy, inner: httpcore.AsyncNetworkBackend | None = None):
        self._policy = policy
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore signature)
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout
            )
        except (OSError, TimeoutError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}") from exc
        if not infos:
            raise httpcore.ConnectError(f"cannot resolve {host}")
        candidates = []
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            if self._policy.address_allowed(address) and address not in candidates:
                candidates.append(address)
        if not candidates:
            self._policy.check_address(host, ipaddress.ip_address(str(infos[0][4][0])))
        last: Exception | None = None
        for address in candidates:
            try:
                stream = await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                last = exc
                continue
            await self._check_peer(host, stream)
            return stream
        raise httpcore.ConnectError(f"cannot connect to {host}") from last

    async def _check_peer(self, host: str, stream: httpcore.AsyncNetworkStream) -> None:
        sock = stream.get_extra_info("socket")
        if sock is None:  # pragma: no cover - anyio always exposes it
            return
        peer = ipaddress.ip_address(str(sock.getpeername()[0]).split("%", 1)[0])
        if not self._policy.address_allowed(peer):
            await stream.aclose()
            self._policy.check_address(host, peer)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore signature)
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise EgressRefused("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` whose requests and connections obey ``policy``."""

    def __init__(self, policy: EgressPolicy, *, max_connections: int = 10) -> None:
        super().__init__(trust_env=False)
        self._policy = policy
        # The stock pool, but connecting through the guarded backend.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=5.0,
            network_backend=GuardedBackend(policy),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._policy.check_url(str(request.url.copy_with(query=None, fragment=None)))
        return await super().handle_async_request(request)


__all__ = ["GuardedBackend", "GuardedTransport"]
