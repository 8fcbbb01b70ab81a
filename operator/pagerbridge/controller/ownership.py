"""Never adopt: what proves an object is ours, and the one way children are written.

A name alone proves nothing: a user's ConfigMap may be called ``payments-relay``, another
tenant's BigPanda integration may carry the name we would derive, and a PagerDuty
subscription may deliver to the same URL and service. So every write goes through a
proof of ownership, and an object that fails it is reported (reason ``NameConflict``)
and left exactly as it is, never patched, never deleted, never garbage-collected:

* **Kubernetes children** (every kind the reconciler renders: ConfigMap, Service, PVC,
  Deployment, Secrets, and whatever kinds are added later through :func:`write_child`):
  ours when an ``ownerReference`` carries the integration's UID. Absent children are
  created with ``POST`` (a 409 means someone was first: read it, check the owner);
  children we know are updated by server-side apply whose body carries the object's
  ``metadata.uid``, a precondition the API server enforces (an object deleted and
  recreated by someone else in between answers 409/422 and is not touched). No
  read-then-force: a create race between two operators or replicas cannot take over.
  The ``Update`` field-manager entry a ``POST`` records is converted to our ``Apply`` entry
  right after creation (as ``kubectl``'s client-side-apply upgrade does), so fields later
  dropped from the rendered manifest are pruned by the next apply.
* **External objects** carry an :class:`OwnerStamp`: the cluster's identity (the
  ``kube-system`` Namespace UID, or ``PAGERBRIDGE_CLUSTER_ID``) and the integration's UID,
  in a field the service documents and returns: a PagerDuty subscription's
  ``description``, a header of each BigPanda Webhook v2 event (``headers``). Only an
  object whose stamp is ours is PATCHed or DELETEd (see :mod:`.subscription` and
  :mod:`.bigpanda_integration` for how objects created before stamps existed are
  recognised).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pagerbridge.api import INTEGRATION
from pagerbridge.clients.kubernetes import (
    AlreadyExists,
    KubernetesError,
    NotFound,
    Resource,
    resource_of,
)
from pagerbridge.controller import names as n
from pagerbridge.controller.errors import NameConflict
from pagerbridge.controller.kube_port import KubernetesPort

logger = logging.getLogger(__name__)

Obj = dict[str, Any]

STAMP_PREFIX = "pagerbridge-owner="
_STAMP = re.compile(r"pagerbridge-owner=(?P<cluster>[A-Za-z0-9._:-]*)/(?P<uid>[A-Za-z0-9-]+)")


@dataclass(frozen=True)
class OwnerStamp:
    """Who made an external object: this cluster and this integration (by UID)."""

    cluster: str
    uid: str

    @property
    def text(self) -> str:
        return f"{STAMP_PREFIX}{self.cluster}/{self.uid}"

    @property
    def value(self) -> str:
        """The stamp without its prefix (a header value)."""
        return f"{self.cluster}/{self.uid}"

    @classmethod
    def find(cls, text: str | None) -> OwnerStamp | None:
        """The stamp written into ``text`` (a description, a header string), if any."""
        match = _STAMP.search(text or "")
        return cls(match["cluster"], match["uid"]) if match else None


def owner_uids(obj: Mapping[str, Any]) -> list[str]:
    """UIDs of the PagerDutyIntegrations named in ``obj``'s ownerReferences."""
    meta = obj.get("metadata") or {}
    return [
        str(ref.get("uid", ""))
        for ref in meta.get("ownerReferences") or []
        if ref.get("kind") == INTEGRATION.kind
        and str(ref.get("apiVersion", "")).startswith("pagerbridge.io/")
    ]


def owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    """An ownerReference to the integration, or (a child in the account namespace, where
    none can point to it) its UID in our tenant label and our managed-by label."""
    if not uid:
        return False
    labels = (obj.get("metadata") or {}).get("labels") or {}
    if labels.get(n.LABEL_TENANT_UID) == uid and labels.get(n.LABEL_MANAGED_BY) == n.MANAGED_BY:
        return True
    return uid in owner_uids(obj)


def conflict(kind: str, namespace: str, name: str, owner: str) -> NameConflict:
    return NameConflict(
        f"{kind} {namespace}/{name} already exists and is not owned by PagerDutyIntegration "
        f"{owner}: it is left untouched; delete or rename it, or rename the integration"
    )


async def write_child(
    kube: KubernetesPort, manifest: Obj, uid: str, known_uid: str | None = None
) -> Obj:
    """Create ``manifest`` if absent, or apply it to the object we own; never adopt.

    ``known_uid``: the UID of the object as observed owned by us (None: not known to be
    ours, e.g. absent from our index). Raises :class:`NameConflict` when the name is
    taken by an object without our ownerReference (``uid``).
    """
    meta = manifest["metadata"]
    kind, namespace, name = str(manifest["kind"]), str(meta["namespace"]), str(meta["name"])
    resource = resource_of(manifest)
    if known_uid is None:
        try:
            created = await kube.create(manifest, resource)
        except AlreadyExists:
            current = await _get(kube, resource, namespace, name)
            if current is None or not owned_by(current, uid):
                raise conflict(kind, namespace, name, str(_owner_name(manifest))) from None
            known_uid = str(current["metadata"]["uid"])
        else:
            return await _as_applied(kube, resource, created)
    body = {**manifest, "metadata": {**meta, "uid": known_uid}}
    try:
        return await kube.apply(body, resource)
    except KubernetesError as exc:
        # 409 "uid mismatch" (gone) or 422 "uid immutable" (replaced by another object):
        # either way not the object we own any more; the next reconcile looks again.
        if exc.status in (409, 422):
            raise conflict(kind, namespace, name, str(_owner_name(manifest))) from None
        raise


async def _get(kube: KubernetesPort, resource: Resource, namespace: str, name: str) -> Obj | None:
    try:
        return await kube.get(resource, namespace, name)
    except NotFound:
        return None


def _owner_name(manifest: Obj) -> str:
    annotations = manifest["metadata"].get("annotations") or {}
    if n.ANNOTATION_TENANT_NAME in annotations:
        labels = manifest["metadata"].get("labels") or {}
        return f"{labels.get(n.LABEL_TENANT_NAMESPACE, '')}/{annotations[n.ANNOTATION_TENANT_NAME]}"
    for ref in manifest["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == INTEGRATION.kind:
            return str(ref.get("name", ""))
    return ""


async def _as_applied(kube: KubernetesPort, resource: Resource, created: Obj) -> Obj:
    """Turn the ``Update`` managedFields entry a POST recorded into our ``Apply`` entry,
    so the next server-side apply prunes what the rendered manifest no longer sets.

    Best effort: the object is ours either way; a failure only leaves such fields behind.
    """
    meta = created.get("metadata") or {}
    entries = meta.get("managedFields") or []
    converted = [
        {k: v for k, v in entry.items() if k != "time"} | {"operation": "Apply"}
        for entry in entries
        if entry.get("operation") == "Update"
        and entry.get("manager") == n.FIELD_MANAGER
        and not entry.get("subresource")
    ]
    if not converted or len(converted) != len(entries):
        return created
    patch = {"metadata": {"managedFields": converted, "resourceVersion": meta["resourceVersion"]}}
    try:
        return await kube.merge_patch(resource, meta.get("namespace"), str(meta["name"]), patch)
    except KubernetesError as exc:
        logger.info("managedFields of %s/%s not converted: %s", resource.plural, meta["name"], exc)
        return created


async def cluster_identity(kube: KubernetesPort, configured: str) -> str:
    """This cluster's identity for ownership stamps, read once at start: ``configured``
    (``PAGERBRIDGE_CLUSTER_ID``), else the ``kube-system`` Namespace UID, else empty.

    It must stay the same for the life of the objects it stamps: an operator that could
    read ``kube-system`` once and cannot any more would stop recognising them (pin it
    with ``PAGERBRIDGE_CLUSTER_ID`` when RBAC may change).
    """
    if configured:
        return configured
    try:
        namespace = await kube.get(Resource.builtin("Namespace"), None, "kube-system")
    except KubernetesError as exc:  # e.g. 403: RBAC without get on namespaces/kube-system
        logger.warning(
            "cluster identity: Namespace kube-system not readable (HTTP %s); ownership "
            "stamps carry no cluster part. Set PAGERBRIDGE_CLUSTER_ID to pin one",
            exc.status,
        )
        return ""
    return str((namespace.get("metadata") or {}).get("uid", ""))
