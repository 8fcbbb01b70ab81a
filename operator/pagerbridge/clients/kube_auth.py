"""How a request to the Kubernetes API authenticates: token sources shared by every stack.

A :class:`TokenSource` gives the ``Authorization`` header value for the next request and is
told when the server answered 401, so the next value is fresh:

- :class:`StaticToken` / :class:`BasicAuth`: a kubeconfig ``token`` (or user/password);
- :class:`TokenFile`: a kubeconfig ``tokenFile`` or the pod's ServiceAccount token: re-read
  whenever the file changes (the kubelet rotates bound tokens) and after a 401;
- :class:`ExecPlugin`: a client-go credential plugin (``exec``; EKS, GKE, AKS): run when
  there is no token, when its ``expirationTimestamp`` is near, and after a 401.

:class:`AuthTransport` applies a source to httpx requests (retrying once after a 401); the
operator's kopf login applies the same object to kopf's aiohttp session, so one process has
one source per credential. Tokens appear in headers only, never in messages or logs.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

EXEC_API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
# Refresh an exec credential this long before it expires (client-go uses a similar skew).
EXPIRY_MARGIN = datetime.timedelta(seconds=30)


class KubeconfigError(Exception):
    """The cluster's address or credentials cannot be read (a user error, not a bug)."""


class TokenSource(Protocol):
    async def header(self) -> str:
        """The ``Authorization`` header value for the next request."""
        ...

    def invalidate(self) -> None:
        """The server refused the last value (401): the next one must be fresh."""
        ...


@dataclass
class StaticToken:
    token: str = field(repr=False)

    async def header(self) -> str:
        return f"Bearer {self.token}"

    def invalidate(self) -> None:
        """A fixed token cannot get any better."""


@dataclass
class BasicAuth:
    username: str
    password: str = field(repr=False)

    async def header(self) -> str:
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")

    def invalidate(self) -> None:
        """Fixed credentials cannot get any better."""


@dataclass
class TokenFile:
    """A token read from a file, re-read when the file changes or after a 401."""

    path: Path
    _token: str = field(default="", repr=False)
    _stamp: tuple[int, int, int] | None = None

    def _read(self) -> str:
        try:
            stat = self.path.stat()
            stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if stamp != self._stamp or not self._token:
                self._token = self.path.read_text(encoding="utf-8").strip()
                self._stamp = stamp
        except OSError as exc:
            if not self._token:
                raise KubeconfigError(
                    f"cannot read token file {self.path}: {exc.__class__.__name__}"
                ) from None
            # Mid-rotation (the kubelet swaps a symlink): keep the last token for now.
        return self._token

    async def header(self) -> str:
        return f"Bearer {self._read()}"

    def invalidate(self) -> None:
        self._stamp = None


@dataclass
class ExecPlugin:
    """A client-go credential plugin: a command printing an ``ExecCredential`` as JSON."""

    command: str
    args: list[str]
    env: dict[str, str] = field(repr=False)
    api_version: str
    exec_info: str = field(repr=False)
    _token: str = field(default="", repr=False)
    _expires: datetime.datetime | None = None
    _lock: asyncio.Lock | None = field(default=None, repr=False)

    @classmethod
    def from_kubeconfig(
        cls, spec: Mapping[str, Any], base: Path, cluster: Mapping[str, Any]
    ) -> ExecPlugin:
        api_version = str(spec.get("apiVersion", ""))
        if api_version not in EXEC_API_VERSIONS:
            raise KubeconfigError(f"exec plugin apiVersion {api_version!r} is not supported")
        command = str(spec.get("command") or "")
        if not command:
            raise KubeconfigError("exec plugin without a command")
        # client-go: a relative path with a separator is relative to the kubeconfig's folder.
        if os.sep in command and not os.path.isabs(command):
            command = str(base / command)
        env = {str(e["name"]): str(e["value"]) for e in spec.get("env") or []}
        info: dict[str, Any] = {"interactive": False}
        if spec.get("provideClusterInfo"):
            info["cluster"] = {
                "server": cluster.get("server"),
                "tls-server-name": cluster.get("tls-server-name"),
                "insecure-skip-tls-verify": bool(cluster.get("insecure-skip-tls-verify")),
                "certificate-authority-data": cluster.get("certificate-authority-data"),
                "proxy-url": cluster.get("proxy-url"),
            }
        exec_info = json.dumps({"apiVersion": api_version, "kind": "ExecCredential", "spec": info})
        return cls(
            command=command,
            args=[str(a) for a in spec.get("args") or []],
            env=env,
            api_version=api_version,
            exec_info=exec_info,
        )

    def _fresh(self) -> bool:
        if not self._token:
            return False
        if self._expires is None:
            return True
        return datetime.datetime.now(datetime.UTC) + EXPIRY_MARGIN < self._expires

    async def _run(self) -> None:
        executable = shutil.which(self.command) or self.command
        env = {**os.environ, **self.env, "KUBERNETES_EXEC_INFO": self.exec_info}
        try:
            process = await asyncio.create_subprocess_exec(
                executable,
                *self.args,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise KubeconfigError(
                f"exec plugin {self.command}: cannot start ({exc.__class__.__name__})"
            ) from None
        stdout, stderr = await process.communicate()
        if process.returncode != 0:
            # The plugin's own complaint helps the user; it is stderr, not the credential.
            detail = stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
            raise KubeconfigError(
                f"exec plugin {self.command} exited {process.returncode}: {detail[0][:300]}"
            )
        try:
            credential = json.loads(stdout)
            status = credential["status"]
        except (ValueError, KeyError, TypeError):
            raise KubeconfigError(
                f"exec plugin {self.command} did not print an ExecCredential"
            ) from None
        token = status.get("token")
        if not token:
            raise KubeconfigError(
                f"exec plugin {self.command} returned no token "
                "(client certificates from plugins are not supported)"
            )
        self._token = str(token)
        expires = status.get("expirationTimestamp")
        self._expires = (
            datetime.datetime.fromisoformat(str(expires).replace("Z", "+00:00"))
            if expires
            else None
        )

    async def header(self) -> str:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if not self._fresh():
                await self._run()
        return f"Bearer {self._token}"

    def invalidate(self) -> None:
        self._token = ""


class AuthTransport(httpx.AsyncBaseTransport):
    """Sets ``Authorization`` from a :class:`TokenSource`; after a 401, asks it for a fresh
    value and sends the request once more (as client-go does for token files)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, source: TokenSource | None) -> None:
        self._inner = inner
        self._source = source

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._source is None:
            return await self._inner.handle_async_request(request)
        sent = await self._source.header()
        request.headers["Authorization"] = sent
        response = await self._inner.handle_async_request(request)
        if response.status_code != 401:
            return response
        self._source.invalidate()
        fresh = await self._source.header()
        if fresh == sent:
            return response
        await response.aclose()
        request.headers["Authorization"] = fresh
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __deepcopy__(self, memo: dict[int, Any]) -> AuthTransport:
        # lightkube copies its connection parameters (dataclasses.asdict); a transport is a
        # live connection pool and TLS context, shared, never copied.
        return self
