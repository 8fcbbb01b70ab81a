"""The PagerDuty subscription's event types follow ``spec.sync`` (one pure function), and
the relay's ``sync`` carries the same matrix; the deprecated ``sync.acknowledge`` still works."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from pagerbridge.api.pagerduty_events import EVENT_TYPES
from pagerbridge.api.relay_config import SyncConfig
from pagerbridge.clients.pagerduty_subscriptions import WebhookSubscription
from pagerbridge.controller.external import subscription
from pagerbridge.controller.render.compile import sync_config

from .builders import spec

SERVICE = {
    "routingKey": {"name": "pd", "key": "routing-key"},
    "apiToken": {"name": "pd", "key": "api-token"},
    "fromEmail": "oncall@example.com",
    "serviceId": "PSVC001",
}
BIGPANDA = {"apiToken": {"name": "bp", "key": "api-token"}, "environmentId": "env1"}


def _spec(**sync: Any) -> Any:
    return spec(
        pagerDuty=SERVICE,
        bigPanda=BIGPANDA,
        relay={"publicUrl": "https://relay.example.com"},
        sync=sync,
    )


def test_defaults_subscribe_to_resolve_and_notes_only() -> None:
    assert subscription.events(_spec()) == ("incident.resolved", "incident.annotated")


def test_each_matrix_entry_adds_exactly_its_type() -> None:
    for field, event_type in EVENT_TYPES.items():
        camel = "".join(w.capitalize() if i else w for i, w in enumerate(field.split("_")))
        events = subscription.events(_spec(pagerDutyEvents={camel: True}))
        assert events == ("incident.resolved", "incident.annotated", event_type), field


def test_everything_on_and_everything_off() -> None:
    every = {f: True for f in ("acknowledged", "unacknowledged", "reassigned", "escalated")}
    every |= {"delegated": True, "priorityUpdated": True, "statusUpdatePublished": True}
    every |= {"responderAdded": True, "reopened": True}
    events = subscription.events(_spec(resolve=False, notes=False, pagerDutyEvents=every))
    assert events == tuple(EVENT_TYPES.values())
    off = _spec(resolve=False, notes=False)
    assert subscription.events(off) == ()
    assert not subscription.wanted(off)  # PagerDuty needs at least one type: none at all


def test_deprecated_acknowledge_is_the_acknowledged_entry() -> None:
    assert "incident.acknowledged" in subscription.events(_spec(acknowledge=True))
    explicit_off = _spec(acknowledge=True, pagerDutyEvents={"acknowledged": False})
    assert "incident.acknowledged" not in subscription.events(explicit_off)
    assert "incident.acknowledged" in subscription.events(
        _spec(pagerDutyEvents={"acknowledged": True})
    )


def test_unknown_matrix_entry_is_refused() -> None:
    with pytest.raises(ValidationError):
        _spec(pagerDutyEvents={"triggered": True})


def test_health_and_surplus_together_want_exactly_the_types() -> None:
    wanted = ("incident.resolved", "incident.priority_updated")
    scope = ("service_reference", "PSVC001")

    def sub(events: list[str]) -> WebhookSubscription:
        return WebhookSubscription.model_validate(
            {
                "id": "PSUB001",
                "delivery_method": {"url": "https://relay.example.com/x"},
                "events": events,
                "filter": {"type": "service_reference", "id": "PSVC001"},
            }
        )

    assert subscription.health(sub(list(wanted)), scope, wanted) == ()
    assert not subscription.surplus(sub(list(wanted)), wanted)
    assert subscription.health(sub(["incident.resolved"]), scope, wanted) == ("events",)
    # One more than needed: not a repair, but narrowed to exactly the needed ones.
    extra = sub([*wanted, "incident.reassigned"])
    assert subscription.health(extra, scope, wanted) == ()
    assert subscription.surplus(extra, wanted)


def test_relay_sync_carries_the_matrix() -> None:
    plain = sync_config(_spec())
    assert plain.pager_duty_events is None  # nothing new on: the ConfigMap is as before
    assert plain.comment_events == frozenset()
    ack = sync_config(_spec(acknowledge=True))
    assert ack.acknowledge
    assert ack.pager_duty_events is None
    assert ack.comment_events == {"incident.acknowledged"}
    both = sync_config(_spec(pagerDutyEvents={"acknowledged": True, "priorityUpdated": True}))
    assert both.acknowledge  # what relays before the matrix read
    assert both.comment_events == {"incident.acknowledged", "incident.priority_updated"}
    assert SyncConfig.model_validate(both.to_json_dict()) == both
    assert both.to_json_dict()["pagerDutyEvents"]["priorityUpdated"] is True
