"""Converging one admitted integration: the steps, in order, each returning its typed
part of the status; :func:`converge` gathers them into one :class:`Converged`.

Order matters: the referenced Secrets are read and the RelayConfig compiled once before
anything talks to PagerDuty (a missing key stops here); the managed routing key (its
Secret is what the relay mounts) and the PagerDuty subscription come next (whether it
has a signing secret changes the RelayConfig); then the children, the exposure, the
token rotation and BigPanda's integration (which needs the current token).
A step that makes the integration wait raises (see :mod:`.errors`); every other outcome is
a condition on its result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import ValidationError

from pagerbridge.api import PagerDutyKeyOverrideSpec, PagerDutyTagMappingSpec, SecretKeyRef
from pagerbridge.controller.errors import DatabaseNotConfigured
from pagerbridge.controller.external import bigpanda_integration
from pagerbridge.controller.render.children import RenderSettings, render_children
from pagerbridge.controller.render.compile import (
    Compiled,
    MappingInput,
    OverrideInput,
    compile_relay_config,
    secret_refs,
)
from pagerbridge.controller.settings import DatabaseDefault
from pagerbridge.controller.state import user_secrets
from pagerbridge.controller.state.observed import RefInfo
from pagerbridge.controller.steps import children as children_step
from pagerbridge.controller.steps import expose as expose_step
from pagerbridge.controller.steps import generated_secrets
from pagerbridge.controller.steps import managed_routing_key as routing_key_step
from pagerbridge.controller.steps import token as token_step
from pagerbridge.controller.steps import webhook_integration as bigpanda_step
from pagerbridge.controller.steps import webhook_subscription as subscription_step
from pagerbridge.controller.steps.context import Context, StepResult
from pagerbridge.controller.steps.expose import ExposeResult
from pagerbridge.controller.steps.managed_routing_key import RoutingKeyResult
from pagerbridge.controller.steps.webhook_integration import BigPandaResult
from pagerbridge.controller.steps.webhook_subscription import SubscriptionResult


@dataclass(frozen=True)
class Converged:
    """What the steps of one reconcile established."""

    compiled: Compiled
    subscription: SubscriptionResult
    children: StepResult  # a NameConflict: the relay cannot be ours
    expose: ExposeResult
    bigpanda: BigPandaResult | None  # None: Managed, but no token Secret yet
    routing_key: RoutingKeyResult = field(default_factory=RoutingKeyResult)  # empty: unmanaged

    def first_retry(self) -> float | None:
        """The routing key's retry first, else the subscription's, else the children's,
        else BigPanda's (as the steps ran)."""
        for result in (self.routing_key, self.subscription, self.children, self.bigpanda):
            if result is not None and result.retry is not None:
                return result.retry
        return None


async def converge(
    ctx: Context,
    overrides: list[RefInfo],
    mappings: list[RefInfo],
    render_settings: RenderSettings,
    *,
    resync: bool,
    secret_reads: user_secrets.SharedReads | None = None,
    not_before: float = 0.0,
) -> Converged:
    """The steps, in order; raises what makes the integration wait. ``secret_reads``: a
    referenced Secret read by another reconcile or check sent at or after ``not_before``
    (this reconcile's trigger) will do."""
    namespace, name, spec = ctx.owner.namespace, ctx.owner.name, ctx.spec
    default_database = _default_database(ctx.settings.relay_database, name)
    refs: dict[str, set[str]] = {ref.name: set() for _, ref in secret_refs(spec, default_database)}
    routing = spec.pager_duty.routing_key
    if routing is not None and (ref := routing.secret_ref) is not None:  # None: managed
        refs[ref.name].add(ref.key)
    # The integration's own Secrets, or (a shared account) the account's, beside its relay.
    read = await user_secrets.read(
        ctx.kube, ctx.owner.child_namespace, refs, secret_reads, not_before
    )
    ctx.memory.secret_versions = read.versions
    ctx.memory.secret_namespace = ctx.owner.child_namespace
    override_inputs = [o for o in map(_override, overrides) if o]
    mapping_inputs = [m for m in map(_mapping, mappings) if m]

    def compile_(webhook_secret: bool) -> Compiled:
        return compile_relay_config(
            namespace,
            name,
            spec,
            override_inputs,
            mapping_inputs,
            read.infos,
            webhook_secret=webhook_secret,
            default_database=default_database,
            names=ctx.owner.names,
        )

    compile_(False)  # validate the references before anything talks to PagerDuty
    routing_key = await routing_key_step.run(ctx, verify=resync)
    subscription = await subscription_step.run(ctx)
    compiled = compile_(subscription.webhook_secret)
    # A rotated database URI (an environment variable of the relay) rolls the pods.
    database = compiled.database.name if compiled.database is not None else None
    env_version = read.versions.get(database, "") if database is not None else ""
    children = render_children(
        ctx.owner, spec, compiled, render_settings, env_secret_version=env_version
    )
    applied = await children_step.apply(ctx, children.applied(), force=resync)
    await children_step.remove(ctx, children.absent())
    exposed = await expose_step.run(ctx, force=resync)
    token = await token_step.run(ctx)
    await generated_secrets.mirror_token(ctx)  # a shared account's relay: the tenant's copy
    bigpanda: BigPandaResult | None = None
    if bigpanda_integration.managed(spec):
        if token is not None:
            bigpanda = await bigpanda_step.run(ctx, compiled, token, verify=resync)
    else:
        bigpanda = await bigpanda_step.unmanage(ctx)  # no condition
    return Converged(compiled, subscription, applied, exposed, bigpanda, routing_key)


def _default_database(default: DatabaseDefault | None, integration: str) -> SecretKeyRef | None:
    """The operator's default database Secret for this integration (``{name}`` filled in)."""
    if default is None:
        return None
    try:
        return default.for_integration(integration)
    except ValidationError:
        raise DatabaseNotConfigured(
            f"the default database Secret {default.template!r} (Helm value "
            f"relay.database.secretName) gives no valid Secret name for {integration!r}; "
            "set spec.relay.database.uriSecretRef"
        ) from None


def _override(ref: RefInfo) -> OverrideInput | None:
    try:
        spec = PagerDutyKeyOverrideSpec.model_validate(ref.spec)
    except ValidationError:
        return None
    return OverrideInput(ref.name, spec.tag)


def _mapping(ref: RefInfo) -> MappingInput | None:
    try:
        spec = PagerDutyTagMappingSpec.model_validate(ref.spec)
    except ValidationError:
        return None
    return MappingInput(ref.name, tuple(spec.mappings), tuple(spec.links), tuple(spec.images))
