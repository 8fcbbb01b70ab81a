"""Reconcile step: the relay's Ingress or HTTPRoute (``spec.relay.expose``).

The object goes through the children's apply path (:func:`.children_step.apply`), so it
is applied like every child (same field manager, same ownership rules). Neither kind is
watched: the step applies on every reconcile of an exposed integration (a no-op for the
API server when nothing changed), and it learns which kind it published from
``status.relay.exposedBy`` (written by this step), so an expose removed or switched from
Ingress to HTTPRoute deletes the old object even across operator restarts.

An HTTPRoute needs the Gateway API CRDs: when the API server does not serve
``gateway.networking.k8s.io/v1`` HTTPRoutes the apply answers 404, and the step reports
``RelayPubliclyReachable=False`` (``GatewayAPINotInstalled``) and looks again a minute later.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pagerbridge.api import ConditionReason as Reason
from pagerbridge.clients.kubernetes import NotFound, Resource
from pagerbridge.controller.ownership import owned_by
from pagerbridge.controller.policy.expose import HTTP_ROUTE, INGRESS
from pagerbridge.controller.render import conditions as c
from pagerbridge.controller.render.conditions import ConditionUpdate
from pagerbridge.controller.render.exposure import render_exposure
from pagerbridge.controller.state.observed import IntegrationInfo
from pagerbridge.controller.steps import children as children_step
from pagerbridge.controller.steps.context import Context, StepResult

logger = logging.getLogger(__name__)

KINDS = (INGRESS, HTTP_ROUTE)
GATEWAY_API_RECHECK = 60.0  # seconds between looks for the Gateway API CRDs


@dataclass(frozen=True)
class ExposeResult(StepResult):
    exposed_by: str | None = None  # status.relay.exposedBy: the kind this step published


async def run(ctx: Context, *, force: bool) -> ExposeResult:
    """``RelayPubliclyReachable`` and ``status.relay.exposedBy`` when exposed; else nothing
    (after deleting what an earlier spec exposed)."""
    owner, expose = ctx.owner, ctx.spec.relay.expose
    exposure = (
        ctx.settings.expose_policy.decide(expose, owner.namespace) if expose is not None else None
    )
    previous = (ctx.info.status.get("relay") or {}).get("exposedBy")
    for kind in KINDS:
        if kind != (exposure.kind if exposure else None) and (
            previous == kind or kind in ctx.memory.applied
        ):
            await _delete(ctx, kind)
    if exposure is None:
        return ExposeResult()
    manifest = render_exposure(owner, ctx.spec.relay.service.port, exposure)
    try:
        await children_step.apply(ctx, [manifest], force=force)
    except NotFound:
        if exposure.kind != HTTP_ROUTE:
            raise
        ctx.requeue_after(GATEWAY_API_RECHECK)
        return ExposeResult(
            ConditionUpdate(
                c.RELAY_PUBLIC,
                c.FALSE,
                Reason.GATEWAY_API_NOT_INSTALLED,
                "spec.relay.expose.httpRoute needs the Gateway API: the cluster does not "
                "serve gateway.networking.k8s.io/v1 HTTPRoutes (install the Gateway API "
                "CRDs, or expose the relay with an Ingress)",
            )
        )
    where = f"{exposure.kind} {owner.names.relay}"
    return ExposeResult(
        ConditionUpdate(
            c.RELAY_PUBLIC,
            c.TRUE,
            Reason(exposure.kind),
            f"BigPanda and PagerDuty reach the relay at {exposure.public_url} ({where}); "
            "check that the host resolves to your ingress and is reachable from the internet",
        ),
        exposed_by=exposure.kind,
    )


def published(info: IntegrationInfo, result: ExposeResult | None) -> str | None:
    """``status.relay.exposedBy`` to write: this reconcile's, or (when the step did not run,
    e.g. a refused spec) the last one written, so the object is still found and deleted."""
    if result is not None:
        return result.exposed_by
    previous = (info.status.get("relay") or {}).get("exposedBy")
    return str(previous) if previous in KINDS else None


async def _delete(ctx: Context, kind: str) -> None:
    """Delete the relay's object of ``kind``, only when it is ours (never a namesake)."""
    owner = ctx.owner
    resource = Resource.builtin(kind)
    try:
        current = await ctx.kube.get(resource, owner.child_namespace, owner.names.relay)
        if not owned_by(current, owner.uid):  # a namesake someone else made: not ours
            ctx.memory.applied.pop(kind, None)
            return
        await ctx.kube.delete(resource, owner.child_namespace, owner.names.relay)
    except NotFound:
        pass
    else:
        logger.info(
            "deleted the relay's %s (spec.relay.expose changed)",
            kind,
            extra={"object": f"{owner.namespace}/{owner.name}"},
        )
    ctx.memory.applied.pop(kind, None)
