"""Reconcile step: BigPanda's Webhook v2 integration (see :mod:`.bigpanda_integration`).

Managed mode: keep it equal to the CRs; returns ``BigPandaWebhookConfigured`` and the
Managed part of ``status.bigPandaWebhook`` (``integrationId``, ``lastVerified``,
``authorizationDigest``). Back to Manual: delete what we made (best effort) and clear
those fields.
"""

from __future__ import annotations

import logging
from typing import Any

from pagerbridge.controller.errors import ReconcileError
from pagerbridge.controller.external import bigpanda_integration
from pagerbridge.controller.metrics import RECONCILE_ERRORS
from pagerbridge.controller.render import conditions as c
from pagerbridge.controller.render.compile import Compiled
from pagerbridge.controller.render.conditions import ConditionUpdate
from pagerbridge.controller.steps.context import Context, StepResult

logger = logging.getLogger(__name__)

STATUS_KEYS = ("integrationId", "lastVerified", "authorizationDigest")


def _previous(ctx: Context) -> dict[str, Any]:
    return dict(ctx.info.status.get("bigPandaWebhook") or {})


async def run(ctx: Context, compiled: Compiled, token: str, *, verify: bool) -> StepResult:
    memory = ctx.memory
    previous = _previous(ctx)
    status: dict[str, Any] = {k: previous[k] for k in STATUS_KEYS if k in previous}
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
        return StepResult(condition, status, exc.retry_after)
    memory.bigpanda_applied = outcome.digest
    memory.bigpanda_secret = outcome.secret_digest
    status["integrationId"] = outcome.integration_id
    status["authorizationDigest"] = outcome.secret_digest
    if outcome.talked:
        status["lastVerified"] = c.now_rfc3339()
    if outcome.claimed:
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
        "Configured",
        f"BigPanda Webhook v2 integration {outcome.integration_id} shares to the relay",
    )
    return StepResult(condition, status)


async def unmanage(ctx: Context) -> StepResult:
    """Switched from Managed to Manual: delete what we made in BigPanda (best effort)."""
    previous = _previous(ctx)
    if "integrationId" not in previous:
        return StepResult()
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
    return StepResult(status={key: None for key in STATUS_KEYS if key in previous})
