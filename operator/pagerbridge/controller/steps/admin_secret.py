"""Reconcile step: the relay admin API's bearer token, a generated per-integration Secret.

The Secret ``<integration>-relay-admin`` (key ``token``, 32 random bytes, URL-safe) is
created once and never rewritten; the relay reads it from its mount (``adminTokenFile`` of
the RelayConfig) and ``pagerbridge outbox`` reads it through the API server, so whoever
may read Secrets in the integration's namespace may use the admin API, and nobody else.
Deleting it rotates the token: the operator creates a new one and the relay picks it up
without a restart (mounted Secrets are updated in place). The value is never logged.
A Secret of that name that is not ours is a ``NameConflict`` (never adopted, never used),
as for the inbound token Secret.
"""

from __future__ import annotations

import base64
import secrets as pysecrets

from pagerbridge.clients.kubernetes import AlreadyExists, NotFound, Resource
from pagerbridge.controller.ownership import conflict, owned_by
from pagerbridge.controller.render.children import render_admin_secret
from pagerbridge.controller.steps.context import Context

SECRETS = Resource.builtin("Secret")


async def ensure_admin_secret(ctx: Context) -> None:
    """Create the admin token Secret when it does not exist (never overwrite one)."""
    owner = ctx.owner
    name = owner.names.admin_secret
    state = ctx.world.secret(owner.namespace, name)
    if state is not None and state.owner_uid == owner.uid:
        return
    manifest = render_admin_secret(owner, pysecrets.token_urlsafe(32))
    manifest["data"] = {
        key: base64.b64encode(value.encode()).decode()
        for key, value in manifest.pop("stringData").items()
    }
    try:
        await ctx.kube.create(manifest)
    except AlreadyExists:
        try:
            current = await ctx.kube.get(SECRETS, owner.namespace, name)
        except NotFound:
            return  # deleted meanwhile: the next reconcile creates it
        if not owned_by(current, owner.uid):
            raise conflict("Secret", owner.namespace, name, owner.name) from None
