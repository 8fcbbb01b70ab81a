"""Reconcile step: the inbound webhook token's rotation (see :mod:`.token_rotation`).

Advances a requested rotation and returns the token BigPanda must send now (Managed mode
needs it; None when there is no token Secret yet). It has no condition of its own: the
steps are marked by ``TokenRotating`` / ``TokenRotated`` Events.
"""

from __future__ import annotations

import secrets as pysecrets
import time

from pagerbridge.clients.kubernetes import NotFound, Resource
from pagerbridge.controller import names as n
from pagerbridge.controller.external import bigpanda_integration
from pagerbridge.controller.ownership import owned_by
from pagerbridge.controller.steps import token_rotation
from pagerbridge.controller.steps.context import Context


async def run(ctx: Context) -> str | None:
    """Reads the token Secret only when BigPanda is managed or a rotation is under way."""
    owner, names = ctx.owner, ctx.owner.names
    state = ctx.world.secret(owner.child_namespace, names.token_secret)
    request = ctx.info.annotations.get(token_rotation.ANNOTATION_REQUEST)
    marks = state.annotations if state is not None else {}
    rotating = bool(request and request != marks.get(token_rotation.ANNOTATION_REQUEST)) or (
        marks.get(token_rotation.ANNOTATION_PHASE) == token_rotation.BOTH
    )
    if not rotating and not bigpanda_integration.managed(ctx.spec):
        return None
    try:
        secret = await ctx.kube.get(
            Resource.builtin("Secret"), owner.child_namespace, names.token_secret
        )
    except NotFound:
        return None
    if not owned_by(secret, owner.uid):  # a namesake that is not ours: never read or written
        return None
    tokens = token_rotation.decode_tokens(secret, n.TOKEN_KEY)
    if not tokens:
        return None
    annotations = dict((secret.get("metadata") or {}).get("annotations") or {})
    step = token_rotation.plan(
        request,
        tokens,
        annotations,
        time.time(),
        ctx.settings.token_rotation_grace_seconds,
        lambda: pysecrets.token_urlsafe(32),
    )
    if step.tokens is not None or step.annotations:
        await token_rotation.write(
            ctx.kube, owner.child_namespace, names.token_secret, n.TOKEN_KEY, step
        )
        both = (step.annotations or {}).get(token_rotation.ANNOTATION_PHASE) == token_rotation.BOTH
        await ctx.event(
            "TokenRotating" if both else "TokenRotated",
            f"Secret {names.token_secret} holds the old and the new token"
            if both
            else f"Secret {names.token_secret} holds only the new token",
        )
    if step.requeue_after is not None:
        ctx.requeue_after(step.requeue_after + 0.1)
    return step.bigpanda_token
