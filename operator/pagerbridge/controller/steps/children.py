"""Reconcile step: the children in the cluster (ConfigMap, Service, PVC, relay Deployment,
and the generated inbound token Secret).

Children are never adopted: every one is written through :func:`.ownership.write_child`
(created if absent, applied only to the object carrying our ownerReference), so a kind
added to the rendered children inherits the rule. Children are server-side applied, but
only when the rendered manifest or the child's ``resourceVersion`` (a Deployment: its
``generation``) changed since our last apply, so a quiet operator writes nothing; the
periodic resync applies regardless. :func:`relay` returns ``RelayAvailable`` and
``status.relay`` (a :class:`~pagerbridge.api.integration.RelayStatus`) from the observed
Deployment.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pagerbridge.api import ConditionReason as Reason
from pagerbridge.api import PagerDutyIntegrationSpec
from pagerbridge.api.integration import RelayStatus
from pagerbridge.clients.kubernetes import NotFound, Resource
from pagerbridge.controller.errors import NameConflict
from pagerbridge.controller.metrics import APPLIES, RECONCILE_ERRORS
from pagerbridge.controller.ownership import write_child
from pagerbridge.controller.render import conditions as c
from pagerbridge.controller.render.children import Owner, service_url
from pagerbridge.controller.render.conditions import ConditionUpdate
from pagerbridge.controller.state.observed import World, relay_state
from pagerbridge.controller.steps.context import Context, StepResult
from pagerbridge.controller.steps.generated_secrets import ensure_admin_secret, ensure_token_secret

SECRETS = Resource.builtin("Secret")
RELAY_CONDITION_STATUS = {
    Reason.RELAY_READY: c.TRUE,
    Reason.RELAY_STARTING: c.UNKNOWN,
    Reason.RELAY_UNAVAILABLE: c.FALSE,
}


@dataclass(frozen=True)
class RelayResult(StepResult):
    relay: RelayStatus | None = None  # None without a valid spec (no addresses to give)


def _digest(manifest: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


async def apply(ctx: Context, manifests: list[dict[str, Any]], *, force: bool) -> StepResult:
    """Apply what changed: the Deployment last, once what it mounts exists and is ours.

    A name taken by an object that is not ours (see :mod:`.ownership`) is left untouched
    and reported: ``RelayAvailable`` False with reason ``NameConflict``; the Deployment is
    then not written (it would mount or expose the other object).
    """
    first = [m for m in manifests if m["kind"] != "Deployment"]
    last = [m for m in manifests if m["kind"] == "Deployment"]
    token_seen = "bigPandaWebhook" in ctx.info.status
    outcomes = await asyncio.gather(
        ensure_token_secret(ctx, token_seen),
        ensure_admin_secret(ctx),
        *(_apply_one(ctx, m, force) for m in first),
        return_exceptions=True,
    )
    conflicts = [o for o in outcomes if isinstance(o, NameConflict)]
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not isinstance(outcome, NameConflict):
            raise outcome
    if not conflicts:
        for manifest in last:
            try:
                await _apply_one(ctx, manifest, force)
            except NameConflict as exc:
                conflicts.append(exc)
    if not conflicts:
        return StepResult()
    RECONCILE_ERRORS.labels(Reason.NAME_CONFLICT).inc(len(conflicts))
    message = "; ".join(exc.message for exc in conflicts)
    condition = ConditionUpdate(c.RELAY_AVAILABLE, c.FALSE, Reason.NAME_CONFLICT, message)
    return StepResult(condition, retry=conflicts[0].retry_after)


async def _apply_one(ctx: Context, manifest: dict[str, Any], force: bool) -> None:
    owner, memory = ctx.owner, ctx.memory
    kind = str(manifest["kind"])
    digest = _digest(manifest)
    observed = ctx.world.child(kind, owner.namespace, owner.name)
    if observed is not None and (
        observed.owner_uid != owner.uid or observed.name != manifest["metadata"]["name"]
    ):
        observed = None  # e.g. a child of a deleted namesake: not ours
    if not force and observed is not None:
        marker = str(observed.generation) if kind == "Deployment" else observed.resource_version
        if memory.applied.get(kind) == (digest, marker):
            return
    result = await write_child(
        ctx.kube, manifest, owner.uid, observed.uid if observed and observed.uid else None
    )
    APPLIES.labels(kind).inc()
    if kind == "Deployment" and observed is None and memory.relay_created is None:
        memory.relay_created = time.monotonic()
    meta = result["metadata"]
    marker = str(meta.get("generation")) if kind == "Deployment" else str(meta["resourceVersion"])
    memory.applied[kind] = (digest, marker)


async def remove(ctx: Context, kinds: list[str]) -> None:
    """Delete children of ``kinds`` that an older spec made and this one does not have
    (only ours: the world indexes children owned by an integration)."""
    owner = ctx.owner
    for kind in kinds:
        observed = ctx.world.child(kind, owner.namespace, owner.name)
        if observed is None or observed.owner_uid != owner.uid:
            continue  # none, or a namesake's (never ours to delete)
        with contextlib.suppress(NotFound):
            await ctx.kube.delete(Resource.builtin(kind), owner.child_namespace, observed.name)
        ctx.memory.applied.pop(kind, None)


def relay(
    world: World,
    owner: Owner,
    spec: PagerDutyIntegrationSpec | None,
    requeue_after: Callable[[float], None],
) -> RelayResult:
    """``RelayAvailable`` and ``status.relay``; asks for a re-check at the rollout's
    deadline (no controller will tell us when it passes). Also without a valid spec."""
    deployment = world.child("Deployment", owner.namespace, owner.name)
    if deployment is not None and deployment.owner_uid not in ("", owner.uid):
        deployment = None  # a namesake's (deleted integration of the same name)
    now = relay_state(deployment, datetime.now(UTC))
    if now.recheck_after is not None:
        requeue_after(now.recheck_after)
    condition = ConditionUpdate(
        c.RELAY_AVAILABLE, RELAY_CONDITION_STATUS[now.reason], now.reason, now.message
    )
    if spec is None:
        return RelayResult(condition)
    public = spec.relay.effective_public_url
    relay = RelayStatus.model_validate(  # publicUrl named only when there is one
        {
            "service_url": service_url(owner, spec),
            "ready_replicas": deployment.ready_replicas if deployment else 0,
            **({"public_url": public} if public else {}),
        }
    )
    return RelayResult(condition, relay=relay)
