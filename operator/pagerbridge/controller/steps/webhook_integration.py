"""Reconcile step: BigPanda's Webhook v2 integration (see :mod:`.bigpanda_integration`).

Managed mode: keep it equal to the CRs; returns ``BigPandaWebhookConfigured`` and the
Managed part of ``status.bigPandaWebhook`` (``integrationId``, ``lastVerified``,
``authorizationDigest``, as :class:`ManagedWebhook`). Back to Manual: delete what we made
(best effort) and clear those fields.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypedDict

from pagerbridge.api import ConditionReason as Reason
from pagerbridge.controller.errors import ReconcileError
from pagerbridge.controller.external import bigpanda_integration
from pagerbridge.controller.metrics import RECONCILE_ERRORS
from pagerbridge.controller.render import conditions as c
from pagerbridge.controller.render.compile import Compiled
from pagerbridge.controller.render.conditions import ConditionUpdate
from pagerbridge.controller.steps.context import Context, StepResult

logger = logging.getLogger(__name__)


class ManagedWebhook(TypedDict, total=False):
    """The Managed fields of :class:`~pagerbridge.api.integration.BigPandaWebhookStatus`,
    as a merge patch: a field left out is kept as written, a field set to None is cleared."""

    integration_id: str | None
    authorization_digest: str | None
    last_verified: datetime | None


@dataclass(frozen=True)
class BigPandaResult(StepResult):
    managed: ManagedWebhook = field(default_factory=lambda: ManagedWebhook())


def _previous(ctx: Context) -> Mapping[str, Any]:
    return dict(ctx.info.status.get("bigPandaWebhook") or {})


def _written(previous: Mapping[str, Any]) -> ManagedWebhook:
    """The Managed fields as last written (the indexed status), kept unless replaced."""
    kept = ManagedWebhook()
    if "integrationId" in previous:
        kept["integration_id"] = previous["integrationId"]
    if "authorizationDigest" in previous:
        kept["authorization_digest"] = previous["authorizationDigest"]
    if "lastVerified" in previous:
        when = previous["lastVerified"]
        kept["last_verified"] = (
            datetime.fromisoformat(str(when).replace("Z", "+00:00")) if when else None
        )
    return kept


async def run(ctx: Context, compiled: Compiled, token: str, *, verify: bool) -> BigPandaResult:
    memory = ctx.memory
    previous = _previous(ctx)
    status = _written(previous)
    try:
        outcome = await bigpanda_integration.ensure(
            ctx.kube,
            ctx.owner,
            ctx.spec,
            compiled,
            token=token,
            last_digest=memory.bigpanda_applied,
            # our memory first: the indexed status may lag behind our own last write
            written_secret=memory.bigpanda_secret or previous.get("authorizationDigest"),
            verify=verify,
            policy=ctx.settings.egress,
            stamp=ctx.stamp,
            recorded_id=previous.get("integrationId"),
            limits=ctx.settings.call_limits,
        )
    except bigpanda_integration.BigPandaWebhookFailed as exc:
        RECONCILE_ERRORS.labels(exc.reason).inc()
        memory.bigpanda_applied = None
        condition = ConditionUpdate(c.BIGPANDA_WEBHOOK, c.FALSE, exc.reason, exc.message)
        return BigPandaResult(condition, exc.retry_after, managed=status)
    memory.bigpanda_applied = outcome.digest
    memory.bigpanda_secret = outcome.secret_digest
    status["integration_id"] = outcome.integration_id
    status["authorization_digest"] = outcome.secret_digest
    if outcome.talked:
        status["last_verified"] = datetime.now(UTC).replace(microsecond=0)
    if outcome.adopted:
        await ctx.event(
            "BigPandaIntegrationAdopted",
            f"BigPanda Webhook v2 integration {outcome.integration_id} adopted: stamped and "
            "written to this integration's settings",
        )
    elif outcome.claimed:
        await ctx.event(
            "BigPandaIntegrationStamped",
            f"BigPanda Webhook v2 integration {outcome.integration_id}, created before "
            "ownership stamps, now carries this integration's stamp",
        )
    elif outcome.changed:
        await ctx.event(
            "BigPandaWebhookConfigured",
            f"BigPanda Webhook v2 integration {outcome.integration_id} written",
        )
    condition = ConditionUpdate(
        c.BIGPANDA_WEBHOOK,
        c.TRUE,
        Reason.CONFIGURED,
        f"BigPanda Webhook v2 integration {outcome.integration_id} shares to the relay",
    )
    return BigPandaResult(condition, managed=status)


async def unmanage(ctx: Context) -> BigPandaResult:
    """Switched from Managed to Manual: delete what we made in BigPanda (best effort)."""
    previous = _previous(ctx)
    if "integrationId" not in previous:
        return BigPandaResult()
    ctx.memory.bigpanda_applied = None
    ctx.memory.bigpanda_secret = None
    try:
        await bigpanda_integration.remove(
            ctx.kube,
            ctx.owner,
            ctx.spec,
            policy=ctx.settings.egress,
            stamp=ctx.stamp,
            recorded_id=previous.get("integrationId"),
            limits=ctx.settings.call_limits,
        )
    except ReconcileError as exc:
        logger.warning(
            "%s/%s: BigPanda integration %s left in place: %s",
            ctx.owner.namespace,
            ctx.owner.name,
            previous["integrationId"],
            exc.message,
        )
    cleared = ManagedWebhook()  # what was written goes (a merge patch keeps the rest)
    if "integrationId" in previous:
        cleared["integration_id"] = None
    if "authorizationDigest" in previous:
        cleared["authorization_digest"] = None
    if "lastVerified" in previous:
        cleared["last_verified"] = None
    return BigPandaResult(managed=cleared)
