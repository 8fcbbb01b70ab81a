"""The CR spec models and the RelayConfig contract, validated the way the operator uses them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from pagerbridge.api import (
    DEFAULT_SEVERITY_MAP,
    BigPandaStatus,
    PagerDutyIntegrationSpec,
    PagerDutyKeyOverrideSpec,
    PagerDutySeverity,
    PagerDutyTagMappingSpec,
    RelayConfig,
    TagMapping,
)
from pagerbridge.api.fields import MAPPING_FIELD_MESSAGE, TAG_NAME_MESSAGE, is_mapping_field

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
SPEC_MODELS = {
    "PagerDutyIntegration": PagerDutyIntegrationSpec,
    "PagerDutyKeyOverride": PagerDutyKeyOverrideSpec,
    "PagerDutyTagMapping": PagerDutyTagMappingSpec,
}


def _relay_config() -> RelayConfig:
    return RelayConfig.model_validate(
        {
            "pagerDuty": {
                "eventsUrl": "http://127.0.0.1:9000",
                "routingKeyFile": "/etc/pagerbridge/routing-key",
                "apiTokenFile": "/etc/pagerbridge/api-token",
                "fromEmail": "oncall@example.com",
            },
            "bigPanda": {"webhookTokenFile": "/etc/pagerbridge/webhook-token"},
            "keyOverrideTag": "pd_routing_key",
            "tagMappings": [
                {"tag": "host", "field": "source"},
                {"tag": "team", "field": "custom_details.team"},
            ],
            "severityMap": {"unknown": "warning"},
            "sync": {"notes": False},
        }
    )


def test_relay_config_round_trips_through_its_file(tmp_path: Path) -> None:
    config = _relay_config()
    path = tmp_path / "relay.json"
    path.write_text(config.to_json())
    loaded = RelayConfig.load(path)
    assert loaded == config
    assert loaded.to_json() == config.to_json()
    assert loaded.pager_duty.events_enqueue_url == "http://127.0.0.1:9000/v2/enqueue"
    assert loaded.pager_duty.api_url == "https://api.pagerduty.com"
    # camelCase on the wire, completed severity map, defaults kept.
    text = path.read_text()
    assert '"routingKeyFile"' in text
    assert "routing_key_file" not in text
    assert loaded.severity_map[BigPandaStatus.UNKNOWN] is PagerDutySeverity.WARNING
    assert (
        loaded.severity_map[BigPandaStatus.CRITICAL]
        is DEFAULT_SEVERITY_MAP[BigPandaStatus.CRITICAL]
    )
    assert loaded.sync.resolve is True
    assert loaded.sync.notes is False


def test_relay_config_rejects_unknown_fields_and_duplicate_mapping_fields() -> None:
    good = _relay_config().to_json_dict()
    with pytest.raises(ValidationError, match="routingKeyFiel"):
        RelayConfig.model_validate(
            {**good, "pagerDuty": {**good["pagerDuty"], "routingKeyFiel": "/x"}}
        )
    dup = [{"tag": "host", "field": "source"}, {"tag": "node", "field": "source"}]
    with pytest.raises(ValidationError, match="mapped more than once"):
        RelayConfig.model_validate({**good, "tagMappings": dup})


@pytest.mark.parametrize(
    "field",
    ["summary", "source", "severity", "component", "group", "class", "custom_details.team"],
)
def test_valid_mapping_fields(field: str) -> None:
    assert TagMapping(tag="host", field=field).field == field


@pytest.mark.parametrize(
    "field", ["", "Source", "custom_details", "custom_details.", "payload.source", "dedup_key"]
)
def test_invalid_mapping_fields(field: str) -> None:
    assert not is_mapping_field(field)
    with pytest.raises(ValidationError, match=MAPPING_FIELD_MESSAGE.split(",")[0]):
        TagMapping(tag="host", field=field)


@pytest.mark.parametrize("tag", ["", "has space", "x" * 129, "emoji✓"])
def test_invalid_tag_names(tag: str) -> None:
    with pytest.raises(ValidationError, match=TAG_NAME_MESSAGE.split(" ")[0]):
        TagMapping(tag=tag, field="source")


def test_integration_defaults_match_the_crd_defaults() -> None:
    spec = PagerDutyIntegrationSpec.model_validate(
        {"pagerDuty": {"routingKey": {"name": "pd", "key": "routing-key"}}}
    )
    assert spec.sync.notes is None  # unset: on exactly when its credentials are given
    assert spec.notes_enabled is False
    assert spec.big_panda.webhook.mode == "Manual"
    assert spec.relay.replicas == 1
    assert spec.severity_map.as_dict() == DEFAULT_SEVERITY_MAP


@pytest.mark.parametrize(
    ("pager_duty", "notes", "enabled"),
    [
        ({}, None, False),
        ({"apiToken": {"name": "pd", "key": "api-token"}}, None, False),
        ({"fromEmail": "ops@example.com"}, None, False),
        ({"apiToken": {"name": "pd", "key": "t"}, "fromEmail": "ops@example.com"}, None, True),
        ({"apiToken": {"name": "pd", "key": "t"}, "fromEmail": "ops@example.com"}, False, False),
        ({"apiToken": {"name": "pd", "key": "t"}, "fromEmail": "ops@example.com"}, True, True),
    ],
)
def test_notes_sync_turns_on_when_its_credentials_are_given(
    pager_duty: dict[str, object], notes: bool | None, enabled: bool
) -> None:
    spec = PagerDutyIntegrationSpec.model_validate(
        {
            "pagerDuty": {"routingKey": {"name": "pd", "key": "routing-key"}, **pager_duty},
            "sync": {} if notes is None else {"notes": notes},
        }
    )
    assert spec.notes_enabled is enabled


def test_severity_map_rejects_unknown_severity() -> None:
    with pytest.raises(ValidationError):
        PagerDutyIntegrationSpec.model_validate(
            {
                "pagerDuty": {"routingKey": {"name": "pd", "key": "k"}},
                "severityMap": {"critical": "urgent"},
            }
        )


def _example_objects() -> list[tuple[str, dict[str, object]]]:
    found = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] in SPEC_MODELS:
                found.append((f"{path.name}:{doc['metadata']['name']}", doc))
    return found


@pytest.mark.parametrize(("name", "doc"), _example_objects(), ids=lambda v: str(v)[:60])
def test_examples_parse_with_the_models(name: str, doc: dict[str, object]) -> None:
    spec = SPEC_MODELS[str(doc["kind"])].model_validate(doc["spec"])
    assert spec.to_json_dict(), name


def test_there_are_examples_of_every_kind() -> None:
    kinds = {doc["kind"] for _, doc in _example_objects()}
    assert kinds == set(SPEC_MODELS)
