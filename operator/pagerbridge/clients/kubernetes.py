"""The Kubernetes verbs PagerBridge uses, on lightkube: get, list, create, apply, patch,
replace, delete, watch.

Why lightkube: it is built on httpx (the stack of our PagerDuty and BigPanda clients and of
the relay: one HTTP library, one set of timeouts and errors), typed, maintained, and its
generic resources keep objects as plain dicts (no model conversion per call at scale).
kubernetes_asyncio would bring aiohttp and a generated client of the whole API; kr8s a
second object model and its own kubeconfig reader. What lightkube does not read from a
kubeconfig (several ``KUBECONFIG`` files, ``proxy-url``, ``tls-server-name``, exec plugin
expiry, relative ``tokenFile``) :mod:`.kubeconfig` reads, and it is handed to lightkube as
an httpx transport (TLS context, proxy, :class:`~.kube_auth.AuthTransport`).

This module is the port: callers see dicts, :class:`Resource` and the errors below, never a
lightkube type, so the library could be swapped here alone.

The operator applies its children with server-side apply (``fieldManager=pagerbridge``,
``force=true``): the API server merges, a no-op apply writes nothing, and a hand-edited field
owned by pagerbridge is taken back.

Failures raise :class:`KubernetesError` with the HTTP status (404 → :class:`NotFound`,
409 → :class:`AlreadyExists`/conflict); transport failures raise ``KubernetesError`` with
status None. Messages hold the verb, the resource and the server's message, never a
credential.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx
from lightkube import ApiError, AsyncClient
from lightkube.config.kubeconfig import KubeConfig
from lightkube.config.models import Cluster, User
from lightkube.core.exceptions import NotReadyError
from lightkube.generic_resource import create_global_resource, create_namespaced_resource
from lightkube.types import PatchType

from pagerbridge.clients._asynclib import lean_transport
from pagerbridge.clients.kube_auth import AuthTransport, KubeconfigError
from pagerbridge.clients.kubeconfig import Credentials, load_credentials

__all__ = [
    "AlreadyExists",
    "Credentials",
    "KubeconfigError",
    "KubernetesClient",
    "KubernetesError",
    "NotFound",
    "Obj",
    "Resource",
    "load_credentials",
    "resource_of",
]

# kind -> (group, version, plural) for the built-in kinds PagerBridge touches.
BUILTIN: dict[str, tuple[str, str, str]] = {
    "ConfigMap": ("", "v1", "configmaps"),
    "Secret": ("", "v1", "secrets"),
    "Pod": ("", "v1", "pods"),
    "Service": ("", "v1", "services"),
    "PersistentVolumeClaim": ("", "v1", "persistentvolumeclaims"),
    "Event": ("", "v1", "events"),
    "Namespace": ("", "v1", "namespaces"),
    "Deployment": ("apps", "v1", "deployments"),
    "PodDisruptionBudget": ("policy", "v1", "poddisruptionbudgets"),
    "Lease": ("coordination.k8s.io", "v1", "leases"),
    "Ingress": ("networking.k8s.io", "v1", "ingresses"),
    "NetworkPolicy": ("networking.k8s.io", "v1", "networkpolicies"),
    # Not built in: the Gateway API's CRD (spec.relay.expose.httpRoute), when installed.
    "HTTPRoute": ("gateway.networking.k8s.io", "v1", "httproutes"),
}
CLUSTER_SCOPED = {"Namespace"}

Obj = dict[str, Any]


class KubernetesError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotFound(KubernetesError):
    pass


class AlreadyExists(KubernetesError):
    pass


@functools.cache
def _generic(group: str, version: str, plural: str, namespaced: bool) -> Any:
    # lightkube registers generic kinds by (group/version, kind); the plural names them
    # uniquely and is all the URL needs.
    kind = f"PagerBridge_{plural}"
    if namespaced:
        return create_namespaced_resource(group, version, kind, plural)
    return create_global_resource(group, version, kind, plural)


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the API: its group, version and plural."""

    group: str
    version: str
    plural: str
    namespaced: bool = True

    @property
    def prefix(self) -> str:
        """``/api/v1`` or ``/apis/GROUP/VERSION``."""
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        path = self.prefix
        if namespace is not None and self.namespaced:
            path += f"/namespaces/{quote(namespace)}"
        path += f"/{self.plural}"
        if name is not None:
            path += f"/{quote(name)}"
        return path

    @property
    def lightkube(self) -> Any:
        return _generic(self.group, self.version, self.plural, self.namespaced)

    @classmethod
    def builtin(cls, kind: str) -> Resource:
        group, version, plural = BUILTIN[kind]
        return cls(group, version, plural, kind not in CLUSTER_SCOPED)

    @classmethod
    def custom(cls, group: str, version: str, plural: str) -> Resource:
        return cls(group, version, plural)


def resource_of(manifest: Mapping[str, Any]) -> Resource:
    return Resource.builtin(str(manifest["kind"]))


def _selector(label_selector: str | Mapping[str, str] | None) -> dict[str, Any] | None:
    """``a=b,c=d`` (equality only, all PagerBridge needs) as lightkube's mapping."""
    if label_selector is None or isinstance(label_selector, Mapping):
        return dict(label_selector) if label_selector else None
    pairs: dict[str, Any] = {}
    for term in filter(None, (t.strip() for t in label_selector.split(","))):
        key, sep, value = term.partition("=")
        if not sep or key.endswith("!"):
            raise ValueError(f"only equality label selectors are supported: {term!r}")
        pairs[key.strip()] = value.lstrip("=").strip()
    return pairs


class KubernetesClient:
    """Async calls against one API server; one connection pool shared by all reconciles."""

    def __init__(
        self,
        credentials: Credentials | None = None,
        field_manager: str = "pagerbridge",
        max_connections: int = 16,
        timeout: float = 30.0,
        on_request: Callable[[httpx.Request], None] | None = None,
    ) -> None:
        """``on_request`` sees every request before it is sent, e.g. to count them."""
        self.credentials = credentials or load_credentials()
        self.field_manager = field_manager
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        # Keep every connection alive (TLS handshakes are the expensive part) ...
        transport: httpx.AsyncBaseTransport = AuthTransport(
            lean_transport(  # a cheaper keep-alive check per pooled connection and request
                httpx.AsyncHTTPTransport(
                    verify=self.credentials.ssl_context,
                    proxy=self.credentials.proxy_url,
                    limits=limits,
                )
            ),
            self.credentials.auth,
        )
        if on_request is not None:
            transport = _ObservedTransport(transport, on_request)
        # For the few calls outside lightkube's resource model (/version), same pool.
        self._http = httpx.AsyncClient(
            base_url=self.credentials.server,
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=5.0),
        )
        config = KubeConfig.from_one(
            cluster=Cluster(server=self.credentials.server),
            user=User(),  # authentication is the transport's
            namespace=self.credentials.default_namespace,
        )
        self._lk = AsyncClient(
            config=config,
            timeout=httpx.Timeout(timeout, connect=5.0),
            field_manager=field_manager,
            trust_env=False,
            transport=transport,
        )
        # ... and queue requests here rather than in httpcore's pool, whose assignment of
        # queued requests to connections costs O(queued x connections) per request.
        self._in_flight = asyncio.Semaphore(max_connections)

    @property
    def default_namespace(self) -> str:
        return self.credentials.default_namespace

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
        await self._lk.close()
        await self._http.aclose()

    async def server_version(self) -> str:
        """The API server's ``gitVersion``: proves it is reachable and takes our credentials."""
        try:
            response = await self._http.get("/version")
        except (httpx.HTTPError, KubeconfigError) as exc:
            raise self._error(f"GET {self.credentials.server}/version", exc) from None
        if response.status_code >= 300:
            raise KubernetesError(
                f"GET {self.credentials.server}/version: HTTP {response.status_code}",
                response.status_code,
            )
        return str(response.json().get("gitVersion", "unknown"))

    async def request(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        """A raw call to the API server, e.g. through a pod's ``proxy`` subresource. Transport
        failures raise :class:`KubernetesError`; the HTTP status is the caller's to read."""
        try:
            async with self._in_flight:
                return await self._http.request(
                    method, path, headers=dict(headers or {}), content=content
                )
        except (httpx.HTTPError, KubeconfigError) as exc:
            raise self._error(f"{method} {self.credentials.server}{path}", exc) from None

    @staticmethod
    def _error(what: str, exc: Exception) -> KubernetesError:
        if isinstance(exc, ApiError):
            code = exc.status.code
            message = f"{what}: HTTP {code}: {exc.status.message or ''}".rstrip(": ")
            if code == 404:
                return NotFound(message, 404)
            if code == 409:
                return AlreadyExists(message, 409)
            return KubernetesError(message, code)
        if isinstance(exc, httpx.HTTPStatusError):
            code = exc.response.status_code
            cls = NotFound if code == 404 else AlreadyExists if code == 409 else KubernetesError
            return cls(f"{what}: HTTP {code}", code)
        if isinstance(exc, KubeconfigError):
            return KubernetesError(f"{what}: {exc}", 401)
        detail = str(exc)[:200]  # transport errors name hosts, never credentials
        return KubernetesError(f"{what}: {type(exc).__name__}" + (f": {detail}" if detail else ""))

    async def _call(self, what: str, call: Any) -> Obj:
        try:
            async with self._in_flight:
                result = await call
        except (httpx.HTTPError, KubeconfigError) as exc:
            raise self._error(what, exc) from None
        return {} if result is None else _plain(result)

    @staticmethod
    def _ns(resource: Resource, namespace: str | None) -> dict[str, Any]:
        return {"namespace": namespace} if resource.namespaced else {}

    async def get(self, resource: Resource, namespace: str | None, name: str) -> Obj:
        return await self._call(
            f"GET {resource.plural}/{name}",
            self._lk.get(resource.lightkube, name, **self._ns(resource, namespace)),
        )

    async def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        label_selector: str | Mapping[str, str] | None = None,
    ) -> Obj:
        """``{"items": [...], "metadata": {"resourceVersion": ...}}`` like the API's list."""
        listing = self._lk.list(
            resource.lightkube,
            namespace=namespace if resource.namespaced else None,
            labels=_selector(label_selector),
        )

        async def collect() -> Obj:
            items = [_plain(item) async for item in listing]
            try:
                version: str | None = listing.resourceVersion
            except NotReadyError:
                version = None
            return {"items": items, "metadata": {"resourceVersion": version}}

        return await self._call(f"LIST {resource.plural}", collect())

    async def create(self, manifest: Obj, resource: Resource | None = None) -> Obj:
        resource = resource or resource_of(manifest)
        meta = manifest["metadata"]
        return await self._call(
            f"POST {resource.plural}",
            self._lk.create(
                resource.lightkube(manifest),
                **self._ns(resource, meta.get("namespace")),
            ),
        )

    async def apply(self, manifest: Obj, resource: Resource | None = None) -> Obj:
        """Server-side apply; pagerbridge takes back any field it owns."""
        resource = resource or resource_of(manifest)
        meta = manifest["metadata"]
        return await self._call(
            f"APPLY {resource.plural}/{meta['name']}",
            self._lk.patch(
                resource.lightkube,
                meta["name"],
                manifest,
                patch_type=PatchType.APPLY,
                field_manager=self.field_manager,
                force=True,
                **self._ns(resource, meta.get("namespace")),
            ),
        )

    async def merge_patch(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        patch: Obj,
        subresource: str | None = None,
    ) -> Obj:
        target = resource.lightkube
        if subresource == "status":
            target = target.Status
        elif subresource:
            raise ValueError(f"unsupported subresource {subresource!r}")
        return await self._call(
            f"PATCH {resource.plural}/{name}" + (f"/{subresource}" if subresource else ""),
            self._lk.patch(
                target,
                name,
                patch,
                patch_type=PatchType.MERGE,
                **self._ns(resource, namespace),
            ),
        )

    async def replace(self, manifest: Obj, resource: Resource | None = None) -> Obj:
        resource = resource or resource_of(manifest)
        meta = manifest["metadata"]
        return await self._call(
            f"PUT {resource.plural}/{meta['name']}",
            self._lk.replace(
                resource.lightkube(manifest), **self._ns(resource, meta.get("namespace"))
            ),
        )

    async def delete(self, resource: Resource, namespace: str | None, name: str) -> None:
        await self._call(
            f"DELETE {resource.plural}/{name}",
            self._lk.delete(resource.lightkube, name, **self._ns(resource, namespace)),
        )

    async def watch(
        self,
        resource: Resource,
        namespace: str | None = None,
        label_selector: str | None = None,
        resource_version: str | None = None,
        timeout_seconds: int = 60,
    ) -> AsyncIterator[Obj]:
        """Watch events (dicts with ``type`` and ``object``) for ``timeout_seconds``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_seconds
        events: Any = self._lk.watch(
            resource.lightkube,
            namespace=namespace,
            labels=_selector(label_selector),
            resource_version=resource_version,
            server_timeout=timeout_seconds,
        ).__aiter__()
        try:
            while (remaining := deadline - loop.time()) > 0:
                try:
                    async with asyncio.timeout(remaining):
                        kind, obj = await anext(events)
                except TimeoutError:
                    return
                except StopAsyncIteration:
                    return
                except (httpx.HTTPError, KubeconfigError) as exc:
                    raise self._error(f"WATCH {resource.plural}", exc) from None
                yield {"type": kind, "object": _plain(obj)}
        finally:
            await events.aclose()


class _ObservedTransport(httpx.AsyncBaseTransport):
    """Hands each request to an observer before sending it (shared, like the transport)."""

    def __init__(
        self, inner: httpx.AsyncBaseTransport, observe: Callable[[httpx.Request], None]
    ) -> None:
        self._inner = inner
        self._observe = observe

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._observe(request)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __deepcopy__(self, memo: dict[int, Any]) -> _ObservedTransport:
        return self  # see AuthTransport.__deepcopy__


def _plain(obj: Any) -> Obj:
    if hasattr(obj, "to_dict"):
        result: Obj = obj.to_dict()
        return result
    return dict(obj)
