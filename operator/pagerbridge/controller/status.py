"""Status of an integration and of the objects referencing it: pure functions from what
a reconcile found to the ``status`` documents and their conditions.

Ready (kstatus-compatible, with ``observedGeneration``) is True only when every detail
condition is; otherwise it carries the first failing detail's reason and message, so
``kubectl get pdi`` shows what to fix. A relay still rolling out is not a failure: Ready
is Unknown (``RelayStarting``) and ``Reconciling`` True meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pagerbridge.api.integration import RelayStorage
from pagerbridge.controller import conditions as c
from pagerbridge.controller.conditions import ConditionUpdate

DETAIL_ORDER = (c.SECRETS_RESOLVED, c.SUBSCRIPTION_READY, c.RELAY_AVAILABLE)


@dataclass(frozen=True)
class IntegrationOutcome:
    """What one reconcile of an integration established."""

    secrets: ConditionUpdate
    subscription: ConditionUpdate
    relay: ConditionUpdate
    relay_url: str | None = None
    bigpanda: ConditionUpdate | None = None  # Managed mode only
    storage: ConditionUpdate | None = None  # what the outbox survives; not part of Ready


def ready_condition(details: list[ConditionUpdate], relay_url: str | None) -> ConditionUpdate:
    """The first detail not True decides; an Unknown one (relay starting) stays Unknown."""
    for update in details:
        if update.status != c.TRUE:
            status = c.UNKNOWN if update.status == c.UNKNOWN else c.FALSE
            return ConditionUpdate(c.READY, status, update.reason, update.message)
    where = f" at {relay_url}" if relay_url else ""
    return ConditionUpdate(c.READY, c.TRUE, "Ready", f"relay running and configured{where}")


def storage_condition(storage: RelayStorage) -> ConditionUpdate:
    """``OutboxDurable``: whether accepted work survives the relay pod being replaced."""
    if storage is RelayStorage.PERSISTENT:
        return ConditionUpdate(
            c.OUTBOX_DURABLE,
            c.TRUE,
            "PersistentVolume",
            "the outbox is on a PersistentVolumeClaim: events accepted and not yet delivered "
            "survive rollouts, evictions, drains and deleted pods",
        )
    return ConditionUpdate(
        c.OUTBOX_DURABLE,
        c.FALSE,
        "EphemeralStorage",
        "relay.storage is Ephemeral: every event accepted and not yet delivered (for "
        "instance everything waiting out a PagerDuty outage) is lost when the relay pod is "
        "rolled, evicted, drained or deleted",
    )


def reconciling_condition(ready: ConditionUpdate) -> ConditionUpdate:
    """kstatus ``Reconciling``: True only while Ready waits on a rollout (Argo CD and Flux
    then read *in progress*); a real failure keeps it False so they read *failed*."""
    if ready.status == c.UNKNOWN:
        return ConditionUpdate(c.RECONCILING, c.TRUE, ready.reason, ready.message)
    return ConditionUpdate(c.RECONCILING, c.FALSE, "Idle", "no rollout in progress")


def integration_conditions(
    outcome: IntegrationOutcome,
    current: list[dict[str, Any]],
    generation: int,
    now: str,
) -> list[dict[str, Any]]:
    details = [outcome.secrets, outcome.subscription, outcome.relay]
    if outcome.bigpanda is not None:
        details.insert(2, outcome.bigpanda)
    ready = ready_condition(details, outcome.relay_url)
    updates = [ready, reconciling_condition(ready), *details]
    if outcome.storage is not None:
        updates.append(outcome.storage)
    return c.apply_conditions(current, updates, generation, now)


def ref_ready(
    integration_found: bool,
    integration_ref: str,
    namespace: str,
    kind: str,
    conflict: str | None = None,
) -> ConditionUpdate:
    if not integration_found:
        return ConditionUpdate(
            c.READY,
            c.FALSE,
            "IntegrationNotFound",
            f"PagerDutyIntegration {namespace}/{integration_ref} not found; "
            f"this {kind} applies once it exists",
        )
    if conflict is not None:
        return ConditionUpdate(c.READY, c.FALSE, "Conflict", conflict)
    return ConditionUpdate(
        c.READY,
        c.TRUE,
        "Applied",
        f"applied to the relay of PagerDutyIntegration {namespace}/{integration_ref}",
    )


def differs(current: dict[str, Any] | Any, desired: dict[str, Any]) -> bool:
    """True when some desired status field is not already what the object has."""
    if not isinstance(current, dict):
        return True
    return any(current.get(key) != value for key, value in desired.items())
