"""Reconcile step: the Secrets the operator generates for an integration, written by one
function (:func:`ensure`) so both follow the same rules.

- ``<integration>-token`` (key ``token``): the inbound webhook token BigPanda sends. A
  token Secret deleted by hand is recreated with a new token: BigPanda must then send the
  new one (Managed mode: done by the BigPanda step; Manual: a Warning Event).
- ``<integration>-relay-admin`` (key ``token``): the relay admin API's bearer token. The
  relay reads it from its mount (``adminTokenFile`` of the RelayConfig) and ``pagerbridge
  outbox`` reads it through the API server, so whoever may read Secrets in the
  integration's namespace may use the admin API, and nobody else. Deleting it rotates the
  token without a relay restart (mounted Secrets are updated in place).

Each is 32 random bytes (URL-safe), created once and never rewritten; the value is never
logged. A relay in the account namespace (shared accounts) has its token Secret there,
out of the tenant's reach; :func:`mirror_token` keeps a copy in the integration's own
namespace (owned by it) so its users can enter the token in BigPanda (Manual mode). The
token is the integration's own, not the account's: it only lets BigPanda post to this
relay. A Secret of that name that is not ours is a ``NameConflict``: never adopted, read
or used (see :mod:`.ownership`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets as pysecrets
from collections.abc import Callable
from typing import Any

from pagerbridge.clients.kubernetes import AlreadyExists, NotFound, Resource
from pagerbridge.controller.ownership import conflict, owned_by, write_child
from pagerbridge.controller.render.children import Owner, render_admin_secret, render_token_secret
from pagerbridge.controller.steps.context import Context

SECRETS = Resource.builtin("Secret")


async def ensure(ctx: Context, name: str, render: Callable[[Owner, str], dict[str, Any]]) -> bool:
    """Create the generated Secret ``name`` when it does not exist (never overwrite one);
    True when this call created it."""
    owner = ctx.owner
    state = ctx.world.secret(owner.child_namespace, name)
    if state is not None and state.owner_uid == owner.uid:
        return False
    manifest = render(owner, pysecrets.token_urlsafe(32))
    manifest["data"] = {
        key: base64.b64encode(value.encode()).decode()
        for key, value in manifest.pop("stringData").items()
    }
    try:
        await ctx.kube.create(manifest)
    except AlreadyExists:
        try:
            current = await ctx.kube.get(SECRETS, owner.child_namespace, name)
        except NotFound:
            return False  # deleted meanwhile: the next reconcile creates it
        if not owned_by(current, owner.uid):
            raise conflict("Secret", owner.child_namespace, name, owner.name) from None
        return False
    return True


async def ensure_token_secret(ctx: Context, seen_before: bool) -> None:
    """The inbound token; a recreated one (``seen_before``: status already showed BigPanda
    a token) is announced, since BigPanda must now send the new token."""
    name = ctx.owner.names.token_secret
    if await ensure(ctx, name, render_token_secret) and seen_before:
        await ctx.event(
            "TokenRegenerated",
            f"Secret {name} was missing and holds a new token; "
            "BigPanda must send it (pagerbridge webhook-config --reveal)",
            warning=True,
        )


async def ensure_admin_secret(ctx: Context) -> None:
    """The relay admin API's token."""
    await ensure(ctx, ctx.owner.names.admin_secret, render_admin_secret)


async def mirror_token(ctx: Context) -> None:
    """A shared account's relay: the inbound token's copy in the integration's namespace
    (same name as without an account), written when the token changed (a rotation)."""
    owner = ctx.owner
    if not owner.shared:
        return
    try:
        source = await ctx.kube.get(SECRETS, owner.child_namespace, owner.names.token_secret)
    except NotFound:
        return
    if not owned_by(source, owner.uid):
        return
    data = dict(source.get("data") or {})
    home = owner.in_own_namespace()
    manifest = render_token_secret(home, "")
    manifest.pop("stringData")
    manifest["data"] = data
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    name = home.names.token_secret
    state = ctx.world.secret(owner.namespace, name)
    known = state.uid if state is not None and state.owner_uid == owner.uid else None
    if known is not None and ctx.memory.applied.get(MIRROR) == (digest, state.uid if state else ""):
        return
    result = await write_child(ctx.kube, manifest, owner.uid, known)
    ctx.memory.applied[MIRROR] = (digest, str(result["metadata"].get("uid", "")))


MIRROR = "TokenMirror"  # memory.applied key of the token's copy
