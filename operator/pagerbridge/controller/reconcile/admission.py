"""Admission of one integration's spec: does it parse, may it use the shared accounts it
names (:mod:`..policy.accounts`: the spec then carries their credentials), and does it
stay inside the cluster admin's bounds (egress, relay pod policy, expose policy)?

Checked before anything is called or rendered, so a refused spec never reaches PagerDuty,
BigPanda or the cluster: each refusal is a
:class:`~pagerbridge.controller.errors.WaitingForInput` (a URL outside the egress policy:
:class:`~pagerbridge.clients.errors.EgressRefused`) whose reason becomes the status.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from pagerbridge.api import (
    BIGPANDA_ACCOUNT,
    PAGERDUTY_ACCOUNT,
    ClusterBigPandaAccountSpec,
    ClusterPagerDutyAccountSpec,
    PagerDutyIntegrationSpec,
)
from pagerbridge.controller.errors import InvalidSpec
from pagerbridge.controller.policy import accounts, spec_urls
from pagerbridge.controller.settings import OperatorSettings
from pagerbridge.controller.state.observed import IntegrationInfo, World

AccountSpec = TypeVar("AccountSpec", bound=BaseModel)


def parse(info: IntegrationInfo) -> PagerDutyIntegrationSpec:
    """The typed spec; ``InvalidSpec`` when it does not validate (the CRD bypassed)."""
    try:
        return PagerDutyIntegrationSpec.model_validate(info.spec)
    except ValidationError as exc:
        raise InvalidSpec(
            f"spec does not validate: {exc.error_count()} error(s), first at "
            + ".".join(map(str, exc.errors()[0]["loc"]))
        ) from None


def check(spec: PagerDutyIntegrationSpec, namespace: str, settings: OperatorSettings) -> None:
    """The three policies, in order: egress (URLs), relay pod, expose."""
    spec_urls.check_spec(spec, settings.egress)  # before anything is called
    settings.relay_policy.check_spec(spec, settings.relay_image)
    if spec.relay.expose is not None:  # refused before anything is rendered
        settings.expose_policy.decide(spec.relay.expose, namespace)


def _account(world: World, kind: str, name: str, model: type[AccountSpec]) -> AccountSpec | None:
    """A shared account's spec; None when absent or (its CRD bypassed) invalid."""
    info = world.account(kind, name)
    if info is None:
        return None
    try:
        return model.model_validate(info.spec)
    except ValidationError:
        return None


def with_accounts(
    spec: PagerDutyIntegrationSpec,
    namespace: str,
    settings: OperatorSettings,
    world: World,
    *,
    enforce: bool = True,
) -> PagerDutyIntegrationSpec:
    """``spec`` with the credentials of the accounts it names (itself without any).
    ``enforce`` False (cleanup): an account that no longer allows the namespace still
    lends its token to delete what the integration made with it."""
    pd_ref, bp_ref = spec.pager_duty.account_ref, spec.big_panda.account_ref
    pd = (
        _account(world, PAGERDUTY_ACCOUNT.kind, pd_ref.name, ClusterPagerDutyAccountSpec)
        if pd_ref
        else None
    )
    bp = (
        _account(world, BIGPANDA_ACCOUNT.kind, bp_ref.name, ClusterBigPandaAccountSpec)
        if bp_ref
        else None
    )
    return accounts.effective_spec(
        spec,
        namespace,
        world.namespace_labels(namespace) if pd_ref or bp_ref else None,
        pd,
        bp,
        account_namespace=settings.account_namespace,
        enforce=enforce,
    )


def admit(
    info: IntegrationInfo, settings: OperatorSettings, world: World
) -> PagerDutyIntegrationSpec:
    """The spec to converge (with its accounts' credentials), or the ``WaitingForInput``
    that says why not."""
    spec = with_accounts(parse(info), info.namespace, settings, world)
    check(spec, info.namespace, settings)
    return spec
