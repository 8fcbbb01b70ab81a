"""The BigPanda → PagerDuty half of the incident state table (docs/relay.md, "Incident
lifecycle: the two-way state table"), row by row, as pure translation: which Events v2
actions one BigPanda webhook becomes, and what a flapping incident's trigger carries."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from pagerbridge.api.integration import (
    BigPandaTrigger,
    FlappingDetail,
    PagerDutyIntegrationSpec,
)
from pagerbridge.api.relay_config import RelayConfig
from pagerbridge.api.tag_mapping import TagMapping
from pagerbridge.relay.incidents.overrides import choose_routing
from pagerbridge.relay.incidents.parsing import parse_incident
from pagerbridge.relay.incidents.translate import lifecycle_actions, translate
from pagerbridge.relay.outbox.jobs import PdEvent, decode, encode

FLAPPING = {"severity": "warning", "customDetail": {"key": "flapping_hint", "value": "noisy"}}


def config(snooze: bool = False, flapping: dict[str, Any] | None = None) -> RelayConfig:
    return RelayConfig.model_validate(
        {
            "pagerDuty": {"routingKeyFile": "/x"},
            "bigPanda": {"webhookTokenFile": "/y"},
            "sync": {"snooze": snooze, "flapping": flapping},
        }
    )


def body(
    status: str = "critical", flapping: bool = False, snoozed: bool | None = None
) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": "65f1c0de9a1b2c3d4e5f6a7b",
        "status": status,
        "active": status != "ok",
        "flapping": flapping,
        "alerts": [{"status": status, "host": "db-1", "primary_property": "host"}],
    }
    if snoozed is not None:
        raw["snooze"] = {"snoozed": snoozed, "end_time": 1764150000, "autoCancel": False}
    return raw


OFF, SNOOZE, FLAP = config(), config(snooze=True), config(flapping=FLAPPING)
BOTH = config(snooze=True, flapping=FLAPPING)
INFO = config(flapping={"severity": "info"})
TRIGGER, ACK, RESOLVE = ("trigger",), ("trigger", "acknowledge"), ("resolve",)
SNOOZED, UNSNOOZED = body(snoozed=True), body(snoozed=False)
NOT_BOOL = {**body(), "snooze": {"snoozed": "true"}}
INACTIVE_SNOOZED = {**body(snoozed=True), "active": False}
FLAPPING_SNOOZED = body(snoozed=True, flapping=True)

# (BigPanda state, sync) → Events v2 actions, the trigger's severity, the flapping detail.
ROWS = [
    # row                        incident                    sync    actions  sev         detail
    ("open",                     body(),                     OFF,    TRIGGER, "critical", None),
    ("open, sync.snooze",        body(),                     SNOOZE, TRIGGER, "critical", None),
    ("snoozed, sync.snooze off", SNOOZED,                    OFF,    TRIGGER, "critical", None),
    ("snoozed",                  SNOOZED,                    SNOOZE, ACK,     "critical", None),
    ("unsnoozed",                UNSNOOZED,                  SNOOZE, TRIGGER, "critical", None),
    ("snoozed: not a boolean",   NOT_BOOL,                   SNOOZE, TRIGGER, "critical", None),
    ("resolved",                 body("ok"),                 SNOOZE, RESOLVE, None,       None),
    ("resolved while snoozed",   body("ok", snoozed=True),   SNOOZE, RESOLVE, None,       None),
    ("inactive while snoozed",   INACTIVE_SNOOZED,           SNOOZE, RESOLVE, None,       None),
    ("flapping, sync off",       body(flapping=True),        OFF,    TRIGGER, "critical", None),
    ("flapping",                 body(flapping=True),        FLAP,   TRIGGER, "warning",  "noisy"),
    ("not flapping",             body(),                     FLAP,   TRIGGER, "critical", None),
    ("flapping and snoozed",     FLAPPING_SNOOZED,           BOTH,   ACK,     "warning",  "noisy"),
    ("flapping, resolved",       body("ok", True),           FLAP,   RESOLVE, None,       None),
    ("flapping, severity only",  body("warning", True),      INFO,   TRIGGER, "info",     None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "cfg", "actions", "severity", "detail"),
    [row[1:] for row in ROWS],
    ids=[row[0] for row in ROWS],
)
def test_state_table(
    raw: dict[str, Any],
    cfg: RelayConfig,
    actions: tuple[str, ...],
    severity: str | None,
    detail: str | None,
) -> None:
    incident = parse_incident(raw)
    assert lifecycle_actions(incident, cfg.sync) == actions
    t = translate(incident, cfg, choose_routing(incident, None, None), [])
    assert t.action == actions[0]
    assert t.acknowledge is ("acknowledge" in actions)
    if severity is None:
        assert t.event == {"event_action": "resolve", "dedup_key": incident.id}
        return
    payload = t.event["payload"]
    assert payload["severity"] == severity
    assert payload["custom_details"].get("flapping_hint") == detail


def test_a_tag_mapped_onto_severity_wins_over_the_flapping_severity() -> None:
    incident = parse_incident({**body(flapping=True), "alerts": [{"host": "h", "sev": "info"}]})
    mapping = TagMapping.model_validate({"tag": "sev", "field": "severity"})
    cfg = config(flapping=FLAPPING)
    t = translate(incident, cfg, choose_routing(incident, None, None), [mapping])
    assert t.event["payload"]["severity"] == "info"
    assert t.event["payload"]["custom_details"]["flapping_hint"] == "noisy"


def test_the_snooze_changes_the_trigger_content() -> None:
    """The acknowledge is keyed by its trigger's content: a new snooze is a new key."""
    cfg = config(snooze=True)
    hashes = set()
    for raw in (body(), body(snoozed=True), {**body(snoozed=True), "snooze": {"snoozed": True}}):
        incident = parse_incident(raw)
        hashes.add(translate(incident, cfg, choose_routing(incident, None, None), []).content_hash)
    assert len(hashes) == 3


def test_an_acknowledge_job_round_trips_through_its_stored_form() -> None:
    job = PdEvent("i", "acknowledge", {"event_action": "acknowledge", "dedup_key": "i"})
    assert decode(*encode(job)) == job
    bad = decode("pd_event", '{"incident_id": "i", "action": "snooze", "event": {}}')
    assert not isinstance(bad, PdEvent)


def _spec(**sync: Any) -> PagerDutyIntegrationSpec:
    return PagerDutyIntegrationSpec.model_validate(
        {"pagerDuty": {"routingKey": {"name": "s", "key": "k"}}, "sync": sync}
    )


def test_sync_decides_the_extra_bigpanda_triggers() -> None:
    assert BigPandaTrigger.SNOOZED not in _spec().effective_triggers
    assert BigPandaTrigger.BECOME_FLAPPING not in _spec().effective_triggers
    both = _spec(snooze=True, flapping={"severity": "warning"}).effective_triggers
    assert both[-2:] == [BigPandaTrigger.SNOOZED, BigPandaTrigger.BECOME_FLAPPING]
    listed = PagerDutyIntegrationSpec.model_validate(
        {
            "pagerDuty": {"routingKey": {"name": "s", "key": "k"}},
            "bigPanda": {"webhook": {"triggers": ["new", "snoozed"]}},
            "sync": {"snooze": True},
        }
    ).effective_triggers
    assert listed == [BigPandaTrigger.NEW, BigPandaTrigger.SNOOZED]  # once


@pytest.mark.parametrize("key", ["bigpanda_incident_id", "snooze", "", "has space", "x" * 65])
def test_a_flapping_detail_may_not_take_a_name_the_relay_sets(key: str) -> None:
    with pytest.raises(ValidationError):
        FlappingDetail.model_validate({"key": key})
    assert FlappingDetail.model_validate({"key": "flapping_hint"}).value == "true"
