"""BigPanda's incident store: the correlation engine and its users, seen from outside.

Every change (open, update, comment, resolve) produces a :class:`Change` carrying the
Webhook v2 trigger name and a snapshot of the whole incident, handed to a listener
*while the store lock is held*, so the listener sees one incident's changes in the order
they happened even when the test thread and the HTTP API change it concurrently.
"""

from __future__ import annotations

import copy
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["critical", "warning", "unknown", "ok"]
STATUSES: tuple[Status, ...] = ("critical", "warning", "unknown", "ok")
# BigPanda orders statuses critical > warning > unknown > ok; ``severity`` is the highest
# status an incident (or alert) ever reached.
_RANK: dict[str, int] = {"ok": 0, "unknown": 1, "warning": 2, "critical": 3}

# Webhook v2 trigger names (docs.bigpanda.io "Notifications Webhook v2").
TRIGGER_NEW = "incident#new"
TRIGGER_UPDATED = "incident#updated"
TRIGGER_COMMENTED = "incident#commented"
TRIGGER_CLOSED = "incident#closed"
TRIGGER_REOPEN = "incident#reopen"
TRIGGER_TAG_UPSERTED = "incident-tag#upserted"
TRIGGER_SNOOZED = "incident#snoozed"
TRIGGER_BECOME_FLAPPING = "incident#become-flapping"


class IncidentNotFound(KeyError):
    """No incident with that id."""


class AlreadyResolved(Exception):
    """Resolving an incident that is no longer active (the API answers 409)."""


def new_id() -> str:
    """24 hex digits, the shape of BigPanda's (Mongo ObjectId) incident ids."""
    return secrets.token_hex(12)


def max_status(statuses: Iterable[str]) -> str:
    return max(statuses, key=lambda s: _RANK.get(s, 0), default="ok")


def _now() -> int:
    return int(time.time())


@dataclass
class SimIncident:
    """One incident; :meth:`to_payload` is the body BigPanda's webhook carries."""

    id: str
    status: str
    active: bool
    severity: str
    environments: list[str]
    folders: list[str]
    startedOn: int  # BigPanda's own field names
    changedOn: int
    updatedOn: int
    endedOn: int | None = None
    flapping: bool = False
    # BigPanda's ``snooze`` object {snoozed, end_time, autoCancel}; None: never snoozed.
    snooze: dict[str, Any] | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)
    incident_tags: list[dict[str, Any]] = field(default_factory=list)
    comments: list[dict[str, Any]] = field(default_factory=list)

    def to_payload(self) -> dict[str, Any]:
        """The incident as in ``specs/bigpanda/samples/`` (bare, not wrapped)."""
        body: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "active": self.active,
            "severity": self.severity,
            "flapping": self.flapping,
            "environments": list(self.environments),
            "folders": list(self.folders),
            "startedOn": self.startedOn,
            "changedOn": self.changedOn,
            "updatedOn": self.updatedOn,
            "incident_tags": copy.deepcopy(self.incident_tags),
            "alerts": copy.deepcopy(self.alerts),
        }
        if self.snooze is not None:
            body["snooze"] = dict(self.snooze)
        if self.comments:
            body["comments"] = copy.deepcopy(self.comments)
        if self.endedOn is not None:
            body["endedOn"] = self.endedOn
        return body


@dataclass(frozen=True)
class Change:
    """What a listener (the webhook sender) gets for each change."""

    trigger: str
    incident: SimIncident  # snapshot at the time of the change
    metadata: dict[str, Any]  # the share action: trigger, time, comment, ...


@dataclass(frozen=True)
class Activity:
    """An entry of the incident's activity feed (``GET .../incidents/{id}/activities``)."""

    id: str
    incident_id: str
    type: str
    created_by: str
    created_at: int
    comment: str | None = None

    def to_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "id": self.id,
            "incident_id": self.incident_id,
            "type": self.type,
            "created_by": self.created_by,
            "created_at": self.created_at,
        }
        if self.comment is not None:
            entry["comment"] = self.comment
        return entry


Listener = Callable[[Change], None]
SYSTEM_USER = "bigpanda"


class IncidentStore:
    """Thread-safe incidents of one BigPanda environment."""

    def __init__(self, environment_id: str, listener: Listener | None = None) -> None:
        self.environment_id = environment_id
        self._listener = listener
        self._lock = threading.RLock()
        self._incidents: dict[str, SimIncident] = {}
        self._activities: dict[str, list[Activity]] = {}

    def set_listener(self, listener: Listener | None) -> None:
        with self._lock:
            self._listener = listener

    # -- reads ---------------------------------------------------------------------------

    def get(self, incident_id: str) -> SimIncident:
        with self._lock:
            return copy.deepcopy(self._require(incident_id))

    def all(self) -> list[SimIncident]:
        with self._lock:
            return [copy.deepcopy(i) for i in self._incidents.values()]

    def activities(self, incident_id: str) -> list[Activity]:
        with self._lock:
            self._require(incident_id)
            return list(self._activities.get(incident_id, []))

    # -- changes -------------------------------------------------------------------------

    def open(
        self,
        alerts: list[dict[str, Any]],
        incident_tags: list[dict[str, Any]] | None = None,
        status: str | None = None,
        incident_id: str | None = None,
    ) -> SimIncident:
        alerts = [_normalise_alert(a) for a in copy.deepcopy(alerts)]
        status = status or max_status(str(a.get("status", "critical")) for a in alerts)
        _check_status(status)
        if status == "ok":
            raise ValueError("a new incident cannot be ok")
        now = _now()
        with self._lock:
            incident_id = incident_id or new_id()
            if incident_id in self._incidents:
                raise ValueError(f"incident {incident_id} exists")
            incident = SimIncident(
                id=incident_id,
                status=status,
                active=True,
                severity=status,
                environments=[self.environment_id],
                folders=["active"],
                startedOn=now,
                changedOn=now,
                updatedOn=now,
                alerts=alerts,
                incident_tags=copy.deepcopy(incident_tags or []),
            )
            self._incidents[incident_id] = incident
            self._record(incident_id, "new", SYSTEM_USER, now)
            return self._emit(TRIGGER_NEW, incident, {})

    def update(
        self,
        incident_id: str,
        *,
        status: str | None = None,
        alerts: list[dict[str, Any]] | None = None,
        incident_tags: list[dict[str, Any]] | None = None,
        flapping: bool | None = None,
    ) -> SimIncident:
        """Correlation update. ``status="ok"`` closes, a status on a closed one reopens."""
        if status is not None:
            _check_status(status)
        if status == "ok":
            if alerts is not None or incident_tags is not None:
                self.update(incident_id, alerts=alerts, incident_tags=incident_tags)
            return self.resolve(incident_id, by=SYSTEM_USER)
        now = _now()
        with self._lock:
            incident = self._require(incident_id)
            trigger = TRIGGER_UPDATED
            if alerts is not None:
                incident.alerts = [_normalise_alert(a) for a in copy.deepcopy(alerts)]
            if incident_tags is not None:
                incident.incident_tags = copy.deepcopy(incident_tags)
                if status is None and alerts is None:
                    trigger = TRIGGER_TAG_UPSERTED
            if flapping is not None:
                if flapping and not incident.flapping and status is None and alerts is None:
                    trigger = TRIGGER_BECOME_FLAPPING
                incident.flapping = flapping
            if alerts is not None and incident.snooze and incident.snooze.get("autoCancel"):
                # A snooze with autoCancel ends with the incident's next alert change.
                incident.snooze = {**incident.snooze, "snoozed": False}
            if status is not None:
                if not incident.active:
                    trigger = TRIGGER_REOPEN
                    incident.active = True
                    incident.endedOn = None
                    incident.folders = ["active"]
                if status != incident.status:
                    incident.changedOn = now
                incident.status = status
                incident.severity = max_status([incident.severity, status])
            incident.updatedOn = now
            self._record(incident_id, trigger.split("#")[-1], SYSTEM_USER, now)
            return self._emit(trigger, incident, {})

    def snooze(
        self, incident_id: str, by: str, end_time: int | None = None, auto_cancel: bool = False
    ) -> SimIncident:
        """A user snoozes the incident (trigger ``incident#snoozed``)."""
        now = _now()
        with self._lock:
            incident = self._require(incident_id)
            incident.snooze = {
                "snoozed": True,
                "end_time": end_time if end_time is not None else now + 3600,
                "autoCancel": auto_cancel,
            }
            incident.updatedOn = now
            self._record(incident_id, "snooze", by, now)
            return self._emit(TRIGGER_SNOOZED, incident, {"snoozed_by": by})

    def unsnooze(self, incident_id: str, by: str) -> SimIncident:
        """The snooze ends (a user cancels it, or its end time passes). BigPanda lists no
        trigger of its own for this: the change is shared as ``incident#updated``."""
        now = _now()
        with self._lock:
            incident = self._require(incident_id)
            incident.snooze = {**(incident.snooze or {}), "snoozed": False}
            incident.updatedOn = now
            self._record(incident_id, "unsnooze", by, now)
            return self._emit(TRIGGER_UPDATED, incident, {})

    def add_comment(self, incident_id: str, text: str, by: str) -> dict[str, Any]:
        now = _now()
        with self._lock:
            incident = self._require(incident_id)
            comment = {"id": new_id(), "comment": text, "created_by": by, "created_at": now}
            incident.comments.append(comment)
            incident.updatedOn = now
            self._record(incident_id, "comment", by, now, text)
            self._emit(
                TRIGGER_COMMENTED,
                incident,
                {"comment": text, "comment_id": comment["id"], "comment_by": by},
            )
            return dict(comment)

    def resolve(self, incident_id: str, by: str, comment: str | None = None) -> SimIncident:
        """Close the incident: ``status: ok``, inactive, ``endedOn``; alerts become ok."""
        now = _now()
        with self._lock:
            incident = self._require(incident_id)
            if not incident.active:
                raise AlreadyResolved(incident_id)
            incident.status = "ok"
            incident.active = False
            incident.folders = ["resolved"]
            incident.changedOn = now
            incident.updatedOn = now
            incident.endedOn = now
            for alert in incident.alerts:
                alert["status"] = "ok"
            self._record(incident_id, "resolve", by, now, comment)
            meta: dict[str, Any] = {"resolved_by": by}
            if comment is not None:
                meta["comment"] = comment
            return self._emit(TRIGGER_CLOSED, incident, meta)

    # -- internals -----------------------------------------------------------------------

    def _require(self, incident_id: str) -> SimIncident:
        try:
            return self._incidents[incident_id]
        except KeyError:
            raise IncidentNotFound(incident_id) from None

    def _record(
        self, incident_id: str, kind: str, by: str, at: int, comment: str | None = None
    ) -> None:
        self._activities.setdefault(incident_id, []).append(
            Activity(new_id(), incident_id, kind, by, at, comment)
        )

    def _emit(self, trigger: str, incident: SimIncident, meta: dict[str, Any]) -> SimIncident:
        snapshot = copy.deepcopy(incident)
        if self._listener is not None:
            metadata = {"trigger": trigger, "shared_at": _now(), **meta}
            self._listener(Change(trigger, snapshot, metadata))
        return copy.deepcopy(snapshot)


def _check_status(status: str) -> None:
    if status not in _RANK:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")


def _normalise_alert(alert: dict[str, Any]) -> dict[str, Any]:
    """Alerts carry ``status`` and ``severity`` (highest status reached)."""
    status = str(alert.setdefault("status", "critical"))
    _check_status(status)
    alert["severity"] = max_status([str(alert.get("severity", status)), status])
    return alert
