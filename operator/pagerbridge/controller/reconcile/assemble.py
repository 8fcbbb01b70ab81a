"""Assembling the typed status of an integration and of the objects that reference it,
from what admission and the steps established.

Every part comes from a step as its API model (:mod:`pagerbridge.api.integration`); this
module puts them into one :class:`~pagerbridge.api.PagerDutyIntegrationStatus` and takes
Ready from :mod:`pagerbridge.controller.render.status` (where alone it is decided). The
result is a merge patch in model form: a field it does not set is kept as written (e.g.
``status.relay`` of a spec that does not parse), a field set to None is removed (what no
longer applies). Only :mod:`.status_writer` turns it into JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pagerbridge.api import (
    KEY_OVERRIDE,
    TAG_MAPPING,
    BigPandaWebhookStatus,
    PagerDutyIntegrationSpec,
    PagerDutyIntegrationStatus,
    ReferenceStatus,
)
from pagerbridge.api import ConditionReason as Reason
from pagerbridge.api.contract import BIGPANDA_WEBHOOK_PATH
from pagerbridge.api.integration import RelayStatus
from pagerbridge.api.links import MAX_RULES
from pagerbridge.controller.reconcile.converge import Converged
from pagerbridge.controller.render import conditions as c
from pagerbridge.controller.render import pause
from pagerbridge.controller.render.children import (
    Owner,
    bigpanda_webhook_status,
    relay_base_url,
)
from pagerbridge.controller.render.compile import Compiled
from pagerbridge.controller.render.conditions import ConditionUpdate
from pagerbridge.controller.render.status import (
    IntegrationOutcome,
    integration_conditions,
    public_reachability,
    reconciling_condition,
    reference_ready,
    storage_condition,
)
from pagerbridge.controller.state.observed import IntegrationInfo, RefInfo
from pagerbridge.controller.steps import expose as expose_step
from pagerbridge.controller.steps.children import RelayResult
from pagerbridge.controller.steps.webhook_subscription import NOT_CONFIGURED

SECRETS_FOUND = ConditionUpdate(
    c.SECRETS_RESOLVED, c.TRUE, Reason.SECRETS_FOUND, "all referenced Secret keys found"
)
RELAY_UNKNOWN = ConditionUpdate(c.RELAY_AVAILABLE, c.UNKNOWN, Reason.UNKNOWN, "")


@dataclass(frozen=True)
class Assembled:
    status: PagerDutyIntegrationStatus
    conditions: list[dict[str, Any]]  # status.conditions as the API holds them


def integration_status(
    info: IntegrationInfo,
    owner: Owner,
    spec: PagerDutyIntegrationSpec | None,
    secrets: ConditionUpdate,
    converged: Converged | None,
    relay: RelayResult,
) -> Assembled:
    """The status of one reconcile: ``spec`` None when it was refused before converging,
    ``converged`` None when admission or a step made the integration wait."""
    outcome = _outcome(owner, spec, secrets, converged, relay)
    current = pause.without_paused(list(info.status.get("conditions") or []))  # unpaused
    conditions = integration_conditions(outcome, current, info.generation, c.now_rfc3339())
    fields: dict[str, Any] = {"observed_generation": info.generation, "conditions": conditions}
    if spec is not None:
        exposed = converged.expose if converged is not None else None
        fields["relay"] = _relay(info, relay, expose_step.published(info, exposed))
        subscription = converged.subscription if converged is not None else None
        fields["pager_duty_subscription"] = subscription.subscription if subscription else None
        routing_key = converged.routing_key if converged is not None else None
        if routing_key is not None and (
            routing_key.routing_key is not None or routing_key.condition is None
        ):  # managed and held, or not managed (cleared); a failure keeps what was written
            fields["pager_duty_routing_key"] = routing_key.routing_key
        if converged is not None:
            fields["big_panda_webhook"] = _webhook(owner, spec, converged)
    return Assembled(PagerDutyIntegrationStatus.model_validate(fields), conditions)


def _outcome(
    owner: Owner,
    spec: PagerDutyIntegrationSpec | None,
    secrets: ConditionUpdate,
    converged: Converged | None,
    relay: RelayResult,
) -> IntegrationOutcome:
    url = relay_base_url(owner, spec) if spec else None
    reachable = (
        public_reachability(spec.relay.effective_public_url, f"{url}{BIGPANDA_WEBHOOK_PATH}")
        if spec is not None
        else None
    )
    exposed = converged.expose.condition if converged is not None else None
    if exposed is not None and (
        spec is None or spec.relay.public_url is None or exposed.status != c.TRUE
    ):
        reachable = exposed  # the Ingress/HTTPRoute's verdict
    elif converged is None and spec is not None and spec.relay.expose is not None:
        reachable = None  # refused or not reached: the last verdict stands
    relay_condition = relay.condition
    if converged is not None and converged.children.condition is not None:
        relay_condition = converged.children.condition  # a NameConflict
    subscription = converged.subscription.condition if converged is not None else None
    bigpanda = converged.bigpanda if converged is not None else None
    return IntegrationOutcome(
        secrets,
        subscription or NOT_CONFIGURED,
        relay_condition or RELAY_UNKNOWN,
        url,
        bigpanda.condition if bigpanda is not None else None,
        storage=storage_condition(spec.relay.effective_storage) if spec else None,
        reachable=reachable,
        subscription_active=converged.subscription.active if converged is not None else None,
        routing_key=converged.routing_key.condition if converged is not None else None,
    )


def _relay(info: IntegrationInfo, relay: RelayResult, exposed_by: str | None) -> RelayStatus:
    """``status.relay``: the Deployment's part, the exposure's, and None for every field
    written before that no longer applies (publicUrl, exposedBy)."""
    base = relay.relay if relay.relay is not None else RelayStatus()
    update: dict[str, Any] = {"exposed_by": exposed_by} if exposed_by is not None else {}
    written: Mapping[str, Any] = info.status.get("relay") or {}
    for name, field in RelayStatus.model_fields.items():
        if field.alias in written and name not in base.model_fields_set and name not in update:
            update[name] = None
    return base.model_copy(update=update)  # the updated fields count as set


def _webhook(
    owner: Owner, spec: PagerDutyIntegrationSpec, converged: Converged
) -> BigPandaWebhookStatus:
    """What BigPanda must send (Manual) plus what the operator wrote there (Managed)."""
    managed = converged.bigpanda.managed if converged.bigpanda is not None else {}
    return BigPandaWebhookStatus.model_validate(
        {**bigpanda_webhook_status(owner, spec, converged.compiled), **managed}
    )


def reference_condition(
    ref: RefInfo,
    integration_conditions_: list[dict[str, Any]] | None,
    compiled: Compiled | None,
) -> ConditionUpdate:
    """Ready of an override or mapping: Applied (or Conflict) while its integration is
    Ready, else IntegrationNotReady naming its failing condition; ``None`` conditions:
    the integration does not exist (or is being deleted)."""
    conflict = None
    name, namespace = ref.integration, ref.namespace
    if compiled is not None:
        if ref.kind == KEY_OVERRIDE.kind and ref.name in compiled.ignored_overrides:
            conflict = (
                f"PagerDutyKeyOverride {compiled.active_override} already sets the key "
                f"override tag of {name}; only one applies"
            )
        elif ref.kind == TAG_MAPPING.kind and ref.name in compiled.ignored_mappings:
            fields = ", ".join(compiled.ignored_mappings[ref.name])
            conflict = (
                f"field(s) {fields} already mapped by another PagerDutyTagMapping "
                f"of {name}; the others apply"
            )
        elif ref.kind == TAG_MAPPING.kind and ref.name in compiled.ignored_link_rules:
            count = compiled.ignored_link_rules[ref.name]
            conflict = (
                f"{count} link/image rule(s) over the {MAX_RULES} per integration {name} "
                "takes (objects are taken by name); the others apply"
            )
    return reference_ready(integration_conditions_, name, namespace, ref.kind, conflict)


def reference_status(ref: RefInfo, ready: ConditionUpdate) -> ReferenceStatus:
    """Ready (and kstatus' Reconciling, following it) of an override or mapping."""
    current = list(ref.status.get("conditions") or [])
    updates = [ready, reconciling_condition(ready)]
    conditions = c.apply_conditions(current, updates, ref.generation, c.now_rfc3339())
    return ReferenceStatus.model_validate(
        {"observed_generation": ref.generation, "conditions": conditions}
    )
