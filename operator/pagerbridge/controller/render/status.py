"""Status of an integration and of the objects referencing it: pure functions from what
a reconcile found to the ``status`` documents and their conditions.

Ready is decided here and nowhere else: :func:`ready_condition` for an integration,
:func:`reference_ready` for an override or mapping, and :func:`quiet_start` says when a
first Ready is only "relay starting" (held back for a moment, never announced).

Ready (kstatus-compatible, with the observed generation) is True only when every detail
condition is; otherwise it carries the first failing detail's reason and message, so
``kubectl get pdi`` shows what to fix. A relay still rolling out is not a failure: Ready
is Unknown (``RelayStarting``) and ``Reconciling`` True meanwhile.

``RelayPubliclyReachable`` says whether the SaaS senders can reach the relay at all: an
integration without ``relay.publicUrl`` (Manual mode; the API server refuses it with
``serviceId`` or in Managed mode) has only a cluster-internal URL. Ready keeps its verdict
on the relay itself, but its message carries the same warning.

Overrides and mappings always get a status: Applied when their integration is Ready,
otherwise ``IntegrationNotReady`` naming the integration and its failing condition (Ready
False, or Unknown with ``Reconciling`` True while the integration's relay rolls out, so
GitOps tools read them as they read the integration).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pagerbridge.api import ConditionReason as Reason
from pagerbridge.api.integration import RelayStorage
from pagerbridge.controller.render import conditions as c
from pagerbridge.controller.render.conditions import ConditionUpdate


@dataclass(frozen=True)
class IntegrationOutcome:
    """What one reconcile of an integration established."""

    secrets: ConditionUpdate
    subscription: ConditionUpdate
    relay: ConditionUpdate
    relay_url: str | None = None
    bigpanda: ConditionUpdate | None = None  # Managed mode only
    storage: ConditionUpdate | None = None  # what the outbox survives; not part of Ready
    reachable: ConditionUpdate | None = None  # RelayPubliclyReachable
    subscription_active: ConditionUpdate | None = None  # known at verifications only
    routing_key: ConditionUpdate | None = None  # RoutingKeyReady: managed routing key only


def public_reachability(public_url: str | None, webhook_url: str) -> ConditionUpdate:
    """``RelayPubliclyReachable``; the False message is also what ``webhook-config`` warns."""
    if public_url:
        return ConditionUpdate(
            c.RELAY_PUBLIC,
            c.TRUE,
            Reason.PUBLIC_URL,
            f"BigPanda and PagerDuty reach the relay at {public_url.rstrip('/')}",
        )
    return ConditionUpdate(
        c.RELAY_PUBLIC,
        c.FALSE,
        Reason.CLUSTER_INTERNAL_URL,
        f"BigPanda cannot reach {webhook_url}: it is a cluster-internal URL and BigPanda is a "
        "SaaS on the internet. Expose the relay Service (Ingress, Gateway, load balancer) and "
        "set relay.publicUrl to that address",
    )


def ready_condition(
    details: list[ConditionUpdate],
    relay_url: str | None,
    reachable: ConditionUpdate | None = None,
) -> ConditionUpdate:
    """The first detail not True decides; an Unknown one (relay starting) stays Unknown."""
    for update in details:
        if update.status != c.TRUE:
            status = c.UNKNOWN if update.status == c.UNKNOWN else c.FALSE
            return ConditionUpdate(c.READY, status, update.reason, update.message)
    where = f" at {relay_url}" if relay_url else ""
    message = f"relay running and configured{where}"
    if reachable is not None and reachable.status != c.TRUE:
        message += f"; warning: {reachable.message}"
    return ConditionUpdate(c.READY, c.TRUE, Reason.READY, message)


def storage_condition(storage: RelayStorage) -> ConditionUpdate:
    """``OutboxDurable``: whether accepted work survives the relay pod being replaced."""
    if storage is RelayStorage.POSTGRESQL:
        return ConditionUpdate(
            c.OUTBOX_DURABLE,
            c.TRUE,
            Reason.POSTGRESQL,
            "the outbox is in PostgreSQL, shared by the relay replicas: events accepted and "
            "not yet delivered survive rollouts, evictions, drains, deleted pods and lost "
            "nodes, as long as the database keeps its commits",
        )
    if storage is RelayStorage.PERSISTENT:
        return ConditionUpdate(
            c.OUTBOX_DURABLE,
            c.TRUE,
            Reason.PERSISTENT_VOLUME,
            "the outbox is on a PersistentVolumeClaim: events accepted and not yet delivered "
            "survive rollouts, evictions, drains and deleted pods",
        )
    return ConditionUpdate(
        c.OUTBOX_DURABLE,
        c.FALSE,
        Reason.EPHEMERAL_STORAGE,
        "relay.storage is Ephemeral: every event accepted and not yet delivered (for "
        "instance everything waiting out a PagerDuty outage) is lost when the relay pod is "
        "rolled, evicted, drained or deleted",
    )


def reconciling_condition(ready: ConditionUpdate) -> ConditionUpdate:
    """kstatus ``Reconciling``: True only while Ready waits on a rollout (Argo CD and Flux
    then read *in progress*); a real failure keeps it False so they read *failed*."""
    if ready.status == c.UNKNOWN:
        return ConditionUpdate(c.RECONCILING, c.TRUE, ready.reason, ready.message)
    return ConditionUpdate(c.RECONCILING, c.FALSE, Reason.IDLE, "no rollout in progress")


def integration_conditions(
    outcome: IntegrationOutcome,
    current: list[dict[str, Any]],
    generation: int,
    now: str,
) -> list[dict[str, Any]]:
    details = [outcome.secrets, outcome.subscription, outcome.relay]
    if outcome.bigpanda is not None:
        details.insert(2, outcome.bigpanda)
    if outcome.routing_key is not None:
        details.insert(1, outcome.routing_key)
    ready = ready_condition(details, outcome.relay_url, outcome.reachable)
    updates = [ready, reconciling_condition(ready), *details]
    if outcome.storage is not None:
        updates.append(outcome.storage)
    if outcome.reachable is not None:
        updates.append(outcome.reachable)
    if outcome.subscription_active is not None:
        updates.append(outcome.subscription_active)
    return c.apply_conditions(current, updates, generation, now)


def failing_detail(conditions: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The detail condition Ready took its verdict from (None when Ready is True)."""
    ready = c.find(conditions, c.READY)
    if ready is None or ready.get("status") == c.TRUE:
        return None
    for condition in conditions:
        if condition.get("type") in (c.READY, c.RECONCILING, c.RELAY_PUBLIC):
            continue
        if condition.get("status") != c.TRUE and condition.get("reason") == ready.get("reason"):
            return condition
    return ready


def ref_waiting(
    integration_conditions_: list[dict[str, Any]], integration_ref: str, namespace: str, kind: str
) -> ConditionUpdate | None:
    """Ready of an override or mapping whose integration is not Ready (None: it is).

    The reason names the state, the message names the integration and its failing
    condition; Unknown while the integration itself is Unknown (its relay rolling out)."""
    ready = c.find(integration_conditions_, c.READY)
    if ready is not None and ready.get("status") == c.TRUE:
        return None
    where = f"PagerDutyIntegration {namespace}/{integration_ref}"
    if ready is None:
        return ConditionUpdate(
            c.READY,
            c.UNKNOWN,
            Reason.INTEGRATION_NOT_READY,
            f"{where} has no status yet; this {kind} applies once it is Ready",
        )
    failing = failing_detail(integration_conditions_) or ready
    status = c.UNKNOWN if ready.get("status") == c.UNKNOWN else c.FALSE
    return ConditionUpdate(
        c.READY,
        status,
        Reason.INTEGRATION_NOT_READY,
        f"{where} is not Ready: {failing.get('type')}={failing.get('status')} "
        f"({failing.get('reason')}: {failing.get('message')})",
    )


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
            Reason.INTEGRATION_NOT_FOUND,
            f"PagerDutyIntegration {namespace}/{integration_ref} not found; "
            f"this {kind} applies once it exists",
        )
    if conflict is not None:
        return ConditionUpdate(c.READY, c.FALSE, Reason.CONFLICT, conflict)
    return ConditionUpdate(
        c.READY,
        c.TRUE,
        Reason.APPLIED,
        f"applied to the relay of PagerDutyIntegration {namespace}/{integration_ref}",
    )


def reference_ready(
    integration_conditions_: list[dict[str, Any]] | None,
    integration_ref: str,
    namespace: str,
    kind: str,
    conflict: str | None = None,
) -> ConditionUpdate:
    """Ready of an override or mapping: not found (``None`` conditions: no such
    integration), waiting on its integration, in conflict, or applied."""
    if integration_conditions_ is None:
        return ref_ready(False, integration_ref, namespace, kind)
    waiting = ref_waiting(integration_conditions_, integration_ref, namespace, kind)
    return waiting or ref_ready(True, integration_ref, namespace, kind, conflict)


def quiet_start(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> bool:
    """The first Ready of an integration only says its new relay is starting: not news
    (no Event), and a status worth holding back for a moment (:mod:`.grace`)."""
    ready = c.find(after, c.READY) or {}
    return c.find(before, c.READY) is None and ready.get("reason") == Reason.RELAY_STARTING
