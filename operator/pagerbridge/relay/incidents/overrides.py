"""Per-incident routing-key override and tag → event-field mappings.

Key override: the value of an alert tag replaces the default integration key. The tag is
named by the ``x-bp-config-pdfield`` request header (wins for that request) or the config's
``keyOverrideTag``. A value that is missing or not a 32-character key falls back to the
default key, is noted in ``custom_details`` and counted; the incident is never dropped.

Tag mappings: config mappings plus ``x-bp-config-tag-<tag>: <field>`` request headers (a
header wins over the config for the same field). Header fields outside the allowed set are
ignored with a warning; the config's are validated by :mod:`pagerbridge.api.fields`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pagerbridge.api.contract import TAG_MAPPING_HEADER_PREFIX, is_routing_key
from pagerbridge.api.fields import CUSTOM_DETAILS_PREFIX, is_mapping_field, is_tag_name
from pagerbridge.api.severity import PagerDutySeverity
from pagerbridge.api.tag_mapping import TagMapping
from pagerbridge.relay.incidents.parsing import Incident

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Routing:
    """Which key an incident goes to. ``key`` is None for the default key, whose value is
    read from its secret file at delivery time and never stored in the outbox."""

    key: str | None = None
    tag: str | None = None
    note: str | None = None  # why an override was not used (for custom_details)
    fallback_reason: str | None = None  # metric label

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "tag": self.tag}

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | None) -> Routing:
        if not value:
            return cls()
        key = value.get("key")
        tag = value.get("tag")
        return cls(
            key=key if isinstance(key, str) else None, tag=tag if isinstance(tag, str) else None
        )


DEFAULT_ROUTING = Routing()


def choose_routing(incident: Incident, config_tag: str | None, header_tag: str | None) -> Routing:
    tag = header_tag.strip() if header_tag and header_tag.strip() else config_tag
    if not tag:
        return DEFAULT_ROUTING
    if not is_tag_name(tag):
        return Routing(
            note=f"key override tag name {tag[:64]!r} is not a valid tag name; default key used",
            fallback_reason="invalid_tag_name",
        )
    value = incident.tag(tag)
    if value is None:
        return Routing(
            tag=tag,
            note=f"alert tag {tag!r} not present; default integration key used",
            fallback_reason="missing",
        )
    value = value.strip()
    if not is_routing_key(value):
        # The value itself is not echoed: a near-miss key is still sensitive.
        return Routing(
            tag=tag,
            note=f"alert tag {tag!r} is not a valid 32-character integration key; "
            "default integration key used",
            fallback_reason="invalid",
        )
    return Routing(key=value, tag=tag)


def header_mappings(
    headers: Iterable[tuple[str, str]],
) -> tuple[list[TagMapping], list[str]]:
    """Mappings from ``x-bp-config-tag-<tag>: <field>`` headers, and the ignored header names."""
    mappings: list[TagMapping] = []
    ignored: list[str] = []
    for name, value in headers:
        lname = name.lower()
        if not lname.startswith(TAG_MAPPING_HEADER_PREFIX):
            continue
        tag = name[len(TAG_MAPPING_HEADER_PREFIX) :]
        field = value.strip()
        if not is_tag_name(tag) or not is_mapping_field(field):
            ignored.append(lname[:200])
            continue
        mappings.append(TagMapping(tag=tag, field=field))
    return mappings, ignored


def merge_mappings(config: list[TagMapping], headers: list[TagMapping]) -> list[TagMapping]:
    by_field: dict[str, TagMapping] = {m.field: m for m in config}
    for mapping in headers:
        by_field[mapping.field] = mapping
    return list(by_field.values())


_SEVERITIES = {s.value for s in PagerDutySeverity}


def apply_mappings(
    payload: dict[str, Any], incident: Incident, mappings: list[TagMapping]
) -> list[str]:
    """Copy tag values into the event payload; returns warnings (tag absent, bad severity)."""
    warnings: list[str] = []
    details: dict[str, Any] = payload.setdefault("custom_details", {})
    for mapping in mappings:
        value = incident.tag(mapping.tag)
        if value is None:
            continue
        if mapping.field.startswith(CUSTOM_DETAILS_PREFIX):
            details[mapping.field[len(CUSTOM_DETAILS_PREFIX) :]] = value
        elif not value.strip():
            # PagerDuty refuses a blank summary or source (400): keep the relay's own value.
            warnings.append(f"tag {mapping.tag!r} is blank; not mapped to {mapping.field}")
        elif mapping.field == "severity":
            if value.lower() in _SEVERITIES:
                payload["severity"] = value.lower()
            else:
                warnings.append(f"tag {mapping.tag!r} is not a PagerDuty severity; ignored")
        elif mapping.field == "summary":
            payload["summary"] = value
        else:
            payload[mapping.field] = value  # sized by pd_limits.fit_event
    return warnings
