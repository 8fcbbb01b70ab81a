"""``metav1.Condition`` lists: set one condition, keep ``lastTransitionTime`` stable.

A condition's transition time only moves when its status changes, which is what
``kubectl wait``, kstatus (Argo CD, Flux) and humans reading ``kubectl describe`` expect.

The lists here are in the API's own shape (what ``status.conditions`` holds and what the
indices give back), so a merge with the current list needs no conversion; the status
models (:mod:`pagerbridge.api`) validate them when a status is assembled. Reasons are
:class:`~pagerbridge.api.ConditionReason` members.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pagerbridge.api import ConditionReason, ConditionStatus

READY = "Ready"
SECRETS_RESOLVED = "SecretsResolved"
RELAY_AVAILABLE = "RelayAvailable"
SUBSCRIPTION_READY = "SubscriptionReady"
ROUTING_KEY_READY = "RoutingKeyReady"  # pagerDuty.routingKey.managed only
# Whether PagerDuty delivers to the relay: read at each verification (informational: the
# operator re-enables a disabled subscription at once, so it never decides Ready).
SUBSCRIPTION_ACTIVE = "SubscriptionActive"
BIGPANDA_WEBHOOK = "BigPandaWebhookConfigured"
OUTBOX_DURABLE = "OutboxDurable"  # informational: never decides Ready
# Whether BigPanda and PagerDuty (SaaS) can reach the relay: False (ClusterInternalUrl) in
# Manual mode without relay.publicUrl. A warning: Ready does not wait for it (the smallest
# manifest is Ready), but Ready's message repeats it.
RELAY_PUBLIC = "RelayPubliclyReachable"
PAUSED = "Paused"  # only while annotated pagerbridge.io/paused (see render.pause)
RECONCILING = "Reconciling"  # kstatus: True while the relay rolls out (in progress, not failed)

TRUE = ConditionStatus.TRUE
FALSE = ConditionStatus.FALSE
UNKNOWN = ConditionStatus.UNKNOWN
GENERATION = "observedGeneration"  # kstatus: on the status and on each condition


@dataclass(frozen=True)
class ConditionUpdate:
    type: str
    status: ConditionStatus
    reason: ConditionReason
    message: str


def now_rfc3339() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def apply_conditions(
    current: list[dict[str, Any]],
    updates: list[ConditionUpdate],
    generation: int | None,
    now: str,
) -> list[dict[str, Any]]:
    """The new condition list: ``updates`` merged into ``current``, others kept."""
    by_type = {str(c.get("type")): dict(c) for c in current}
    for update in updates:
        old = by_type.get(update.type)
        transition = now
        if old is not None and old.get("status") == update.status and old.get("lastTransitionTime"):
            transition = str(old["lastTransitionTime"])
        condition: dict[str, Any] = {
            "type": update.type,
            "status": update.status,
            "reason": update.reason,
            "message": update.message,
            "lastTransitionTime": transition,
        }
        if generation is not None:
            condition[GENERATION] = generation
        by_type[update.type] = condition
    ordered = [by_type.pop(READY)] if READY in by_type else []
    ordered.extend(by_type[t] for t in sorted(by_type))
    return ordered


def find(conditions: list[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    for condition in conditions:
        if condition.get("type") == type_:
            return condition
    return None


def transitions(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Conditions whose status or reason changed: each becomes one Kubernetes Event."""
    changed = []
    for condition in after:
        old = find(before, str(condition["type"]))
        if (
            old is None
            or old.get("status") != condition["status"]
            or old.get("reason") != condition["reason"]
        ):
            changed.append(condition)
    return changed


def observed_generation(status: Mapping[str, Any]) -> int | None:
    """The generation a written status describes (kstatus), None before the first."""
    value = status.get(GENERATION)
    return value if isinstance(value, int) else None
