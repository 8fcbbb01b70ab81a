"""An in-memory Kubernetes API server: the test double of the controller's Kubernetes
port (:class:`pagerbridge.controller.kube_port.KubernetesPort`) and nothing else.

Objects live in a dict; writes get a ``uid``, a ``resourceVersion`` that grows with every
write, and a ``generation`` that grows when ``spec`` changes, like the real API server.
Server-side apply is approximated by merging the applied manifest into the stored object
(enough for a single field manager); a ``metadata.uid`` in it is a precondition (409 when
the object is gone, 422 when it is another object), as on the real API server.
:class:`FakeWorld` is the operator's ``World`` read from the same objects through the
real record builders of :mod:`pagerbridge.controller.state.observed` (what the kopf indices
hold in the operator).
"""

from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from pagerbridge.api import ACCOUNT_KINDS, GROUP, INTEGRATION, KEY_OVERRIDE, TAG_MAPPING, VERSION
from pagerbridge.clients.kubernetes import (
    AlreadyExists,
    KubernetesError,
    NotFound,
    Resource,
    resource_of,
)
from pagerbridge.controller.names import LABEL_MANAGED_BY, MANAGED_BY
from pagerbridge.controller.state.observed import (
    AccountInfo,
    ChildState,
    IntegrationInfo,
    RefInfo,
    SecretState,
    account_info,
    child_state,
    integration_info,
    namespace_labels,
    ref_info,
    secret_state,
)

Obj = dict[str, Any]
Key = tuple[str, str, str | None, str]  # (api prefix, plural, namespace, name)
CUSTOM = {
    kind.kind: Resource.custom(GROUP, VERSION, kind.plural)
    for kind in (INTEGRATION, KEY_OVERRIDE, TAG_MAPPING)
} | {kind.kind: Resource(GROUP, VERSION, kind.plural, False) for kind in ACCOUNT_KINDS}


def merge(target: Obj, patch: Obj) -> Obj:
    """RFC 7386 JSON merge patch."""
    result = copy.deepcopy(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


@dataclass(frozen=True)
class Write:
    verb: str  # create, apply, patch, delete
    plural: str
    name: str
    subresource: str | None = None


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[Key, Obj] = {}
        self.writes: list[Write] = []
        self._versions = itertools.count(1)
        # pod proxy paths -> (status, JSON body) answered by request(); calls recorded
        self.proxied: dict[str, tuple[int, Any]] = {}
        self.requests: list[tuple[str, str]] = []

    # -- the port ---------------------------------------------------------------------

    async def get(self, resource: Resource, namespace: str | None, name: str) -> Obj:
        return copy.deepcopy(self._existing(resource, namespace, name))

    async def create(self, manifest: Obj, resource: Resource | None = None) -> Obj:
        resource = resource or resource_of(manifest)
        obj = copy.deepcopy(manifest)
        meta = obj.setdefault("metadata", {})
        if "name" not in meta and "generateName" in meta:
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        key = self._key(resource, meta.get("namespace"), meta["name"])
        if key in self.objects:
            raise AlreadyExists(f"{resource.plural} {meta['name']} already exists", 409)
        meta.update(uid=str(uuid.uuid4()), generation=1, creationTimestamp="2026-01-01T00:00:00Z")
        self._store(key, obj)
        self.writes.append(Write("create", resource.plural, meta["name"]))
        return copy.deepcopy(obj)

    async def apply(self, manifest: Obj, resource: Resource | None = None) -> Obj:
        resource = resource or resource_of(manifest)
        meta = manifest["metadata"]
        key = self._key(resource, meta.get("namespace"), meta["name"])
        current = self.objects.get(key)
        uid = meta.get("uid")  # a precondition, as the API server enforces it
        if uid is not None and current is None:
            raise KubernetesError(f"uid mismatch: {uid}, and no existing object was found", 409)
        if uid is not None and current is not None and current["metadata"]["uid"] != uid:
            raise KubernetesError("metadata.uid: field is immutable", 422)
        self.writes.append(Write("apply", resource.plural, meta["name"]))
        if current is None:
            return await self.create(manifest, resource)
        updated = merge(current, manifest)
        if updated.get("spec") != current.get("spec"):
            updated["metadata"]["generation"] = int(current["metadata"]["generation"]) + 1
        if updated != current:
            self._store(key, updated)
        return copy.deepcopy(self.objects[key])

    async def merge_patch(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        patch: Obj,
        subresource: str | None = None,
    ) -> Obj:
        current = self._existing(resource, namespace, name)
        expected = (patch.get("metadata") or {}).get("resourceVersion")
        if expected is not None and expected != current["metadata"]["resourceVersion"]:
            raise KubernetesError("the object has been modified", 409)
        if subresource == "status":
            updated = copy.deepcopy(current)
            updated["status"] = merge(current.get("status") or {}, patch.get("status") or {})
        else:
            updated = merge(current, {k: v for k, v in patch.items() if k != "status"})
            if updated.get("spec") != current.get("spec"):
                updated["metadata"]["generation"] = int(current["metadata"]["generation"]) + 1
        self._store(self._key(resource, namespace, name), updated)
        self.writes.append(Write("patch", resource.plural, name, subresource))
        return copy.deepcopy(updated)

    async def delete(self, resource: Resource, namespace: str | None, name: str) -> None:
        self._existing(resource, namespace, name)
        del self.objects[self._key(resource, namespace, name)]
        self.writes.append(Write("delete", resource.plural, name))

    async def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        label_selector: str | Mapping[str, str] | None = None,
    ) -> Obj:
        wanted = dict(label_selector or {}) if not isinstance(label_selector, str) else {}
        prefix = self._key(resource, namespace, "")[:3]
        items = [
            copy.deepcopy(obj)
            for key, obj in sorted(self.objects.items(), key=lambda kv: kv[0][3])
            if key[:3] == prefix
            and wanted.items() <= ((obj["metadata"].get("labels") or {}).items())
        ]
        return {"items": items, "metadata": {"resourceVersion": "1"}}

    async def request(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        """A pod's ``proxy`` subresource answers what :attr:`proxied` holds for the path
        (status, JSON body), else 503 as the API server does for an unreachable pod."""
        status, body = self.proxied.get(path, (503, {"kind": "Status", "code": 503}))
        self.requests.append((method, path))
        return httpx.Response(status, json=body)

    # -- for tests --------------------------------------------------------------------

    async def server_version(self) -> str:
        return "v0.0.0-fake"

    def put(self, manifest: Obj, namespace: str) -> Obj:
        """Store an object as a user's ``kubectl apply`` would (no recorded write)."""
        obj = copy.deepcopy(manifest)
        meta = obj.setdefault("metadata", {})
        meta["namespace"] = namespace
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("generation", 1)
        meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        self._store(self._key(self.resource(obj["kind"]), namespace, meta["name"]), obj)
        return obj

    def find(self, kind: str, namespace: str, name: str) -> Obj | None:
        return self.objects.get(self._key(self.resource(kind), namespace, name))

    def all(self, kind: str, namespace: str) -> list[Obj]:
        resource = self.resource(kind)
        return [
            obj
            for (prefix, plural, ns, _), obj in sorted(self.objects.items(), key=lambda i: i[0])
            if (prefix, plural, ns) == (resource.prefix, resource.plural, namespace)
        ]

    @staticmethod
    def resource(kind: str) -> Resource:
        return CUSTOM.get(kind) or Resource.builtin(kind)

    def _key(self, resource: Resource, namespace: str | None, name: str) -> Key:
        return (resource.prefix, resource.plural, namespace, name)

    def _existing(self, resource: Resource, namespace: str | None, name: str) -> Obj:
        obj = self.objects.get(self._key(resource, namespace, name))
        if obj is None:
            raise NotFound(f"{resource.plural} {name} not found", 404)
        return obj

    def _store(self, key: Key, obj: Obj) -> None:
        obj["metadata"]["resourceVersion"] = str(next(self._versions))
        self.objects[key] = obj


class FakeWorld:
    """``World`` over the fake's objects (what the kopf indices would hold)."""

    def __init__(self, kube: FakeKube) -> None:
        self.kube = kube

    def integration(self, namespace: str, name: str) -> IntegrationInfo | None:
        obj = self.kube.find(INTEGRATION.kind, namespace, name)
        return None if obj is None else integration_info(obj)

    def refs_to(self, kind: str, namespace: str, integration: str) -> list[RefInfo]:
        refs = [ref_info(kind, obj) for obj in self.kube.all(kind, namespace)]
        return sorted((r for r in refs if r.integration == integration), key=lambda r: r.name)

    def ref(self, kind: str, namespace: str, name: str) -> RefInfo | None:
        obj = self.kube.find(kind, namespace, name)
        return None if obj is None else ref_info(kind, obj)

    def secret(self, namespace: str, name: str) -> SecretState | None:
        """Only the operator's own (labelled) Secrets: the operator's watch has a
        server-side label selector, so user Secrets never reach its index."""
        obj = self.kube.find("Secret", namespace, name)
        labels = (obj or {}).get("metadata", {}).get("labels") or {}
        if obj is None or labels.get(LABEL_MANAGED_BY) != MANAGED_BY:
            return None
        return secret_state(obj)

    def child(self, kind: str, namespace: str, owner: str) -> ChildState | None:
        """Wherever it is: the integration's namespace or (shared account) another."""
        resource = self.kube.resource(kind)
        for (prefix, plural, _, _), obj in sorted(self.kube.objects.items(), key=lambda i: i[0]):
            if (prefix, plural) != (resource.prefix, resource.plural):
                continue
            state = child_state(kind, obj)
            if (
                state is not None
                and state.owner == owner
                and ((state.owner_namespace or state.namespace) == namespace)
            ):
                return state
        return None

    def account(self, kind: str, name: str) -> AccountInfo | None:
        obj = self.kube.find(kind, None, name)  # type: ignore[arg-type]
        return None if obj is None else account_info(kind, obj)

    def namespace_labels(self, name: str) -> Mapping[str, str] | None:
        obj = self.kube.find("Namespace", None, name)  # type: ignore[arg-type]
        return None if obj is None else namespace_labels(obj)

    def integrations(self) -> list[IntegrationInfo]:
        resource = self.kube.resource(INTEGRATION.kind)
        return [
            integration_info(obj)
            for (prefix, plural, _, _), obj in sorted(self.kube.objects.items(), key=lambda i: i[0])
            if (prefix, plural) == (resource.prefix, resource.plural)
        ]
