"""BigPanda incident → PagerDuty Events API v2 event (without its routing key).

``dedup_key`` is the BigPanda incident id, so every re-share updates the same PagerDuty
incident; a resolved incident (``status: ok`` or ``active: false``) becomes a ``resolve``.
The routing key is added at delivery time (see :mod:`pagerbridge.relay.incidents.overrides`), so the
default key never lands in the outbox file.

The incident's life cycle (docs/relay.md, "Incident lifecycle: the two-way state table")
is :func:`lifecycle_actions`: which Events v2 actions one BigPanda webhook becomes. With
``sync.snooze`` a snoozed open incident is a trigger (its update, which PagerDuty
de-duplicates into the open alert without notifying anyone while it is acknowledged)
followed by an ``acknowledge``; with ``sync.flapping`` a flapping incident's trigger carries
the severity and custom detail the user chose.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

from pagerbridge.api.relay_config import RelayConfig, SyncConfig
from pagerbridge.api.severity import BigPandaStatus
from pagerbridge.api.tag_mapping import TagMapping
from pagerbridge.relay.incidents import links as link_rules
from pagerbridge.relay.incidents.limits import MAX_TEXT, cut_text, fit_event
from pagerbridge.relay.incidents.overrides import Routing, apply_mappings
from pagerbridge.relay.incidents.parsing import Alert, Incident

MAX_SUMMARY = MAX_TEXT
_STATUS_RANK = {"critical": 0, "warning": 1, "unknown": 2, "ok": 3}
CLIENT_NAME = "BigPanda (via PagerBridge)"


@dataclass(frozen=True)
class Translation:
    action: Literal["trigger", "resolve"]
    event: dict[str, Any]  # Events v2 body minus routing_key
    content_hash: str  # identifies "the same event" across re-sends (idempotency)
    warnings: tuple[str, ...] = ()
    # The trigger is followed by an Events v2 acknowledge (a snoozed incident, sync.snooze).
    acknowledge: bool = False
    dropped_links: tuple[link_rules.Drop, ...] = ()  # links/images left out (trigger only)


LifecycleAction = Literal["trigger", "acknowledge", "resolve"]


def lifecycle_actions(incident: Incident, sync: SyncConfig) -> tuple[LifecycleAction, ...]:
    """The Events v2 actions one BigPanda webhook of ``incident`` becomes, in order.

    Resolved wins over everything (a snoozed or flapping incident that is resolved is a
    resolve). An open incident is a trigger (a new PagerDuty incident, or an update that
    PagerDuty de-duplicates into the open one); a snoozed one, with ``sync.snooze``, is
    followed by an acknowledge. Flapping changes the trigger's content, not the actions.
    """
    if incident.resolved:
        return ("resolve",)
    if sync.snooze and incident.snoozed:
        return ("trigger", "acknowledge")
    return ("trigger",)


def acknowledge_event(incident_id: str) -> dict[str, Any]:
    """The Events v2 acknowledge of the incident's PagerDuty alert (dedup key only)."""
    return {"event_action": "acknowledge", "dedup_key": incident_id}


def incident_url(config: RelayConfig, incident: Incident) -> str:
    """The incident in BigPanda's console. The ids are percent-encoded: an id with a space or
    a '#' would otherwise make ``links[0].href`` no URL, and PagerDuty refuse the event."""
    base = config.big_panda.app_url.rstrip("/")
    env = incident.environments[0] if incident.environments else config.big_panda.environment_id
    incident_id = quote(incident.id, safe="")
    if env:
        return f"{base}/#/app/overview/{quote(env, safe='')}/active/incidents/{incident_id}"
    return f"{base}/#/app/incidents/{incident_id}"


def _primary_alert(incident: Incident) -> Alert | None:
    if not incident.alerts:
        return None
    return min(incident.alerts, key=lambda a: _STATUS_RANK.get(a.status or "", 2))


def _alert_line(alert: Alert) -> str:
    parts = [p for p in (alert.primary_value, alert.secondary_value) if p]
    head = " ".join(parts)
    text = alert.description or alert.condition_name or ""
    if head and text:
        return f"{head}: {text}"
    return head or text


def summary(incident: Incident) -> str:
    status = (incident.status or "unknown").upper()
    primary = _primary_alert(incident)
    lines = [_alert_line(primary)] if primary else []
    others = [a for a in incident.alerts if a is not primary]
    text = f"[{status}] " + (lines[0] if lines and lines[0] else f"BigPanda incident {incident.id}")
    if others:
        rest = "; ".join(line for line in (_alert_line(a) for a in others[:5]) if line)
        text += f" (+{len(others)} more alert{'s' if len(others) > 1 else ''}"
        text += f": {rest})" if rest else ")"
    return cut_text(text, MAX_SUMMARY)


def _timestamp(incident: Incident) -> str | None:
    if incident.updated_at is None:
        return None
    try:
        return (
            datetime.fromtimestamp(incident.updated_at, tz=UTC).isoformat().replace("+00:00", "Z")
        )
    except (OverflowError, OSError, ValueError):
        return None


def _details(incident: Incident, url: str) -> dict[str, Any]:
    raw = incident.raw
    details: dict[str, Any] = {
        "bigpanda_incident_id": incident.id,
        "bigpanda_url": url,
        "status": incident.status,
        "active": incident.active,
    }
    for key in ("severity", "flapping", "environments", "folders", "snooze"):
        if key in raw:
            details[key] = raw[key]
    details["tags"] = incident.all_tags()
    details["alerts"] = [a.raw for a in incident.alerts]
    return details  # sized to PagerDuty's limits by pd_limits.fit_event, after the mappings


def translate(
    incident: Incident, config: RelayConfig, routing: Routing, mappings: list[TagMapping]
) -> Translation:
    url = incident_url(config, incident)
    actions = lifecycle_actions(incident, config.sync)
    if actions[0] == "resolve":
        event: dict[str, Any] = {"event_action": "resolve", "dedup_key": incident.id}
        return Translation("resolve", event, _hash(event))
    status = incident.status if incident.status in {s.value for s in BigPandaStatus} else "unknown"
    primary = _primary_alert(incident)
    source = (primary.primary_value or primary.source_system) if primary else None
    payload: dict[str, Any] = {
        "summary": summary(incident),
        "source": source or "BigPanda",
        "severity": config.severity_map[BigPandaStatus(status)].value,
        "custom_details": _details(incident, url),
    }
    ts = _timestamp(incident)
    if ts:
        payload["timestamp"] = ts
    if primary and primary.condition_name:
        payload["class"] = primary.condition_name
    if routing.note:
        payload["custom_details"]["pagerbridge_key_override"] = routing.note
    flapping = config.sync.flapping
    if flapping is not None and incident.flapping:
        # Before the tag mappings: a tag mapped onto severity is the more specific choice.
        if flapping.severity is not None:
            payload["severity"] = flapping.severity.value
        if flapping.custom_detail is not None:
            detail = flapping.custom_detail
            payload["custom_details"][detail.key] = detail.value
    warnings = apply_mappings(payload, incident, mappings)
    extra = link_rules.build(incident.tag, config.links, config.images)
    trigger: dict[str, Any] = {
        "event_action": "trigger",
        "dedup_key": incident.id,
        "payload": payload,
        "client": CLIENT_NAME,
        "client_url": url,
        "links": [{"href": url, "text": "BigPanda incident"}, *extra.links],
    }
    if extra.images:
        trigger["images"] = list(extra.images)
    event = fit_event(trigger)  # last: PagerDuty's size limits hold for exactly what is sent
    return Translation(
        "trigger",
        event,
        _hash(event),
        tuple(warnings),
        acknowledge="acknowledge" in actions,
        dropped_links=extra.drops,
    )


def _hash(event: dict[str, Any]) -> str:
    """Content identity of an event, timestamp excluded: a re-share that changes nothing
    PagerDuty would show (e.g. only a new comment) is not sent again."""
    payload = event.get("payload")
    if isinstance(payload, dict) and "timestamp" in payload:
        event = {**event, "payload": {k: v for k, v in payload.items() if k != "timestamp"}}
    basis = json.dumps(event, sort_keys=True, default=str).encode()
    return hashlib.sha256(basis).hexdigest()[:32]
