"""Reconcile step: the managed routing key (see :mod:`..external.routing_key`).

Returns ``RoutingKeyReady`` and ``status.pagerDutyRoutingKey`` while
``pagerDuty.routingKey.managed`` is true; when it is turned off (the spec names a Secret
of the user's again) the integration in PagerDuty (ours only) and our Secret are
removed. The REST token is read where the subscription step reads it
(:func:`..external.subscription.read_api_token`); without ``pagerDuty.apiToken`` the
condition is False with reason ``ApiTokenRequired`` and nothing is called.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from pagerbridge.api import ConditionReason as Reason
from pagerbridge.api.integration import PagerDutyRoutingKeyStatus
from pagerbridge.clients.kubernetes import NotFound, Resource
from pagerbridge.controller.errors import NameConflict, ReconcileError, RoutingKeyFailed
from pagerbridge.controller.external import routing_key
from pagerbridge.controller.metrics import RECONCILE_ERRORS
from pagerbridge.controller.render import conditions as c
from pagerbridge.controller.render.conditions import ConditionUpdate
from pagerbridge.controller.steps.context import Context, StepResult

logger = logging.getLogger(__name__)

API_TOKEN_REQUIRED = (
    "pagerDuty.routingKey.managed needs pagerDuty.apiToken (a PagerDuty REST API key that "
    "may manage the service's integrations): no integration created"
)


@dataclass(frozen=True)
class RoutingKeyResult(StepResult):
    routing_key: PagerDutyRoutingKeyStatus | None = None  # None: not managed (status cleared)


def decide_without_calls(managed: bool, has_api_token: bool) -> ConditionUpdate | None:
    """The verdict that needs no call: not managed (no condition), or no REST token."""
    if not managed:
        return None
    if not has_api_token:
        return ConditionUpdate(
            c.ROUTING_KEY_READY, c.FALSE, Reason.API_TOKEN_REQUIRED, API_TOKEN_REQUIRED
        )
    return None


async def run(ctx: Context, *, verify: bool) -> RoutingKeyResult:
    owner, spec = ctx.owner, ctx.spec
    name = owner.names.routing_key_secret
    stored = ctx.world.secret(owner.namespace, name)
    if stored is not None and stored.owner_uid != owner.uid:
        stored = None  # a namesake Secret, not ours: never read, written or deleted
    managed = routing_key.managed(spec)
    if not managed:
        if stored is not None:
            await _drop(ctx)
        return RoutingKeyResult()
    early = decide_without_calls(managed, spec.pager_duty.api_token is not None)
    if early is not None:
        RECONCILE_ERRORS.labels(early.reason).inc()
        return RoutingKeyResult(early)
    try:
        outcome = await routing_key.ensure(
            ctx.kube,
            owner,
            spec,
            stored,
            verify=verify,
            policy=ctx.settings.egress,
            stamp=ctx.stamp,
            limits=ctx.settings.call_limits,
        )
    except (RoutingKeyFailed, NameConflict) as exc:
        RECONCILE_ERRORS.labels(exc.reason).inc()
        return RoutingKeyResult(
            ConditionUpdate(c.ROUTING_KEY_READY, c.FALSE, exc.reason, exc.message), exc.retry_after
        )
    where = f"PagerDuty Events API v2 integration {outcome.integration_id}"
    if outcome.duplicates:
        await ctx.event(
            "RoutingKeyDuplicatesRemoved",
            f"{where} kept; duplicates of ours deleted: {', '.join(outcome.duplicates)}",
            warning=True,
        )
    if outcome.recreated:
        await ctx.event(
            "RoutingKeyRecreated",
            f"the integration recorded in Secret {name} was deleted in PagerDuty: {where} "
            f"created on service {outcome.service_id}; the relay sends its new key",
            warning=True,
        )
    elif outcome.created:
        logger.info("%s/%s: %s created", owner.namespace, owner.name, where)
        await ctx.event(
            "RoutingKeyCreated",
            f"{where} created on service {outcome.service_id}; its key is in Secret {name}",
        )
    elif outcome.restored:
        await ctx.event(
            "RoutingKeyRestored",
            f"Secret {name} was missing or held another key: written again with the key of {where}",
            warning=True,
        )
    return RoutingKeyResult(
        ConditionUpdate(
            c.ROUTING_KEY_READY,
            c.TRUE,
            Reason.ROUTING_KEY_MANAGED,
            f"{where} on service {outcome.service_id}; its key is in Secret {name}",
        ),
        routing_key=PagerDutyRoutingKeyStatus(
            integration_id=outcome.integration_id,
            service_id=outcome.service_id,
            secret_name=name,
        ),
    )


async def _drop(ctx: Context) -> None:
    """No longer managed: delete our integration (best effort) and our Secret."""
    owner = ctx.owner
    try:
        await routing_key.remove(
            ctx.kube,
            owner,
            ctx.spec,
            policy=ctx.settings.egress,
            stamp=ctx.stamp,
            limits=ctx.settings.call_limits,
        )
    except ReconcileError as exc:
        logger.warning(
            "could not delete the managed routing key's integration of %s/%s: %s",
            owner.namespace,
            owner.name,
            exc.message,
        )
    with contextlib.suppress(NotFound):  # ours (owner UID checked by the caller)
        await ctx.kube.delete(
            Resource.builtin("Secret"), owner.namespace, owner.names.routing_key_secret
        )
