"""PagerDuty incident changes (Webhooks v3) as BigPanda comment text: who did what.

Pure: an event's ``event_type``, its ``data`` and its ``agent`` in, the PagerDuty incident
it concerns and one line of text out. The fields read are the ones PagerDuty documents
for each event (``specs/pagerduty/webhooks-v3.md``, named as in the REST OpenAPI document):

=================================  ====================  ==================================
event type                         ``data`` type         read
=================================  ====================  ==================================
``incident.acknowledged``,         ``incident``          ``id``, ``incident_key``
``unacknowledged``, ``reopened``
``incident.reassigned``,           ``incident``          ``assignees[].summary``,
``escalated``, ``delegated``                             ``escalation_policy.summary``
``incident.priority_updated``      ``incident``          ``priority.summary`` (may be null)
``incident.status_update_published`` ``incident_status_update``  ``incident.id``, ``message``
``incident.responder.added``       ``incident_responder``  ``incident.id``, ``user`` or
                                                         ``escalation_policy``, ``requester``
=================================  ====================  ==================================

Who: ``event.agent.summary`` (a user's name, or the integration or service that acted);
for a responder request the ``requester`` when no agent is given. An acknowledgement made
through an Events API integration is the relay's own (a BigPanda snooze, see
:func:`is_relay_acknowledgement`) and is not mirrored back.

Priority: the webhook carries only the new priority, and PagerDuty documents no "previous
priority" field. The relay does not keep one either: webhooks can be lost (PagerDuty gives
up after about 20 minutes of failed deliveries) or arrive from another replica first, so a
remembered previous value could state a change that never happened. The comment says what
is certain: "Priority set to P2 in PagerDuty by Jane Doe".

Every name is cut to :data:`~.limits.MAX_COMMENT_NAME` characters, lists to
:data:`~.limits.MAX_COMMENT_NAMES` names, and the whole text (a status update message can be
long) to :data:`~.limits.MAX_COMMENT` less room for the relay's marker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pagerbridge.relay.errors import InvalidIncident
from pagerbridge.relay.incidents.identifiers import is_pagerduty_id, is_safe_text_id
from pagerbridge.relay.incidents.limits import (
    MAX_COMMENT,
    MAX_COMMENT_NAME,
    MAX_COMMENT_NAMES,
    cut_text,
)

#: Room kept for what :func:`pagerbridge.relay.incidents.echo.comment_text` appends.
_MARKER_ROOM = 200
MAX_TEXT = MAX_COMMENT - _MARKER_ROOM


@dataclass(frozen=True)
class LifecycleComment:
    """One BigPanda comment about a PagerDuty incident's change."""

    pd_incident_id: str
    incident_key: str | None  # the BigPanda incident id, when the webhook carries it
    text: str


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _name(value: Any) -> str | None:
    """A reference's ``summary`` (else its ``name``, ``email``), one line, cut."""
    if not isinstance(value, dict):
        return None
    text = _str(value.get("summary")) or _str(value.get("name")) or _str(value.get("email"))
    if text is None:
        return None
    return cut_text(" ".join(text.split()), MAX_COMMENT_NAME)


def _names(values: Any) -> str | None:
    if not isinstance(values, list):
        return None
    names = [n for n in (_name(v) for v in values) if n]
    if not names:
        return None
    shown = ", ".join(names[:MAX_COMMENT_NAMES])
    rest = len(names) - MAX_COMMENT_NAMES
    return f"{shown} and {rest} more" if rest > 0 else shown


def _pd_id(value: Any, what: str) -> str | None:
    text = _str(value)
    if text is not None and not is_pagerduty_id(text):
        raise InvalidIncident(f"{what} is not a PagerDuty id")
    return text


def _by(agent: str | None) -> str:
    return f" by {agent}" if agent else ""


def _policy(data: dict[str, Any]) -> str | None:
    return _name(data.get("escalation_policy"))


def _acknowledged(data: dict[str, Any], agent: str | None) -> str:
    return f"Acknowledged in PagerDuty{_by(agent)}"


def _unacknowledged(data: dict[str, Any], agent: str | None) -> str:
    return f"Unacknowledged in PagerDuty{_by(agent)}"


def _reopened(data: dict[str, Any], agent: str | None) -> str:
    return f"Reopened in PagerDuty{_by(agent)}"


def _assigned(verb: str) -> Callable[[dict[str, Any], str | None], str]:
    def text(data: dict[str, Any], agent: str | None) -> str:
        assignees, policy = _names(data.get("assignees")), _policy(data)
        if assignees and policy:
            target = f" to {assignees} (escalation policy {policy})"
        elif assignees or policy:
            target = f" to {assignees or policy}"
        else:
            target = ""
        return f"{verb} in PagerDuty{target}{_by(agent)}"

    return text


def _delegated(data: dict[str, Any], agent: str | None) -> str:
    policy, assignees = _policy(data), _names(data.get("assignees"))
    target = f" to escalation policy {policy}" if policy else ""
    if assignees:
        target += f", assigned to {assignees}"
    return f"Delegated in PagerDuty{target}{_by(agent)}"


def _priority(data: dict[str, Any], agent: str | None) -> str:
    priority = _name(data.get("priority"))
    if priority is None:
        return f"Priority removed in PagerDuty{_by(agent)}"
    return f"Priority set to {priority} in PagerDuty{_by(agent)}"


def _status_update(data: dict[str, Any], agent: str | None) -> str:
    who = agent or _name(data.get("sender"))
    message = _str(data.get("message"))
    head = f"Status update published in PagerDuty{_by(who)}"
    return f"{head}: {message.strip()}" if message else head


def _responder(data: dict[str, Any], agent: str | None) -> str:
    responder = _name(data.get("user")) or _name(data.get("escalation_policy"))
    who = agent or _name(data.get("requester"))
    what = f"Responder {responder} added" if responder else "Responder added"
    return f"{what} in PagerDuty{_by(who)}"


_TEXT: dict[str, Callable[[dict[str, Any], str | None], str]] = {
    "incident.acknowledged": _acknowledged,
    "incident.unacknowledged": _unacknowledged,
    "incident.reassigned": _assigned("Reassigned"),
    "incident.escalated": _assigned("Escalated"),
    "incident.delegated": _delegated,
    "incident.priority_updated": _priority,
    "incident.status_update_published": _status_update,
    "incident.responder.added": _responder,
    "incident.reopened": _reopened,
}
#: Event types whose ``data`` is not the incident but refers to it (``data.incident``).
_REFERS = frozenset({"incident.status_update_published", "incident.responder.added"})
EVENT_TYPES: frozenset[str] = frozenset(_TEXT)


def is_relay_acknowledgement(event: dict[str, Any]) -> bool:
    """An ``incident.acknowledged`` made through an Events API integration: on an incident
    of ours that is the relay's own acknowledge (a BigPanda snooze, ``sync.snooze``), sent
    with our routing key, so mirroring it back would only echo BigPanda's own state. A
    person's acknowledgement has a ``user_reference`` agent."""
    agent = event.get("agent")
    kind = agent.get("type") if isinstance(agent, dict) else None
    return (
        event.get("event_type") == "incident.acknowledged"
        and isinstance(kind, str)
        and kind.endswith("integration_reference")
    )


def agent_name(event: dict[str, Any]) -> str | None:
    """Who acted: ``event.agent``'s summary (else its e-mail), or None."""
    return _name(event.get("agent"))


def comment_for(event_type: str, data: Any, agent: str | None) -> LifecycleComment | None:
    """The comment for one change, or None (not a type described here, or no incident)."""
    text_of = _TEXT.get(event_type)
    if text_of is None or not isinstance(data, dict):
        return None
    key: str | None = None
    if event_type in _REFERS:
        incident = data.get("incident")
        pd_id = (
            _pd_id(incident.get("id"), "data.incident.id") if isinstance(incident, dict) else None
        )
    else:
        pd_id = _pd_id(data.get("id"), "data.id")
        key = _str(data.get("incident_key"))
        if key is not None and not is_safe_text_id(key):
            raise InvalidIncident("incident_key is not a plausible BigPanda incident id")
    if pd_id is None:
        return None
    if agent is not None:
        agent = cut_text(" ".join(agent.split()), MAX_COMMENT_NAME) or None
    return LifecycleComment(pd_id, key, cut_text(text_of(data, agent), MAX_TEXT))
