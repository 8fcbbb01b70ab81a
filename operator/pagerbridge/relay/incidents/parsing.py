"""Lenient model of BigPanda's outbound incident webhook body.

BigPanda publishes no complete schema (see ``specs/bigpanda/README.md``), so only ``id`` is
required. Every other documented field is read when it has a usable type and ignored
otherwise; nothing unknown is rejected, and the raw object is kept so translation can pass
it through. The body may be the bare incident or ``{"incident": {...}}``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pagerbridge.relay.errors import InvalidIncident
from pagerbridge.relay.incidents.identifiers import MAX_DEDUP_KEY, is_safe_text_id

# Alert keys that describe the alert itself; every other scalar key is a tag.
_ALERT_META = frozenset(
    {
        "alert_id",
        "id",
        "status",
        "severity",
        "description",
        "condition_name",
        "primary_property",
        "secondary_property",
        "source_system",
        "tags",
        "timestamp",
        "start",
        "end",
        "startedOn",
        "changedOn",
        "updatedOn",
        "endedOn",
        "active",
        "incident_id",
    }
)
MAX_ID_LENGTH = 256


def _str(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return str(value)
    return None


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _tag_value(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _str(value)


@dataclass(frozen=True)
class Alert:
    raw: dict[str, Any]
    description: str | None
    condition_name: str | None
    primary_property: str | None
    secondary_property: str | None
    source_system: str | None
    status: str | None
    tags: dict[str, str]

    @property
    def primary_value(self) -> str | None:
        return self.tags.get(self.primary_property) if self.primary_property else None

    @property
    def secondary_value(self) -> str | None:
        return self.tags.get(self.secondary_property) if self.secondary_property else None


@dataclass(frozen=True)
class Comment:
    id: str
    text: str
    created_by: str | None
    created_at: float | None


@dataclass(frozen=True)
class Incident:
    raw: dict[str, Any]
    id: str
    status: str | None
    active: bool | None
    environments: tuple[str, ...]
    alerts: tuple[Alert, ...]
    incident_tags: dict[str, str]
    comments: tuple[Comment, ...]
    updated_at: float | None
    # BigPanda's ``flapping: true`` and ``snooze.snoozed: true`` (anything else: false).
    flapping: bool = False
    snoozed: bool = False

    @property
    def resolved(self) -> bool:
        return self.status == "ok" or self.active is False

    def tag(self, name: str) -> str | None:
        """Value of an alert tag (first alert carrying it), else of an incident tag."""
        for alert in self.alerts:
            if name in alert.tags:
                return alert.tags[name]
        return self.incident_tags.get(name)

    def all_tags(self) -> dict[str, str]:
        merged: dict[str, str] = dict(self.incident_tags)
        for alert in reversed(self.alerts):
            merged.update(alert.tags)
        return merged


def _parse_alert(raw: dict[str, Any]) -> Alert:
    tags: dict[str, str] = {}
    for key, value in raw.items():
        if key in _ALERT_META:
            continue
        text = _tag_value(value)
        if text is not None:
            tags[key] = text
    listed = raw.get("tags")
    if isinstance(listed, list):
        for item in listed:
            if isinstance(item, dict):
                name = _str(item.get("name"))
                value = _tag_value(item.get("value"))
                if name and value is not None:
                    tags[name] = value
    elif isinstance(listed, dict):
        for name, value in listed.items():
            text = _tag_value(value)
            if text is not None:
                tags[str(name)] = text
    status = _str(raw.get("status"))
    return Alert(
        raw=raw,
        description=_str(raw.get("description")),
        condition_name=_str(raw.get("condition_name")),
        primary_property=_str(raw.get("primary_property")),
        secondary_property=_str(raw.get("secondary_property")),
        source_system=_str(raw.get("source_system")),
        status=status.lower() if status else None,
        tags=tags,
    )


def _parse_comment(raw: Any) -> Comment | None:
    if not isinstance(raw, dict):
        return None
    text = _str(raw.get("comment"))
    if text is None:
        text = _str(raw.get("text"))
    if not text:
        return None
    created_by = _str(raw.get("created_by"))
    if created_by is None and isinstance(raw.get("created_by"), dict):
        created_by = _str(raw["created_by"].get("email")) or _str(raw["created_by"].get("name"))
    created_at = _num(raw.get("created_at"))
    comment_id = _str(raw.get("id"))
    if not comment_id:
        # No id: the content identifies the comment, so a re-send still matches.
        basis = json.dumps([text, created_by, created_at]).encode()
        comment_id = "h-" + hashlib.sha256(basis).hexdigest()[:24]
    return Comment(
        id=comment_id[:MAX_ID_LENGTH], text=text, created_by=created_by, created_at=created_at
    )


def parse_incident(body: Any) -> Incident:
    """Build an :class:`Incident` from decoded JSON (raises :class:`InvalidIncident`)."""
    if not isinstance(body, dict):
        raise InvalidIncident("body must be a JSON object (the BigPanda incident)")
    raw = body
    wrapped = body.get("incident")
    if isinstance(wrapped, dict):
        raw = wrapped
    incident_id = _str(raw.get("id"))
    if incident_id is None:
        incident_id = _str(raw.get("incident_id"))
    if not incident_id or not incident_id.strip():
        raise InvalidIncident("incident has no 'id'")
    if not is_safe_text_id(incident_id.strip(), MAX_DEDUP_KEY):
        raise InvalidIncident(
            "incident 'id' is not a plausible identifier "
            f"(at most {MAX_DEDUP_KEY} printable characters)"
        )
    status = _str(raw.get("status"))
    active = raw.get("active")
    environments = raw.get("environments")
    alerts_raw = raw.get("alerts")
    alerts = tuple(
        _parse_alert(a)
        for a in (alerts_raw if isinstance(alerts_raw, list) else [])
        if isinstance(a, dict)
    )
    incident_tags: dict[str, str] = {}
    tags_raw = raw.get("incident_tags")
    if isinstance(tags_raw, list):
        for item in tags_raw:
            if isinstance(item, dict):
                name = _str(item.get("tag_id")) or _str(item.get("name"))
                value = item.get("tag_value", item.get("value"))
                if isinstance(value, list):
                    value = ",".join(v for v in (_tag_value(x) for x in value) if v is not None)
                text = _tag_value(value)
                if name and text is not None:
                    incident_tags[name] = text
    comments: list[Comment] = []
    comments_raw = raw.get("comments")
    if isinstance(comments_raw, list):
        comments += [c for c in (_parse_comment(x) for x in comments_raw) if c is not None]
    single = _parse_comment(raw.get("comment")) if isinstance(raw.get("comment"), dict) else None
    if single is not None and all(c.id != single.id for c in comments):
        comments.append(single)
    updated = None
    for key in ("updatedOn", "changedOn", "endedOn", "startedOn", "updated_at", "start"):
        updated = _num(raw.get(key))
        if updated is not None:
            break
    snooze = raw.get("snooze")
    return Incident(
        raw=raw,
        id=incident_id.strip(),
        status=status.lower() if status else None,
        active=active if isinstance(active, bool) else None,
        environments=tuple(
            e
            for e in (environments if isinstance(environments, list) else [])
            if isinstance(e, str)
        ),
        alerts=alerts,
        incident_tags=incident_tags,
        comments=tuple(comments),
        updated_at=updated,
        flapping=raw.get("flapping") is True,
        snoozed=isinstance(snooze, dict) and snooze.get("snoozed") is True,
    )
