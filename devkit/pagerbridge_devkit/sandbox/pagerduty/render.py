"""How PagerDuty shows its objects: REST v2 representations and Webhooks v3 event data.

Shapes follow the official REST document (``Incident``, ``IncidentNote``, ``Integration``,
``Service``, ``StatusUpdate``, ``IncidentsRespondersReference``) and the Webhooks v3
documentation (event ``data`` of type ``incident``, ``incident_note``,
``incident_status_update`` or ``incident_responder``);
the contract tests validate the REST ones against the document.
"""

from __future__ import annotations

from typing import Any

from pagerbridge_devkit.sandbox.pagerduty.state import (
    AccountState,
    SimIncident,
    SimIntegration,
    SimNote,
    SimResponder,
    SimService,
    SimStatusUpdate,
    stable_id,
)

_ESCALATION_POLICY = ("PSANDEP", "Default")


def _policy_ref(state: AccountState, inc: SimIncident) -> dict[str, Any]:
    if inc.escalation_policy is None:
        return state.reference("escalation_policy", *_ESCALATION_POLICY)
    name = inc.escalation_policy
    return state.reference("escalation_policy", stable_id("escalation_policy", name), name)


def _priority_ref(state: AccountState, inc: SimIncident) -> dict[str, Any] | None:
    if inc.priority is None:
        return None
    return state.reference("priority", stable_id("priority", inc.priority), inc.priority)


def _incident_ref(state: AccountState, inc: SimIncident) -> dict[str, Any]:
    return {
        "id": inc.id,
        "type": "incident_reference",
        "summary": inc.title,
        "self": f"{state.base_url}/incidents/{inc.id}",
        "html_url": f"{state.html_url}/incidents/{inc.id}",
    }


def _service_ref(state: AccountState, incident: SimIncident) -> dict[str, Any]:
    service = state.services.get(incident.service_id)
    name = service.name if service else incident.service_id
    return state.reference("service", incident.service_id, name)


def incident(state: AccountState, inc: SimIncident) -> dict[str, Any]:
    """The REST ``Incident`` object."""
    triggered = 0 if inc.status == "resolved" else 1
    body: dict[str, Any] = {
        "id": inc.id,
        "type": "incident",
        "summary": f"[#{inc.number}] {inc.title}",
        "self": f"{state.base_url}/incidents/{inc.id}",
        "html_url": f"{state.html_url}/incidents/{inc.id}",
        "incident_number": inc.number,
        "title": inc.title,
        "created_at": inc.created_at,
        "updated_at": inc.updated_at,
        "status": inc.status,
        "incident_key": inc.incident_key,
        "service": _service_ref(state, inc),
        "assignments": (
            []
            if inc.status == "resolved"
            else [
                {"at": inc.updated_at, "assignee": state.user_agent(email)}
                for email in inc.assignees
            ]
        ),
        "assigned_via": "direct_assignment" if inc.assignees else "escalation_policy",
        "last_status_change_at": inc.last_status_change_at,
        "last_status_change_by": inc.last_status_change_by,
        "first_trigger_log_entry": {
            "id": stable_id("log_entry", inc.id),
            "type": "trigger_log_entry_reference",
            "summary": "Triggered through the API.",
            "self": f"{state.base_url}/log_entries/{stable_id('log_entry', inc.id)}",
            "html_url": f"{state.html_url}/incidents/{inc.id}/log_entries/"
            f"{stable_id('log_entry', inc.id)}",
        },
        "alert_counts": {"all": 1, "triggered": triggered, "resolved": 1 - triggered},
        "is_mergeable": True,
        "escalation_policy": _policy_ref(state, inc),
        "teams": [],
        "pending_actions": [],
        "acknowledgements": [],
        "urgency": inc.urgency,
    }
    if inc.priority is not None:
        body["priority"] = _priority_ref(state, inc)
    if inc.resolved_at is not None:
        body["resolved_at"] = inc.resolved_at
    if inc.acknowledged_at is not None and inc.acknowledged_by is not None:
        # An acknowledger is a user or a service; an integration acts for its service.
        acknowledger = inc.acknowledged_by
        if acknowledger["type"] != "user_reference":
            acknowledger = _service_ref(state, inc)
        body["acknowledgements"] = [{"at": inc.acknowledged_at, "acknowledger": acknowledger}]
    return body


def note(state: AccountState, n: SimNote) -> dict[str, Any]:
    """The REST ``IncidentNote`` object."""
    return {
        "id": n.id,
        "user": state.user_agent(n.user_email),
        "channel": {"summary": "The PagerDuty website or APIs"},
        "content": n.content,
        "created_at": n.created_at,
    }


def webhook_incident_data(state: AccountState, inc: SimIncident) -> dict[str, Any]:
    """Webhooks v3 ``event.data`` of type ``incident``."""
    return {
        "id": inc.id,
        "type": "incident",
        "self": f"{state.base_url}/incidents/{inc.id}",
        "html_url": f"{state.html_url}/incidents/{inc.id}",
        "number": inc.number,
        "status": inc.status,
        "incident_key": inc.incident_key,
        "created_at": inc.created_at,
        "title": inc.title,
        "service": _service_ref(state, inc),
        "assignees": [state.user_agent(email) for email in inc.assignees],
        "escalation_policy": _policy_ref(state, inc),
        "teams": [],
        "priority": _priority_ref(state, inc),
        "urgency": inc.urgency,
        "conference_bridge": None,
        "resolve_reason": None,
    }


def webhook_note_data(state: AccountState, inc: SimIncident, n: SimNote) -> dict[str, Any]:
    """Webhooks v3 ``event.data`` of type ``incident_note``: the note and a reference only."""
    return {
        "incident": _incident_ref(state, inc),
        "id": n.id,
        "content": n.content,
        "trimmed": False,
        "type": "incident_note",
    }


def integration(state: AccountState, item: SimIntegration) -> dict[str, Any]:
    """The REST ``Integration`` object. ``integration_key`` (Events API integrations) is
    not in the document's schema, which leaves the object open: PagerDuty returns it, and
    it is the routing key events are sent with."""
    service = state.services.get(item.service_id)
    path = f"services/{item.service_id}/integrations/{item.id}"
    body: dict[str, Any] = {
        "id": item.id,
        "type": item.type,
        "summary": item.name,
        "name": item.name,
        "self": f"{state.base_url}/{path}",
        "html_url": f"{state.html_url}/{path}",
        "service": state.reference(
            "service", item.service_id, service.name if service else item.service_id
        ),
        "created_at": item.created_at,
    }
    if item.integration_key is not None:
        body["integration_key"] = item.integration_key
    return body


def service(state: AccountState, item: SimService, *, with_integrations: bool) -> dict[str, Any]:
    """The REST ``Service`` object. Its ``integrations`` are ``IntegrationReference``s, as
    the document's schema says even with ``include[]=integrations`` (whose description
    promises full objects): then each also carries its ``name`` and ``created_at``, never
    an ``integration_key`` (read one integration for that)."""
    integrations = []
    for i in state.service_integrations(item.id):
        ref = {**state.reference("integration", i.id, i.name), "type": f"{i.type}_reference"}
        path = f"services/{item.id}/integrations/{i.id}"
        ref.update(self=f"{state.base_url}/{path}", html_url=f"{state.html_url}/{path}")
        if with_integrations:
            ref.update(name=i.name, created_at=i.created_at)
        integrations.append(ref)
    policy_id, policy_name = _ESCALATION_POLICY
    return {
        **state.reference("service", item.id, item.name),
        "type": "service",
        "name": item.name,
        "status": "active",
        "escalation_policy": state.reference("escalation_policy", policy_id, policy_name),
        "integrations": integrations,
    }


def webhook_status_update_data(
    state: AccountState, inc: SimIncident, update: SimStatusUpdate
) -> dict[str, Any]:
    """Webhooks v3 ``event.data`` of type ``incident_status_update`` (fields of the REST
    ``StatusUpdate``: ``id``, ``message``, ``sender``, ``created_at``; plus the incident)."""
    return {
        "id": update.id,
        "type": "incident_status_update",
        "incident": _incident_ref(state, inc),
        "message": update.message,
        "sender": state.user_agent(update.sender_email),
        "created_at": update.created_at,
    }


def webhook_responder_data(
    state: AccountState, inc: SimIncident, responder: SimResponder
) -> dict[str, Any]:
    """Webhooks v3 ``event.data`` of type ``incident_responder`` (fields of the REST
    ``IncidentsRespondersReference``: ``incident``, ``user``, ``requester``, ``state``,
    ``message``, ``requested_at``, ``updated_at``)."""
    return {
        "type": "incident_responder",
        "incident": _incident_ref(state, inc),
        "user": state.user_agent(responder.user_email),
        "escalation_policy": None,
        "requester": state.user_agent(responder.requester_email),
        "message": responder.message,
        "state": "pending",
        "requested_at": responder.requested_at,
        "updated_at": responder.requested_at,
    }
