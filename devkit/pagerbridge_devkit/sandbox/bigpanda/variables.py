"""Webhook v2 dynamic variables: their values for one share, and the published catalogue.

Categories are BigPanda's (``GET /resources/v2.1/fields-resolver/workflows``):
``incident.*``, ``incidentTags.*``, ``primaryAlert.*``, ``primaryAlert.tags.*``,
``metadata.*`` (the share action), ``links.*``, ``assignee.*``, ``assigner.*``. The
field names inside the categories beyond the documented examples (``incident.id``,
``incident.start``, ``incident.updated_at``, ``primaryAlert.tags.host``) are this
simulator's choice; the catalogue endpoint lists exactly the ones it renders.
"""

from __future__ import annotations

from typing import Any

from pagerbridge_devkit.sandbox.bigpanda.store import SimIncident

# Alert fields that are BigPanda's own, not tags; everything else flat on an alert is a tag.
_ALERT_FIELDS = (
    "alert_id",
    "status",
    "severity",
    "description",
    "condition_name",
    "primary_property",
    "secondary_property",
    "source_system",
)
_RANK = {"ok": 0, "unknown": 1, "warning": 2, "critical": 3}

INCIDENT_FIELDS = (
    "id",
    "status",
    "severity",
    "active",
    "flapping",
    "start",
    "end",
    "changed_at",
    "updated_at",
    "environments",
    "folders",
    "alerts_count",
    "comments_count",
)
METADATA_FIELDS = (
    "trigger",
    "shared_at",
    "comment",
    "comment_id",
    "comment_by",
    "resolved_by",
)
LINK_FIELDS = ("incident",)
PERSON_FIELDS = ("username", "email")
APP_URL = "https://a.bigpanda.io"


def primary_alert(incident: SimIncident) -> dict[str, Any] | None:
    """The oldest most severe alert (BigPanda's definition of the primary alert)."""
    best: dict[str, Any] | None = None
    for alert in incident.alerts:
        rank = _RANK.get(str(alert.get("severity", alert.get("status"))), 0)
        if best is None or rank > _RANK.get(str(best.get("severity", best.get("status"))), 0):
            best = alert
    return best


def alert_tags(alert: dict[str, Any]) -> dict[str, Any]:
    """Tags of an alert given either flat or as a ``tags`` list of ``{name, value}``."""
    tags = {k: v for k, v in alert.items() if k not in _ALERT_FIELDS and k != "tags"}
    for tag in alert.get("tags") or []:
        if isinstance(tag, dict) and "name" in tag:
            tags[str(tag["name"])] = tag.get("value")
    return tags


def resolve_variables(incident: SimIncident, metadata: dict[str, Any]) -> dict[str, Any]:
    """Flat ``{"incident.id": ..., "primaryAlert.tags.host": ...}`` for one share."""
    values: dict[str, Any] = {
        "incident.id": incident.id,
        "incident.status": incident.status,
        "incident.severity": incident.severity,
        "incident.active": incident.active,
        "incident.flapping": incident.flapping,
        "incident.start": incident.startedOn,
        "incident.end": incident.endedOn,
        "incident.changed_at": incident.changedOn,
        "incident.updated_at": incident.updatedOn,
        "incident.environments": list(incident.environments),
        "incident.folders": list(incident.folders),
        "incident.alerts_count": len(incident.alerts),
        "incident.comments_count": len(incident.comments),
    }
    for tag in incident.incident_tags:
        if isinstance(tag, dict) and "tag_id" in tag:
            values[f"incidentTags.{tag['tag_id']}"] = tag.get("tag_value")
    alert = primary_alert(incident)
    if alert is not None:
        for name in _ALERT_FIELDS:
            if name in alert:
                values[f"primaryAlert.{name}"] = alert[name]
        for name, value in alert_tags(alert).items():
            values[f"primaryAlert.tags.{name}"] = value
    for name in METADATA_FIELDS:
        if name in metadata:
            values[f"metadata.{name}"] = metadata[name]
    environment = incident.environments[0] if incident.environments else ""
    values["links.incident"] = (
        f"{APP_URL}/#/app/overview/{environment}/active/incidents/{incident.id}"
    )
    return values


def catalogue(incidents: list[SimIncident]) -> dict[str, list[dict[str, str]]]:
    """The fields-resolver answer: standard fields plus the tags the org's data holds."""

    def entries(category: str, names: list[str] | tuple[str, ...]) -> list[dict[str, str]]:
        return [{"title": n, "value": f"{category}.{n}"} for n in names]

    incident_tags: set[str] = set()
    alert_tag_names: set[str] = set()
    for incident in incidents:
        incident_tags.update(
            str(t["tag_id"])
            for t in incident.incident_tags
            if isinstance(t, dict) and "tag_id" in t
        )
        for alert in incident.alerts:
            alert_tag_names.update(alert_tags(alert))
    return {
        "incident": entries("incident", INCIDENT_FIELDS),
        "incidentTags": entries("incidentTags", sorted(incident_tags)),
        "primaryAlert.tags": entries("primaryAlert.tags", sorted(alert_tag_names)),
        "primaryAlert": entries("primaryAlert", _ALERT_FIELDS),
        "metadata": entries("metadata", METADATA_FIELDS),
        "links": entries("links", LINK_FIELDS),
        "assignee": entries("assignee", PERSON_FIELDS),
        "assigner": entries("assigner", PERSON_FIELDS),
        "additional_fields": [],
    }
