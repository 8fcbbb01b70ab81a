"""The simulated PagerDuty account: services, incidents, notes and their state machine.

One :class:`AccountState` is shared by the HTTP handlers (running on the server's event
loop) and by test code acting as a human (another thread), so every read and write
holds its lock. Each mutation returns the :class:`Change` records it caused; the caller
turns them into Webhooks v3 events after releasing the lock.

The Events API state machine follows PagerDuty's documentation: events for one
``dedup_key`` apply to the open incident only when they come through the same routing
key as the trigger that opened it (otherwise acknowledge/resolve are dropped); once
resolved, a new trigger opens a new incident with the same ``incident_key``.

Acknowledged incidents, as documented ("Send an Alert Event", developer.pagerduty.com,
PagerDuty/developer-docs ``docs/events-API-v2/02-Trigger-Events.md``): an ``acknowledge``
puts the open incident in the acknowledged state; a ``trigger`` with its ``dedup_key``
is a trigger log entry on the open alert, and "while an incident is acknowledged, it
won't generate any additional notifications, even if it receives new trigger events": it
stays acknowledged, with no webhook and no notification (``notified`` counts the pages:
the first trigger, and each return to triggered). Only the service's acknowledgement
timeout (:meth:`AccountState.ack_timeout`), or a person, makes it triggered again; a
``resolve`` resolves it.
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

IncidentStatus = Literal["triggered", "acknowledged", "resolved"]

#: What made a change: a user (by e-mail) or the Events API integration of a service.
Agent = dict[str, Any]


def now_iso(ms: bool = False) -> str:
    moment = datetime.now(UTC)
    if ms:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def stable_id(kind: str, value: str) -> str:
    """A PagerDuty-looking id (``P`` + 6 characters) derived from a value, never revealing it."""
    digest = hashlib.sha256(f"{kind}:{value}".encode()).digest()
    return "P" + "".join(_ID_ALPHABET[b % len(_ID_ALPHABET)] for b in digest[:6])


def random_id() -> str:
    return "Q" + secrets.token_hex(7).upper()


@dataclass
class SimNote:
    id: str
    content: str
    user_email: str
    created_at: str


@dataclass(frozen=True)
class SimStatusUpdate:
    """A published status update (REST ``StatusUpdate``)."""

    id: str
    message: str
    sender_email: str
    created_at: str


@dataclass(frozen=True)
class SimResponder:
    """A responder request for a user (REST ``IncidentsRespondersReference``)."""

    user_email: str
    requester_email: str
    message: str
    requested_at: str


@dataclass
class SimService:
    id: str
    name: str


@dataclass
class SimIntegration:
    """An integration on a service (REST ``/services/{id}/integrations``); an Events API
    v2 one carries the ``integration_key`` events are routed with."""

    id: str
    type: str
    name: str
    service_id: str
    created_at: str
    integration_key: str | None = None


@dataclass
class SimIncident:
    id: str
    number: int
    incident_key: str
    routing_key: str
    service_id: str
    status: IncidentStatus
    title: str
    urgency: Literal["high", "low"]
    created_at: str
    updated_at: str
    last_status_change_at: str
    last_status_change_by: Agent
    resolved_at: str | None = None
    acknowledged_at: str | None = None
    acknowledged_by: Agent | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    notes: list[SimNote] = field(default_factory=list)
    # When responders were notified: at the trigger that opened it, and each time it went
    # back to triggered (acknowledgement timeout, a person). De-duplicated triggers: never.
    notified: list[str] = field(default_factory=list)
    #: Assigned users by e-mail (empty: assigned through the escalation policy only).
    assignees: list[str] = field(default_factory=list)
    escalation_policy: str | None = None  # name; None: the account's default policy
    priority: str | None = None  # a priority's name ("P1"), None: no priority
    status_updates: list[SimStatusUpdate] = field(default_factory=list)
    responders: list[SimResponder] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status != "resolved"

    @property
    def links(self) -> list[dict[str, Any]]:
        """``links[]`` of the latest trigger (what the incident's alert shows)."""
        return list(self._latest_trigger().get("links") or [])

    @property
    def images(self) -> list[dict[str, Any]]:
        """``images[]`` of the latest trigger."""
        return list(self._latest_trigger().get("images") or [])

    def _latest_trigger(self) -> dict[str, Any]:
        for event in reversed(self.events):
            if event.get("event_action") == "trigger":
                trigger: dict[str, Any] = event
                return trigger
        return {}


@dataclass(frozen=True)
class Change:
    """One webhook-worthy change: ``incident.<kind>`` caused by ``agent``.

    ``incident`` is a snapshot taken under the lock, so a webhook shows the incident as
    the change left it even if it changes again before the webhook is rendered.
    """

    event_type: str
    incident: SimIncident
    agent: Agent
    note: SimNote | None = None
    status_update: SimStatusUpdate | None = None
    responder: SimResponder | None = None

    @classmethod
    def of(
        cls,
        event_type: str,
        incident: SimIncident,
        agent: Agent,
        note: SimNote | None = None,
        *,
        status_update: SimStatusUpdate | None = None,
        responder: SimResponder | None = None,
    ) -> Change:
        snapshot = object.__new__(SimIncident)  # a shallow copy, without __init__'s cost
        snapshot.__dict__.update(incident.__dict__)
        snapshot.assignees = list(incident.assignees)
        return cls(event_type, snapshot, agent, note, status_update, responder)


class AccountState:
    """Services, routing keys and incidents of one simulated account (thread-safe)."""

    def __init__(self, base_url: str, html_url: str) -> None:
        self.lock = threading.RLock()
        self.base_url = base_url
        self.html_url = html_url
        self.services: dict[str, SimService] = {}
        self.routing_keys: dict[str, str] = {}  # routing key -> service id
        self.integrations: dict[str, SimIntegration] = {}  # by id
        self.revoked_keys: set[str] = set()  # keys of deleted integrations: refused
        self.strict_routing_keys = False
        self._incidents: dict[str, SimIncident] = {}
        self._open: dict[tuple[str, str], str] = {}  # (routing key, dedup key) -> id
        self._numbers = itertools.count(1)
        self._integration_agents: dict[str, tuple[str, Agent]] = {}

    # -- services and references ------------------------------------------------------

    def add_service(self, service_id: str, routing_key: str, name: str | None = None) -> None:
        with self.lock:
            self.services.setdefault(service_id, SimService(service_id, name or service_id))
            self.routing_keys[routing_key] = service_id

    def service_for(self, routing_key: str) -> str | None:
        """The service a routing key belongs to; an implicit one unless keys are strict
        (never for the key of a deleted integration)."""
        with self.lock:
            service_id = self.routing_keys.get(routing_key)
            if service_id is None and routing_key in self.revoked_keys:
                return None
            if service_id is None and not self.strict_routing_keys:
                service_id = stable_id("service", routing_key)
                self.add_service(service_id, routing_key, f"Service {service_id}")
            return service_id

    # -- service integrations ----------------------------------------------------------

    def add_integration(self, service_id: str, type_: str, name: str) -> SimIntegration:
        """A new integration; an Events API v2 one gets a fresh 32-character key that
        routes events to ``service_id`` from now on."""
        with self.lock:
            key = None
            if type_ in (
                "events_api_v2_inbound_integration",
                "generic_events_api_inbound_integration",
            ):
                key = secrets.token_hex(16)  # 32 characters, like PagerDuty's keys
                self.routing_keys[key] = service_id
            integration = SimIntegration(
                "P" + secrets.token_hex(3).upper(), type_, name, service_id, now_iso(), key
            )
            self.integrations[integration.id] = integration
            return integration

    def service_integrations(self, service_id: str) -> list[SimIntegration]:
        with self.lock:
            return [i for i in self.integrations.values() if i.service_id == service_id]

    def integration(self, service_id: str, integration_id: str) -> SimIntegration | None:
        with self.lock:
            found = self.integrations.get(integration_id)
            return found if found is not None and found.service_id == service_id else None

    def delete_integration(self, integration_id: str) -> None:
        """Gone, and its key with it: events sent with it are refused."""
        with self.lock:
            integration = self.integrations.pop(integration_id)
            if integration.integration_key is not None:
                self.routing_keys.pop(integration.integration_key, None)
                self.revoked_keys.add(integration.integration_key)

    def reference(self, kind: str, id_: str, summary: str) -> dict[str, Any]:
        path = {
            "service": "services",
            "user": "users",
            "escalation_policy": "escalation_policies",
            "priority": "priorities",
        }
        plural = path.get(kind, kind + "s")
        return {
            "id": id_,
            "type": f"{kind}_reference",
            "summary": summary,
            "self": f"{self.base_url}/{plural}/{id_}",
            "html_url": f"{self.html_url}/{plural}/{id_}",
        }

    def user_agent(self, email: str) -> Agent:
        return self.reference("user", stable_id("user", email.lower()), email.split("@")[0])

    def integration_agent(self, routing_key: str, service_id: str) -> Agent:
        cached = self._integration_agents.get(routing_key)
        if cached is not None and cached[0] == service_id:
            return cached[1]
        integration_id = stable_id("integration", routing_key)
        agent = {
            "id": integration_id,
            "type": "integration_reference",
            "summary": "Events API V2",
            "self": f"{self.base_url}/services/{service_id}/integrations/{integration_id}",
            "html_url": f"{self.html_url}/services/{service_id}/integrations/{integration_id}",
        }
        self._integration_agents[routing_key] = (service_id, agent)
        return agent

    # -- queries -----------------------------------------------------------------------

    def incidents(self) -> list[SimIncident]:
        with self.lock:
            return sorted(self._incidents.values(), key=lambda i: i.number)

    def incident(self, incident_id: str) -> SimIncident | None:
        with self.lock:
            return self._incidents.get(incident_id)

    def incident_by_key(self, dedup_key: str) -> SimIncident | None:
        """The newest incident with this key, an open one first."""
        with self.lock:
            found = [i for i in self._incidents.values() if i.incident_key == dedup_key]
            found.sort(key=lambda i: (i.is_open, i.number))
            return found[-1] if found else None

    # -- Events API --------------------------------------------------------------------

    def apply_event(self, event: dict[str, Any], service_id: str) -> tuple[str, list[Change]]:
        """Apply one valid event; returns the dedup key and the changes it caused.

        Events that match no open incident (or match it through another routing key) are
        dropped silently, as PagerDuty does: the caller still answers 202.
        """
        action = event["event_action"]
        routing_key: str = event["routing_key"]
        dedup_key: str = event.get("dedup_key") or uuid.uuid4().hex
        with self.lock:
            open_id = self._open.get((routing_key, dedup_key))
            incident = self._incidents.get(open_id) if open_id else None
            agent = self.integration_agent(routing_key, service_id)
            if action == "trigger":
                if incident is not None:
                    incident.events.append(event)
                    incident.updated_at = now_iso()
                    return dedup_key, []
                incident = self._open_incident(event, dedup_key, service_id, agent)
                return dedup_key, [Change.of("incident.triggered", incident, agent)]
            if incident is None:
                return dedup_key, []
            incident.events.append(event)
            target: IncidentStatus = "acknowledged" if action == "acknowledge" else "resolved"
            return dedup_key, self._set_status(incident, target, agent)

    def _open_incident(
        self, event: dict[str, Any], dedup_key: str, service_id: str, agent: Agent
    ) -> SimIncident:
        at = now_iso()
        payload = event.get("payload", {})
        incident = SimIncident(
            id=random_id(),
            number=next(self._numbers),
            incident_key=dedup_key,
            routing_key=event["routing_key"],
            service_id=service_id,
            status="triggered",
            title=payload.get("summary", ""),
            urgency="high",
            created_at=at,
            updated_at=at,
            last_status_change_at=at,
            last_status_change_by=agent,
            events=[event],
            notified=[at],
        )
        self._incidents[incident.id] = incident
        self._open[(incident.routing_key, dedup_key)] = incident.id
        return incident

    # -- status changes (Events API, REST and humans) ----------------------------------

    def _set_status(
        self, incident: SimIncident, status: IncidentStatus, agent: Agent
    ) -> list[Change]:
        """Move an incident to ``status``; no change, no webhook."""
        previous = incident.status
        if previous == status:
            return []
        at = now_iso()
        kinds: list[str] = []
        key = (incident.routing_key, incident.incident_key)
        if previous == "resolved":
            # Reopening: only if no newer incident holds the key meanwhile.
            self._open.setdefault(key, incident.id)
            incident.resolved_at = None
            kinds.append("incident.reopened")
        incident.status = status
        incident.updated_at = incident.last_status_change_at = at
        incident.last_status_change_by = agent
        if status == "resolved":
            incident.resolved_at = at
            incident.acknowledged_at = incident.acknowledged_by = None
            if self._open.get(key) == incident.id:
                del self._open[key]
            kinds.append("incident.resolved")
        elif status == "acknowledged":
            incident.acknowledged_at, incident.acknowledged_by = at, agent
            kinds.append("incident.acknowledged")
        else:
            incident.acknowledged_at = incident.acknowledged_by = None
            incident.notified.append(at)  # triggered again: escalation resumes, it pages
            if previous == "acknowledged":
                kinds.append("incident.unacknowledged")
        return [Change.of(kind, incident, agent) for kind in kinds]

    def ack_timeout(self, incident_id: str) -> list[Change]:
        """The service's acknowledgement timeout expires: an acknowledged incident goes back
        to triggered (``incident.unacknowledged``, by its service) and pages again; any
        other incident is left as it is."""
        with self.lock:
            incident = self._require(incident_id)
            if incident.status != "acknowledged":
                return []
            service = self.services.get(incident.service_id)
            agent = self.reference(
                "service", incident.service_id, service.name if service else incident.service_id
            )
            return self._set_status(incident, "triggered", agent)

    def set_status(self, incident_id: str, status: IncidentStatus, by_email: str) -> list[Change]:
        """A user changes an incident's status (REST ``PUT`` or a human in the web UI)."""
        with self.lock:
            incident = self._require(incident_id)
            return self._set_status(incident, status, self.user_agent(by_email))

    def add_note(self, incident_id: str, content: str, by_email: str) -> tuple[SimNote, Change]:
        with self.lock:
            incident = self._require(incident_id)
            note = SimNote(random_id(), content, by_email, now_iso())
            incident.notes.append(note)
            incident.updated_at = note.created_at
            return note, Change.of("incident.annotated", incident, self.user_agent(by_email), note)

    # -- responders' other actions (REST or a human in the web UI) ----------------------

    def _touch(self, incident: SimIncident) -> None:
        incident.updated_at = now_iso()

    def reassign(
        self,
        incident_id: str,
        assignees: list[str],
        by_email: str,
        *,
        kind: str = "incident.reassigned",
        escalation_policy: str | None = None,
    ) -> list[Change]:
        """New assignees (and, for a delegation, a new escalation policy): one change of
        ``kind`` (``incident.reassigned``, ``incident.escalated`` or
        ``incident.delegated``); an open incident only, as PagerDuty allows."""
        with self.lock:
            incident = self._require(incident_id)
            if not incident.is_open:
                return []
            incident.assignees = list(dict.fromkeys(assignees))
            if escalation_policy is not None:
                incident.escalation_policy = escalation_policy
            self._touch(incident)
            return [Change.of(kind, incident, self.user_agent(by_email))]

    def set_priority(self, incident_id: str, priority: str | None, by_email: str) -> list[Change]:
        with self.lock:
            incident = self._require(incident_id)
            if incident.priority == priority:
                return []
            incident.priority = priority
            self._touch(incident)
            return [Change.of("incident.priority_updated", incident, self.user_agent(by_email))]

    def publish_status_update(self, incident_id: str, message: str, by_email: str) -> Change:
        with self.lock:
            incident = self._require(incident_id)
            update = SimStatusUpdate(random_id(), message, by_email, now_iso())
            incident.status_updates.append(update)
            self._touch(incident)
            return Change.of(
                "incident.status_update_published",
                incident,
                self.user_agent(by_email),
                status_update=update,
            )

    def add_responder(
        self, incident_id: str, user_email: str, by_email: str, message: str = ""
    ) -> Change:
        with self.lock:
            incident = self._require(incident_id)
            responder = SimResponder(user_email, by_email, message, now_iso())
            incident.responders.append(responder)
            self._touch(incident)
            return Change.of(
                "incident.responder.added",
                incident,
                self.user_agent(by_email),
                responder=responder,
            )

    def _require(self, incident_id: str) -> SimIncident:
        incident = self._incidents.get(incident_id)
        if incident is None:
            raise KeyError(incident_id)
        return incident
