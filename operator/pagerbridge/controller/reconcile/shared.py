"""The children of integrations that use a shared account: they live in the account
namespace, where no ownerReference can point to their namespaced integration, so the
garbage collector never deletes them. Three paths do instead:

* the integration's finalizer (and its reconcile while it is being deleted) deletes every
  child labelled with its UID (:func:`delete_children`);
* an integration refused its account (``AccountNotAllowed``: e.g. its namespace was
  relabelled out of the selector) has its relay Deployment deleted (:func:`stop_relay`);
  the ConfigMap, Service, Secrets and outbox claim stay, so work accepted but not yet
  delivered waits on the claim until the account allows the namespace again (or the
  integration is deleted);
* a periodic sweep deletes children whose tenant UID no live integration has
  (:func:`sweep`), e.g. after the finalizer was skipped.

Only objects carrying our managed-by label and a tenant UID label are ever deleted, and
the label selector is the API server's: nothing else of the account namespace is listed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Collection

from pagerbridge.clients.kubernetes import KubernetesError, NotFound, Resource
from pagerbridge.controller import names as n
from pagerbridge.controller.kube_port import KubernetesPort
from pagerbridge.controller.ownership import owned_by
from pagerbridge.controller.render.children import Owner
from pagerbridge.controller.state.observed import CHILD_KINDS, World

logger = logging.getLogger(__name__)

# Listed by label (the operator may list and watch them): children and our Secrets.
LISTED_KINDS = (*CHILD_KINDS, "Secret")
# Named like the relay, read before deletion (no list grant): exposure and fence.
NAMED_KINDS = ("Ingress", "HTTPRoute", "NetworkPolicy")


def _selector(uid: str | None = None) -> dict[str, str]:
    selector = {n.LABEL_MANAGED_BY: n.MANAGED_BY}
    if uid is not None:
        selector[n.LABEL_TENANT_UID] = uid
    return selector


async def delete_children(kube: KubernetesPort, owner: Owner) -> int:
    """Delete every child of ``owner`` in the account namespace; how many were deleted."""
    if not owner.shared:
        return 0
    namespace = owner.child_namespace
    deleted = 0
    for kind in LISTED_KINDS:
        resource = Resource.builtin(kind)
        listing = await kube.list(resource, namespace, label_selector=_selector(owner.uid))
        for item in listing.get("items", []):
            with contextlib.suppress(NotFound):
                await kube.delete(resource, namespace, str(item["metadata"]["name"]))
                deleted += 1
    for kind in NAMED_KINDS:
        resource = Resource.builtin(kind)
        try:
            current = await kube.get(resource, namespace, owner.names.relay)
            if owned_by(current, owner.uid):
                await kube.delete(resource, namespace, owner.names.relay)
                deleted += 1
        except KubernetesError:  # absent, not installed, or not granted (never made)
            continue
    if deleted:
        logger.info(
            "deleted %d child(ren) in the account namespace %s",
            deleted,
            namespace,
            extra={"object": f"{owner.namespace}/{owner.name}"},
        )
    return deleted


async def stop_relay(kube: KubernetesPort, world: World, owner: Owner) -> bool:
    """Delete the relay Deployment of an integration refused its account (ours only)."""
    deployment = world.child("Deployment", owner.namespace, owner.name)
    if deployment is None or deployment.owner_uid != owner.uid:
        return False
    with contextlib.suppress(NotFound):
        await kube.delete(Resource.builtin("Deployment"), owner.child_namespace, deployment.name)
    logger.warning(
        "relay %s/%s stopped: the integration may not use its account",
        owner.child_namespace,
        deployment.name,
        extra={"object": f"{owner.namespace}/{owner.name}"},
    )
    return True


async def sweep(kube: KubernetesPort, namespace: str, live_uids: Collection[str]) -> int:
    """Delete children in ``namespace`` whose tenant UID is not among ``live_uids``."""
    deleted = 0
    for kind in LISTED_KINDS:
        resource = Resource.builtin(kind)
        listing = await kube.list(resource, namespace, label_selector=_selector())
        for item in listing.get("items", []):
            labels = item["metadata"].get("labels") or {}
            uid = labels.get(n.LABEL_TENANT_UID)
            if not uid or uid in live_uids:
                continue
            with contextlib.suppress(NotFound):
                await kube.delete(resource, namespace, str(item["metadata"]["name"]))
                deleted += 1
                logger.info("orphan %s %s/%s deleted", kind, namespace, item["metadata"]["name"])
    return deleted
