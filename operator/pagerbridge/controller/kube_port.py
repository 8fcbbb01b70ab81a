"""The few Kubernetes API verbs the controller uses: a port, so the reconciler depends on
this shape and not on one client. :class:`pagerbridge.clients.kubernetes.KubernetesClient`
implements it; unit tests pass an in-memory fake of the API server."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import httpx

from pagerbridge.clients.kubernetes import Resource

Obj = dict[str, Any]


class KubernetesPort(Protocol):
    async def get(self, resource: Resource, namespace: str | None, name: str) -> Obj: ...

    async def create(self, manifest: Obj, resource: Resource | None = None) -> Obj: ...

    async def apply(self, manifest: Obj, resource: Resource | None = None) -> Obj: ...

    async def merge_patch(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        patch: Obj,
        subresource: str | None = None,
    ) -> Obj: ...

    async def delete(self, resource: Resource, namespace: str | None, name: str) -> None: ...

    async def server_version(self) -> str: ...

    async def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        label_selector: str | Mapping[str, str] | None = None,
    ) -> Obj: ...

    async def request(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response: ...
