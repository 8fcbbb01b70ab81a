"""Run an ASGI app on a loopback port in a background thread (tests, demo, benchmarks).

Each :class:`BackgroundServer` runs uvicorn in its own thread and event loop, so a test
can drive the simulator over real HTTP while inspecting its state from Python.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from pagerbridge.clients.egress import DEFAULT_ALLOWED_HOSTS, EgressPolicy
from pagerbridge.controller.settings import ENV_EGRESS_ALLOW_HTTP, ENV_EGRESS_ALLOWED_HOSTS
from pagerbridge_devkit.ports import free_port

#: ASGI scope extension under which :func:`drop_capable_protocol` exposes the connection's
#: transport, so fault injection can close it without sending a response.
TRANSPORT_EXTENSION = "pagerbridge.transport"


def loopback_egress_policy() -> EgressPolicy:
    """The policy of :func:`loopback_egress_env`, for tests that build settings directly."""
    return EgressPolicy.parse((*DEFAULT_ALLOWED_HOSTS, "127.0.0.1"), allow_http=True)


def loopback_egress_env() -> dict[str, str]:
    """Operator environment that lets it reach simulators on 127.0.0.1 over http.

    The public defaults stay allowed (an integration without explicit URLs still validates);
    only the dev kit and the tests use this: a real install's egress comes from the Helm
    values (``egress.*``).
    """
    return {
        ENV_EGRESS_ALLOWED_HOSTS: ",".join((*DEFAULT_ALLOWED_HOSTS, "127.0.0.1")),
        ENV_EGRESS_ALLOW_HTTP: "true",
    }


def drop_capable_protocol(
    base: type[asyncio.Protocol] = AutoHTTPProtocol,
) -> type[asyncio.Protocol]:
    """A uvicorn HTTP protocol class that puts its transport into each request's scope.

    ASGI gives an application no way to drop a connection: an exception becomes a 500.
    Real networks drop connections, so the simulators must too; this hook hands the
    transport to :class:`~pagerbridge_devkit.sandbox.faults.FaultMiddleware` via
    ``scope["extensions"][TRANSPORT_EXTENSION]``. It relies on uvicorn's protocol classes
    keeping ``app`` and ``transport`` attributes (true for h11 and httptools).
    """

    class DropCapableProtocol(base):  # type: ignore[valid-type,misc]
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            inner: ASGIApp = self.app  # type: ignore[has-type]

            async def app(scope: Scope, receive: Receive, send: Send) -> None:
                scope.setdefault("extensions", {})[TRANSPORT_EXTENSION] = self.transport
                await inner(scope, receive, send)

            self.app = app

    DropCapableProtocol.__name__ = f"DropCapable{base.__name__}"
    return DropCapableProtocol


def uvicorn_config(
    app: ASGIApp, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"
) -> uvicorn.Config:
    """The uvicorn configuration every simulator is served with (drop faults work)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        access_log=False,
        http=drop_capable_protocol(),
    )


class BackgroundServer:
    """``with BackgroundServer(app) as server: httpx.get(server.url + "/...")``."""

    def __init__(
        self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0, also_port: int | None = None
    ) -> None:
        """``also_port``: a second port the same app serves (the relay's internal port)."""
        self.host = host
        self.port = port or free_port(host)
        self.also_port = also_port
        self._server = uvicorn.Server(uvicorn_config(app, self.host, self.port))
        self._thread = threading.Thread(target=self._run, name=f"sandbox-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        if self.also_port is None:
            asyncio.run(self._server.serve())
            return
        sockets = []
        for port in (self.port, self.also_port):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, port))
            sockets.append(sock)
        asyncio.run(self._server.serve(sockets=sockets))

    def start(self, timeout: float = 10.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"sandbox server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
