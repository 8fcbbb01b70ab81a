"""How the day-2 commands (``pagerbridge outbox``, ``pagerbridge test-incident``) reach a
running relay from wherever ``kubectl`` works.

By default through the API server: ``GET /api/v1/namespaces/NS/pods/POD:PORT/proxy/PATH``
on a Ready relay pod (RBAC: ``get`` on ``pods/proxy`` in the integration's namespace, plus
``list`` on ``pods``), so neither the internal port nor a port-forward has to be exposed.
With ``--url`` the command talks to the given base URL directly instead (a
``kubectl port-forward``, a dev machine, the dev kit's harness kubelet).

Secrets the commands need (the admin token, the inbound webhook token, the PagerDuty API
key) are read through the API server with the caller's own credentials: whoever may read
Secrets in the namespace may use them, nobody else. Values are never printed.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from pagerbridge.api.contract import (
    RELAY_INTERNAL_PORT,
    RELAY_INTERNAL_PORT_NAME,
    RELAY_PUBLIC_PORT,
)
from pagerbridge.clients.kubernetes import KubernetesClient, KubernetesError, NotFound, Resource
from pagerbridge.controller import names as n

SECRETS = Resource.builtin("Secret")
PODS = Resource("", "v1", "pods")


class RelayAccessError(Exception):
    """The relay (or what the command needs to reach it) cannot be reached; the message says
    what to fix."""


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any  # decoded JSON, or the text when the answer is not JSON

    def message(self) -> str:
        if isinstance(self.body, dict) and "message" in self.body:
            return str(self.body["message"])
        return str(self.body)[:300]


async def secret_value(kube: KubernetesClient, namespace: str, name: str, key: str) -> str:
    """The newest (last) line of a Secret's key (tokens hold old and new during rotation)."""
    try:
        secret = await kube.get(SECRETS, namespace, name)
    except NotFound:
        raise RelayAccessError(f"Secret {namespace}/{name} not found") from None
    except KubernetesError as exc:
        raise RelayAccessError(f"cannot read Secret {namespace}/{name}: {exc}") from None
    raw = (secret.get("data") or {}).get(key)
    if raw is None:
        raise RelayAccessError(f"Secret {namespace}/{name} has no key {key!r}")
    lines = base64.b64decode(raw).decode("utf-8", "replace").split()
    if not lines:
        raise RelayAccessError(f"Secret {namespace}/{name} key {key!r} is empty")
    return lines[-1]


def _ready(pod: dict[str, Any]) -> bool:
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    status = pod.get("status") or {}
    conditions = status.get("conditions") or []
    return status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in conditions
    )


async def ready_relay_pod(
    kube: KubernetesClient, namespace: str, integration: str
) -> dict[str, Any]:
    """A Ready relay pod of the integration (the first by name)."""
    names = n.ChildNames(integration)
    try:
        listing = await kube.list(PODS, namespace, label_selector=n.selector_labels(names))
    except KubernetesError as exc:
        raise RelayAccessError(
            f"cannot list the relay pods of {namespace}/{integration}: {exc}"
        ) from None
    pods = [p for p in listing.get("items", []) if _ready(p)]
    if not pods:
        raise RelayAccessError(
            f"no Ready relay pod of {namespace}/{integration} (Deployment {names.relay}); "
            "check `kubectl get pdi` and the relay's pods, or pass --url"
        )
    pod: dict[str, Any] = min(pods, key=lambda p: str(p["metadata"]["name"]))
    return pod


def container_port(pod: dict[str, Any], name: str, default: int) -> int:
    """The number of the relay container's port ``name`` (the rendered one), else ``default``."""
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == name and isinstance(port.get("containerPort"), int):
                return int(port["containerPort"])
    return default


@dataclass
class RelayPort:
    """One port of one relay: a direct base URL, or a pod reached through the API server."""

    kube: KubernetesClient
    namespace: str
    port: int
    base_url: str | None = None
    pod: str | None = None

    def where(self) -> str:
        if self.base_url is not None:
            return self.base_url
        return f"pod {self.namespace}/{self.pod}:{self.port} (API server proxy)"

    async def call(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> Reply:
        try:
            if self.base_url is not None:
                async with httpx.AsyncClient(timeout=30.0) as http:
                    response = await http.request(
                        method,
                        self.base_url.rstrip("/") + path,
                        headers=dict(headers or {}),
                        content=content,
                    )
            else:
                pod = quote(self.pod or "", safe="")
                proxy = f"{PODS.path(self.namespace)}/{pod}:{self.port}/proxy{path}"
                response = await self.kube.request(method, proxy, headers, content)
        except (httpx.HTTPError, KubernetesError) as exc:
            raise RelayAccessError(f"cannot reach the relay at {self.where()}: {exc}") from None
        try:
            body: Any = response.json()
        except (ValueError, json.JSONDecodeError):
            body = response.text
        return Reply(response.status_code, body)


async def relay_port(
    kube: KubernetesClient,
    namespace: str,
    integration: str,
    port_name: str,
    url: str | None,
) -> RelayPort:
    """Port ``port_name`` (``http`` or ``internal``) of the integration's relay: ``url`` when
    given, else a Ready pod through the API server."""
    default = RELAY_INTERNAL_PORT if port_name == RELAY_INTERNAL_PORT_NAME else RELAY_PUBLIC_PORT
    if url:
        return RelayPort(kube, namespace, default, base_url=url)
    pod = await ready_relay_pod(kube, namespace, integration)
    number = container_port(pod, port_name, default)
    return RelayPort(kube, namespace, number, pod=str(pod["metadata"]["name"]))
