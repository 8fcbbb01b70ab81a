"""The ``sync.pagerDutyEvents`` matrix: which PagerDuty incident changes become a BigPanda
comment.

One boolean per PagerDuty Webhooks v3 incident event type the relay can describe (see
``specs/pagerduty/webhooks-v3.md``), all off unless turned on. Why an object of booleans and
not a list of event type names: ``kubectl explain`` documents each key with its own
description, a kustomize or Helm overlay changes one entry without restating the others
(a list is replaced whole), and a typo is refused by the schema as an unknown field.

The same model is part of the CRD (``spec.sync.pagerDutyEvents``) and of the RelayConfig
(``sync.pagerDutyEvents``); :data:`EVENT_TYPES` maps each field to its webhook event type,
the one place that fact is written. The operator subscribes to exactly the types turned on
(plus resolve and notes), the relay turns exactly those into comments.

``acknowledged`` is tri-state for backward compatibility: unset, it follows the deprecated
``sync.acknowledge``; set, it wins.
"""

from __future__ import annotations

from typing import Final

from pydantic import Field

from pagerbridge.api._base import CamelModel

#: Field name (Python) -> PagerDuty Webhooks v3 event type, in the order comments and
#: subscriptions list them.
EVENT_TYPES: Final[dict[str, str]] = {
    "acknowledged": "incident.acknowledged",
    "unacknowledged": "incident.unacknowledged",
    "reassigned": "incident.reassigned",
    "escalated": "incident.escalated",
    "delegated": "incident.delegated",
    "priority_updated": "incident.priority_updated",
    "status_update_published": "incident.status_update_published",
    "responder_added": "incident.responder.added",
    "reopened": "incident.reopened",
}
RESOLVED: Final = "incident.resolved"
ANNOTATED: Final = "incident.annotated"


class PagerDutyEvents(CamelModel):
    """Which PagerDuty incident changes become a BigPanda comment (all off by default)."""

    acknowledged: bool | None = Field(
        default=None,
        description='incident.acknowledged: "Acknowledged in PagerDuty by <who>". Unset: '
        "follows the deprecated sync.acknowledge (default false); set: wins over it.",
    )
    unacknowledged: bool = Field(
        default=False,
        description="incident.unacknowledged (a person, or the acknowledgement timeout): "
        '"Unacknowledged in PagerDuty by <who>". Default false.',
    )
    reassigned: bool = Field(
        default=False,
        description='incident.reassigned: "Reassigned in PagerDuty to <assignees> '
        '(escalation policy <name>) by <who>". Default false.',
    )
    escalated: bool = Field(
        default=False,
        description='incident.escalated: "Escalated in PagerDuty to <assignees> by <who>". '
        "Default false.",
    )
    delegated: bool = Field(
        default=False,
        description='incident.delegated (to another escalation policy): "Delegated in '
        'PagerDuty to escalation policy <name> by <who>". Default false.',
    )
    priority_updated: bool = Field(
        default=False,
        description='incident.priority_updated: "Priority set to <P2> in PagerDuty by '
        "<who>\" (PagerDuty's webhook carries only the new priority). Default false.",
    )
    status_update_published: bool = Field(
        default=False,
        description='incident.status_update_published: "Status update published in '
        'PagerDuty by <who>: <message>" (the message cut to the comment size bound). '
        "Default false.",
    )
    responder_added: bool = Field(
        default=False,
        description='incident.responder.added: "Responder <name> added in PagerDuty by '
        '<who>". Default false.',
    )
    reopened: bool = Field(
        default=False,
        description='incident.reopened: "Reopened in PagerDuty by <who>". Default false.',
    )

    def enabled(self, acknowledge: bool = False) -> tuple[str, ...]:
        """The event types turned on, in :data:`EVENT_TYPES` order; ``acknowledge`` is the
        deprecated ``sync.acknowledge``, used while ``acknowledged`` is unset."""
        on: list[str] = []
        for name, event_type in EVENT_TYPES.items():
            value = getattr(self, name)
            if name == "acknowledged" and value is None:
                value = acknowledge
            if value:
                on.append(event_type)
        return tuple(on)
