"""Admission of one integration's spec: does it parse, and does it stay inside the
cluster admin's bounds (egress, relay pod policy, expose policy)?

Checked before anything is called or rendered, so a refused spec never reaches PagerDuty,
BigPanda or the cluster: each refusal is a
:class:`~pagerbridge.controller.errors.WaitingForInput` (a URL outside the egress policy:
:class:`~pagerbridge.clients.errors.EgressRefused`) whose reason becomes the status.
"""

from __future__ import annotations

from pydantic import ValidationError

from pagerbridge.api import PagerDutyIntegrationSpec
from pagerbridge.controller.errors import InvalidSpec
from pagerbridge.controller.policy import spec_urls
from pagerbridge.controller.settings import OperatorSettings
from pagerbridge.controller.state.observed import IntegrationInfo


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


def admit(info: IntegrationInfo, settings: OperatorSettings) -> PagerDutyIntegrationSpec:
    """The spec to converge, or the ``WaitingForInput`` that says why not."""
    spec = parse(info)
    check(spec, info.namespace, settings)
    return spec
