"""The relay's units of work, one frozen dataclass per kind, and their stored form.

A job is created by an inbound endpoint, stored in the outbox (any adapter) and delivered by
the handler registered for its kind. Each kind is one class here; its ``KIND`` is the only
spelling of the kind string (stored in the ``kind`` column, used as a metric label), and
:func:`encode` / :func:`decode` are the only place where a job meets its stored row (JSON
text), so handlers read typed fields and never ``payload["..."]``.

A stored row that does not decode (an older relay's format, a hand-edited database) becomes
:class:`Undecodable`: it is kept, and delivering it fails like any unexpected error, so the
dispatcher's retry bounds dead-letter it and its lane moves on (see relay.delivery).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar, get_args

from pagerbridge.relay.incidents.overrides import DEFAULT_ROUTING, Routing

EventAction = Literal["trigger", "acknowledge", "resolve"]
_EVENT_ACTIONS: dict[str, EventAction] = {
    "trigger": "trigger",
    "acknowledge": "acknowledge",
    "resolve": "resolve",
}


@dataclass(frozen=True)
class PdEvent:
    """A BigPanda incident's Events v2 event (without ``routing_key``: the key is chosen at
    delivery, from ``routing`` or the default key's secret file)."""

    KIND: ClassVar[str] = "pd_event"
    incident_id: str
    action: EventAction
    event: dict[str, Any]
    routing: Routing = DEFAULT_ROUTING


@dataclass(frozen=True)
class PdNote:
    """A BigPanda comment to write as a PagerDuty note on the incident's PagerDuty incident."""

    KIND: ClassVar[str] = "pd_note"
    incident_id: str
    comment_id: str
    content: str


@dataclass(frozen=True)
class BpResolve:
    """A PagerDuty resolve to mirror onto the BigPanda incident."""

    KIND: ClassVar[str] = "bp_resolve"
    pd_incident_id: str
    incident_key: str | None = None
    by: str | None = None
    # Made by the repair sweep (relay.inbound.sweep), not a webhook: skipped when the
    # PagerDuty incident's resolve was already written to BigPanda.
    repair: bool = False


@dataclass(frozen=True)
class BpComment:
    """A PagerDuty note (or acknowledgement) to write as a BigPanda comment."""

    KIND: ClassVar[str] = "bp_comment"
    pd_incident_id: str
    content: str
    incident_key: str | None = None
    by: str | None = None
    note_id: str | None = None


JobSpec = PdEvent | PdNote | BpResolve | BpComment
#: Every job kind, read off :data:`JobSpec` (metric series are created for each at start).
JOB_KINDS: tuple[str, ...] = tuple(cls.KIND for cls in get_args(JobSpec))


@dataclass(frozen=True)
class Undecodable:
    """A stored row no job class accepts; kept verbatim so it can be dead-lettered as is."""

    kind: str
    payload: str
    error: str

    @property
    def KIND(self) -> str:
        return self.kind


class MalformedJob(Exception):
    """A job whose stored form does not decode, or that reached the wrong handler."""


def kind_of(spec: JobSpec | Undecodable) -> str:
    return spec.KIND


def _to_json(spec: JobSpec) -> dict[str, Any]:
    if isinstance(spec, PdEvent):
        return {
            "incident_id": spec.incident_id,
            "action": spec.action,
            "event": spec.event,
            "routing": spec.routing.to_json(),
        }
    if isinstance(spec, PdNote):
        return {
            "incident_id": spec.incident_id,
            "comment_id": spec.comment_id,
            "content": spec.content,
        }
    if isinstance(spec, BpResolve):
        out: dict[str, Any] = {
            "pd_incident_id": spec.pd_incident_id,
            "incident_key": spec.incident_key,
            "by": spec.by,
        }
        if spec.repair:
            out["repair"] = True
        return out
    return {
        "pd_incident_id": spec.pd_incident_id,
        "content": spec.content,
        "incident_key": spec.incident_key,
        "by": spec.by,
        "note_id": spec.note_id,
    }


def encode(spec: JobSpec | Undecodable) -> tuple[str, str]:
    """The stored form: ``(kind, payload JSON text)``."""
    if isinstance(spec, Undecodable):
        return spec.kind, spec.payload
    return spec.KIND, json.dumps(_to_json(spec), separators=(",", ":"))


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise MalformedJob(f"{name} is not a string")
    return value


def _optional_text(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise MalformedJob(f"{name} is not a string")
    return value


def _decode(kind: str, data: dict[str, Any]) -> JobSpec:
    if kind == PdEvent.KIND:
        action = data.get("action")
        if action not in _EVENT_ACTIONS:
            raise MalformedJob("action is not trigger, acknowledge or resolve")
        event = data.get("event")
        if not isinstance(event, dict):
            raise MalformedJob("event is not an object")
        routing = data.get("routing")
        return PdEvent(
            incident_id=_text(data, "incident_id"),
            action=_EVENT_ACTIONS[action],
            event=event,
            routing=Routing.from_json(routing if isinstance(routing, dict) else None),
        )
    if kind == PdNote.KIND:
        return PdNote(
            incident_id=_text(data, "incident_id"),
            comment_id=_text(data, "comment_id"),
            content=_text(data, "content"),
        )
    if kind == BpResolve.KIND:
        return BpResolve(
            pd_incident_id=_text(data, "pd_incident_id"),
            incident_key=_optional_text(data, "incident_key"),
            by=_optional_text(data, "by"),
            repair=data.get("repair") is True,
        )
    if kind == BpComment.KIND:
        return BpComment(
            pd_incident_id=_text(data, "pd_incident_id"),
            content=_text(data, "content"),
            incident_key=_optional_text(data, "incident_key"),
            by=_optional_text(data, "by"),
            note_id=_optional_text(data, "note_id"),
        )
    raise MalformedJob(f"unknown job kind {kind[:40]!r}")


def decode(kind: str, payload: str) -> JobSpec | Undecodable:
    """A stored row back to its job; :class:`Undecodable` when it does not fit."""
    try:
        data = json.loads(payload)
        if not isinstance(data, dict):
            raise MalformedJob("payload is not an object")
        return _decode(kind, data)
    except (MalformedJob, ValueError) as exc:
        return Undecodable(kind, payload, str(exc))


S = TypeVar("S", PdEvent, PdNote, BpResolve, BpComment)


def expect(spec: JobSpec | Undecodable, cls: type[S]) -> S:
    """``spec`` as ``cls``, for the handler registered for ``cls.KIND``."""
    if isinstance(spec, cls):
        return spec
    if isinstance(spec, Undecodable):
        raise MalformedJob(f"stored {spec.kind} job does not decode: {spec.error}")
    raise MalformedJob(f"a {spec.KIND} job reached the {cls.KIND} handler")
