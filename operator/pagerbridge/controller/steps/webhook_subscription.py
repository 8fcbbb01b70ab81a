"""Reconcile step: the PagerDuty webhook subscription (see :mod:`.subscription`).

Returns ``SubscriptionReady`` and ``status.pagerDutySubscription`` (its API model);
removes the subscription (and its Secret) when ``serviceId`` was dropped, or when ``sync``
turns on no PagerDuty event type. When the spec changes the event types
(:func:`.subscription.events`), PagerDuty is read and updated at once, not at the next
periodic verification.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, replace

from pagerbridge.api import ConditionReason as Reason
from pagerbridge.api.contract import PAGERDUTY_WEBHOOK_PATH
from pagerbridge.api.integration import PagerDutySubscriptionStatus
from pagerbridge.clients.kubernetes import NotFound, Resource
from pagerbridge.controller.errors import (
    AdoptionTargetNotFound,
    NameConflict,
    ReconcileError,
    SubscriptionFailed,
)
from pagerbridge.controller.external import subscription
from pagerbridge.controller.metrics import RECONCILE_ERRORS, SUBSCRIPTION_REPAIRS
from pagerbridge.controller.render import conditions as c
from pagerbridge.controller.render.children import relay_base_url
from pagerbridge.controller.render.conditions import ConditionUpdate
from pagerbridge.controller.state.observed import SecretState
from pagerbridge.controller.steps.context import Context, StepResult

logger = logging.getLogger(__name__)

NOT_CONFIGURED = ConditionUpdate(
    c.SUBSCRIPTION_READY,
    c.TRUE,
    Reason.NOT_CONFIGURED,
    "no pagerDuty.serviceId: PagerDuty → BigPanda sync is off",
)


@dataclass(frozen=True)
class SubscriptionResult(StepResult):
    subscription: PagerDutySubscriptionStatus | None = None  # None: none (status cleared)
    webhook_secret: bool = False  # the relay verifies PagerDuty's signatures (a secret exists)
    active: ConditionUpdate | None = None  # SubscriptionActive, when PagerDuty was read


NO_EVENTS = ConditionUpdate(
    c.SUBSCRIPTION_READY,
    c.TRUE,
    Reason.NOT_CONFIGURED,
    "sync turns on no PagerDuty event (resolve, notes and sync.pagerDutyEvents are all off): "
    "no webhook subscription",
)


def _verify_due(ctx: Context, events: tuple[str, ...]) -> bool:
    memory = ctx.memory
    if memory.subscribed_events is not None and memory.subscribed_events != events:
        return True  # the spec changed the event types: update the live subscription now
    if memory.verify_now:
        memory.verify_now = False
        return True
    last = memory.verified_at
    return last is None or time.monotonic() - last > ctx.settings.subscription_verify_seconds


async def run(ctx: Context) -> SubscriptionResult:
    owner, spec = ctx.owner, ctx.spec
    stored = ctx.world.secret(owner.child_namespace, owner.names.webhook_secret)
    if stored is not None and stored.owner_uid != owner.uid:
        stored = None  # a namesake Secret, not ours: never read, written or deleted
    if not subscription.wanted(spec):
        if stored is not None:
            await _drop(ctx, stored)
        ctx.memory.subscribed_events = None
        pd = spec.pager_duty
        configured = pd.service_id is not None and pd.api_token is not None
        return SubscriptionResult(NO_EVENTS if configured else NOT_CONFIGURED)
    events = subscription.events(spec)
    previous = ctx.memory.subscribed_events
    try:
        outcome = await subscription.ensure(
            ctx.kube,
            owner,
            spec,
            stored,
            verify=_verify_due(ctx, events),
            policy=ctx.settings.egress,
            stamp=ctx.stamp,
            limits=ctx.settings.call_limits,
        )
    except (SubscriptionFailed, NameConflict, AdoptionTargetNotFound) as exc:
        RECONCILE_ERRORS.labels(exc.reason).inc()
        return SubscriptionResult(
            ConditionUpdate(c.SUBSCRIPTION_READY, c.FALSE, exc.reason, exc.message),
            exc.retry_after,
            webhook_secret=stored is not None,  # keep verifying with the old secret
        )
    ctx.memory.verified_at = time.monotonic()
    subscription_id = outcome.subscription_id
    if outcome.stamped:
        await ctx.event(
            "SubscriptionStamped",
            f"PagerDuty webhook subscription {subscription_id}, created before ownership "
            "stamps, now carries this integration's stamp in its description",
        )
    if outcome.foreign:
        await ctx.event(
            "ForeignSubscription",
            f"PagerDuty webhook subscription(s) {', '.join(outcome.foreign)} deliver to the "
            "same URL and service but were not created by this integration: left untouched",
            warning=True,
        )
    active = None
    if outcome.checked:
        ctx.memory.subscribed_events = events
        repaired = outcome.repaired
        added = previous is not None and previous != events and "events" in repaired
        if added:  # our own spec added a type: an update, not a repair
            repaired = tuple(what for what in repaired if what != "events")
        if added or outcome.narrowed:
            await ctx.event(
                "SubscriptionUpdated",
                f"PagerDuty webhook subscription {subscription_id} now delivers "
                f"{', '.join(events)}",
            )
        outcome = replace(outcome, repaired=repaired)
        active = _active_condition(subscription_id, outcome.repaired)
        for what in outcome.repaired:
            SUBSCRIPTION_REPAIRS.labels(owner.namespace, owner.name, what).inc()
        if outcome.repaired:
            await ctx.event(
                "SubscriptionRepaired",
                f"PagerDuty webhook subscription {subscription_id} was "
                f"{', '.join(outcome.repaired)}: set right again",
                warning=True,
            )
    if outcome.adopted is not None:
        await ctx.event(
            "SubscriptionAdopted",
            f"PagerDuty webhook subscription {outcome.adopted} adopted: replaced by "
            f"{subscription_id}, with this integration's settings and a new signing secret "
            "(PagerDuty cannot rotate a secret in place); the old secret no longer verifies",
        )
    elif outcome.changed:
        logger.info(
            "%s/%s: PagerDuty webhook subscription %s created",
            owner.namespace,
            owner.name,
            subscription_id,
        )
        await ctx.event(
            "SubscriptionCreated", f"PagerDuty webhook subscription {subscription_id} created"
        )
    return SubscriptionResult(
        ConditionUpdate(
            c.SUBSCRIPTION_READY,
            c.TRUE,
            Reason.SUBSCRIBED,
            f"PagerDuty webhook subscription {subscription_id} delivers to "
            f"{relay_base_url(owner, spec)}{PAGERDUTY_WEBHOOK_PATH}",
        ),
        subscription=PagerDutySubscriptionStatus(id=subscription_id) if subscription_id else None,
        webhook_secret=True,
        active=active,
    )


def _active_condition(subscription_id: str | None, repaired: tuple[str, ...]) -> ConditionUpdate:
    if "inactive" in repaired:
        return ConditionUpdate(
            c.SUBSCRIPTION_ACTIVE,
            c.TRUE,
            Reason.REENABLED,
            f"PagerDuty webhook subscription {subscription_id} was inactive (disabled by "
            "PagerDuty after failed deliveries, or by a person): re-enabled",
        )
    if repaired:
        return ConditionUpdate(
            c.SUBSCRIPTION_ACTIVE,
            c.TRUE,
            Reason.SUBSCRIPTION_REPAIRED,
            f"PagerDuty webhook subscription {subscription_id} had its "
            f"{' and '.join(repaired)} changed: set right again",
        )
    return ConditionUpdate(
        c.SUBSCRIPTION_ACTIVE,
        c.TRUE,
        Reason.ACTIVE,
        f"PagerDuty webhook subscription {subscription_id} is active, with our events and "
        "service filter",
    )


async def _drop(ctx: Context, stored: SecretState) -> None:
    """serviceId was removed: delete the subscription (best effort) and its Secret."""
    owner, spec = ctx.owner, ctx.spec
    try:
        if spec.pager_duty.api_token is not None:
            await subscription.remove(
                ctx.kube,
                owner,
                spec,
                stored,
                policy=ctx.settings.egress,
                stamp=ctx.stamp,
                limits=ctx.settings.call_limits,
            )
    except ReconcileError as exc:
        logger.warning(
            "could not delete the PagerDuty subscription of %s/%s: %s",
            owner.namespace,
            owner.name,
            exc.message,
        )
    with contextlib.suppress(NotFound):  # ours (owner UID checked by the caller)
        await ctx.kube.delete(
            Resource.builtin("Secret"), owner.child_namespace, owner.names.webhook_secret
        )
