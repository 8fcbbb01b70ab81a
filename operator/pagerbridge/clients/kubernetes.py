"""A small async Kubernetes API client: server-side apply, status patches, Events, watches.

The operator applies its children with server-side apply (``fieldManager=pagerbridge``,
``force=true``): the API server merges, a no-op apply writes nothing, and a hand-edited
field owned by pagerbridge is taken back. Credentials come from a kubeconfig (the
``KUBECONFIG`` file or ``~/.kube/config``) or the pod's service account; they live in the
``httpx.AsyncClient`` only and never in messages.

Failures raise :class:`KubernetesError` with the HTTP status (404 → ``NotFound``, 409 →
``AlreadyExists``/conflict); transport failures raise ``KubernetesError`` with status None.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import ssl
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx
import yaml

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")

# kind -> (api prefix, plural) for the built-in kinds PagerBridge touches.
BUILTIN: dict[str, tuple[str, str]] = {
    "ConfigMap": ("/api/v1", "configmaps"),
    "Secret": ("/api/v1", "secrets"),
    "Service": ("/api/v1", "services"),
    "PersistentVolumeClaim": ("/api/v1", "persistentvolumeclaims"),
    "Event": ("/api/v1", "events"),
    "Namespace": ("/api/v1", "namespaces"),
    "Deployment": ("/apis/apps/v1", "deployments"),
}

Obj = dict[str, Any]


class KubernetesError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotFound(KubernetesError):
    pass


class AlreadyExists(KubernetesError):
    pass


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the API: ``prefix`` (/api/v1 or /apis/G/V) and ``plural``."""

    prefix: str
    plural: str

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        path = self.prefix
        if namespace is not None:
            path += f"/namespaces/{quote(namespace)}"
        path += f"/{self.plural}"
        if name is not None:
            path += f"/{quote(name)}"
        return path

    @classmethod
    def builtin(cls, kind: str) -> Resource:
        prefix, plural = BUILTIN[kind]
        return cls(prefix, plural)

    @classmethod
    def custom(cls, group: str, version: str, plural: str) -> Resource:
        return cls(f"/apis/{group}/{version}", plural)


def resource_of(manifest: Mapping[str, Any]) -> Resource:
    return Resource.builtin(str(manifest["kind"]))


@dataclass(frozen=True)
class Connection:
    server: str
    verify: ssl.SSLContext | bool
    token: str | None = None
    default_namespace: str = "default"


def _credential_bytes(data_b64: str | None, path: str | None, base: Path) -> bytes | None:
    """A kubeconfig credential given inline (``*-data``) or as a file path."""
    if data_b64:
        return base64.b64decode(data_b64)
    if path:
        return (base / path).read_bytes()
    return None


def _load_client_certificate(context: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    """Load a client certificate and key given as bytes.

    ``ssl`` only reads them from files, so they go to a private temporary directory
    (mode 0700) that is removed as soon as the context has read them: no key material
    is left on disk.
    """
    with tempfile.TemporaryDirectory(prefix="pagerbridge-kube-") as tmp:
        cert_path, key_path = Path(tmp) / "client.crt", Path(tmp) / "client.key"
        for target, content in ((cert_path, cert), (key_path, key)):
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
        context.load_cert_chain(str(cert_path), str(key_path))


def connection_from_kubeconfig(
    path: str | Path | None = None, context: str | None = None
) -> Connection:
    """Read the current (or named) context of a kubeconfig file."""
    if path is None:
        path = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or Path.home() / ".kube/config"
    kubeconfig_path = Path(path)
    config: dict[str, Any] = yaml.safe_load(kubeconfig_path.read_text())
    base = kubeconfig_path.parent
    context_name = context or config.get("current-context")
    ctx = next(c["context"] for c in config["contexts"] if c["name"] == context_name)
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == ctx["cluster"])
    user: dict[str, Any] = next(
        (u["user"] for u in config.get("users", []) if u["name"] == ctx.get("user")), {}
    )
    user = user or {}

    verify: ssl.SSLContext | bool
    if cluster.get("insecure-skip-tls-verify"):
        verify = False
    else:
        ca = _credential_bytes(
            cluster.get("certificate-authority-data"), cluster.get("certificate-authority"), base
        )
        verify = ssl.create_default_context(cadata=ca.decode("ascii") if ca else None)
    cert = _credential_bytes(
        user.get("client-certificate-data"), user.get("client-certificate"), base
    )
    key = _credential_bytes(user.get("client-key-data"), user.get("client-key"), base)
    if cert and key:
        if not isinstance(verify, ssl.SSLContext):
            verify = ssl.create_default_context()
            verify.check_hostname = False
            verify.verify_mode = ssl.CERT_NONE
        _load_client_certificate(verify, cert, key)
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = Path(user["tokenFile"]).read_text().strip()
    return Connection(
        server=str(cluster["server"]).rstrip("/"),
        verify=verify,
        token=token,
        default_namespace=ctx.get("namespace", "default"),
    )


def connection_in_cluster() -> Connection:
    host = os.environ["KUBERNETES_SERVICE_HOST"]
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    context = ssl.create_default_context(cafile=str(SERVICE_ACCOUNT_DIR / "ca.crt"))
    return Connection(
        server=f"https://{host}:{port}",
        verify=context,
        token=(SERVICE_ACCOUNT_DIR / "token").read_text().strip(),
        default_namespace=(SERVICE_ACCOUNT_DIR / "namespace").read_text().strip(),
    )


def connection_auto() -> Connection:
    """In a pod: the service account; elsewhere: the kubeconfig."""
    if os.environ.get("KUBERNETES_SERVICE_HOST") and (SERVICE_ACCOUNT_DIR / "token").exists():
        return connection_in_cluster()
    return connection_from_kubeconfig()


class KubernetesClient:
    """Async calls against one API server; one connection pool shared by all reconciles."""

    def __init__(
        self,
        connection: Connection,
        field_manager: str = "pagerbridge",
        max_connections: int = 16,
        timeout: float = 30.0,
    ) -> None:
        self.connection = connection
        self.field_manager = field_manager
        headers = {"Accept": "application/json"}
        if connection.token:
            headers["Authorization"] = f"Bearer {connection.token}"
        self._http = httpx.AsyncClient(
            base_url=connection.server,
            verify=connection.verify,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=5.0),
            # Keep every connection alive (TLS handshakes are the expensive part) ...
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )
        # ... and queue requests here rather than in httpcore's pool, whose assignment of
        # queued requests to connections costs O(queued x connections) per request.
        self._in_flight = asyncio.Semaphore(max_connections)

    async def __aenter__(self) -> KubernetesClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Obj:
        content = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": content_type} if content is not None else {}
        try:
            async with self._in_flight:
                response = await self._http.request(
                    method, path, params=params, content=content, headers=headers
                )
        except httpx.TransportError as exc:
            raise KubernetesError(f"{method} {path}: {type(exc).__name__}") from None
        if response.status_code >= 300:
            message = f"{method} {path}: HTTP {response.status_code}"
            with contextlib.suppress(ValueError):
                message += f": {response.json().get('message', '')}"
            if response.status_code == 404:
                raise NotFound(message, 404)
            if response.status_code == 409:
                raise AlreadyExists(message, 409)
            raise KubernetesError(message, response.status_code)
        result: Obj = response.json() if response.content else {}
        return result

    async def get(self, resource: Resource, namespace: str | None, name: str) -> Obj:
        return await self._request("GET", resource.path(namespace, name))

    async def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> Obj:
        params = {"labelSelector": label_selector} if label_selector else None
        return await self._request("GET", resource.path(namespace), params=params)

    async def create(self, manifest: Obj, resource: Resource | None = None) -> Obj:
        resource = resource or resource_of(manifest)
        namespace = manifest["metadata"].get("namespace")
        return await self._request(
            "POST",
            resource.path(namespace),
            params={"fieldManager": self.field_manager},
            body=manifest,
        )

    async def apply(self, manifest: Obj, resource: Resource | None = None) -> Obj:
        """Server-side apply; pagerbridge takes back any field it owns."""
        resource = resource or resource_of(manifest)
        meta = manifest["metadata"]
        return await self._request(
            "PATCH",
            resource.path(meta.get("namespace"), meta["name"]),
            params={"fieldManager": self.field_manager, "force": "true"},
            body=manifest,
            content_type="application/apply-patch+yaml",
        )

    async def merge_patch(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        patch: Obj,
        subresource: str | None = None,
    ) -> Obj:
        path = resource.path(namespace, name)
        if subresource:
            path += f"/{subresource}"
        return await self._request(
            "PATCH",
            path,
            params={"fieldManager": self.field_manager},
            body=patch,
            content_type="application/merge-patch+json",
        )

    async def replace(self, manifest: Obj, resource: Resource | None = None) -> Obj:
        resource = resource or resource_of(manifest)
        meta = manifest["metadata"]
        return await self._request(
            "PUT",
            resource.path(meta.get("namespace"), meta["name"]),
            params={"fieldManager": self.field_manager},
            body=manifest,
        )

    async def delete(self, resource: Resource, namespace: str | None, name: str) -> None:
        await self._request("DELETE", resource.path(namespace, name))

    async def watch(
        self,
        resource: Resource,
        namespace: str | None = None,
        label_selector: str | None = None,
        resource_version: str | None = None,
        timeout_seconds: int = 60,
    ) -> AsyncIterator[Obj]:
        """Watch events (dicts with ``type`` and ``object``) until the server closes."""
        params = {"watch": "true", "timeoutSeconds": str(timeout_seconds)}
        if label_selector:
            params["labelSelector"] = label_selector
        if resource_version:
            params["resourceVersion"] = resource_version
        try:
            async with self._http.stream(
                "GET",
                resource.path(namespace),
                params=params,
                timeout=httpx.Timeout(timeout_seconds + 10.0, connect=5.0),
            ) as response:
                if response.status_code >= 300:
                    raise KubernetesError(
                        f"watch {resource.plural}: HTTP {response.status_code}",
                        response.status_code,
                    )
                async for line in response.aiter_lines():
                    if line.strip():
                        yield json.loads(line)
        except httpx.TransportError as exc:
            raise KubernetesError(f"watch {resource.plural}: {type(exc).__name__}") from None
