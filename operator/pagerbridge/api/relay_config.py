"""RelayConfig: the contract between the operator and the relay.

The operator compiles one ``PagerDutyIntegration`` and every override and mapping that
references it into one RelayConfig, serialized as JSON into the integration's ConfigMap.
The relay loads it with ``pagerbridge relay --config FILE``; the same file is how a user
runs the relay outside Kubernetes.

Secrets never enter a RelayConfig: it holds the *paths* of files where secret values are
mounted, so a rotated Kubernetes Secret reaches the relay without a restart. An omitted
optional part switches its feature off (no ``apiTokenFile``: no notes and no look-ups; no
``webhookSecretFile``: the PagerDuty webhook endpoint answers 404; no ``adminTokenFile``: the
admin API on the internal port answers 404).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field, field_validator

from pagerbridge.api._base import CamelModel
from pagerbridge.api.endpoints import (
    BIGPANDA_API_URL,
    PAGERDUTY_API_URLS,
    PAGERDUTY_EVENTS_URLS,
    Email,
    HttpUrl,
    Region,
)
from pagerbridge.api.fields import TagName
from pagerbridge.api.flapping import FlappingSpec
from pagerbridge.api.links import MAX_RULES, ImageRule, LinkRule
from pagerbridge.api.pagerduty_events import PagerDutyEvents
from pagerbridge.api.severity import DEFAULT_SEVERITY_MAP, BigPandaStatus, PagerDutySeverity
from pagerbridge.api.tag_mapping import TagMapping

FilePath = str


class PagerDutyRelayConfig(CamelModel):
    events_url: HttpUrl = PAGERDUTY_EVENTS_URLS[Region.US]
    api_url: HttpUrl = PAGERDUTY_API_URLS[Region.US]
    routing_key_file: FilePath = Field(description="File holding the default routing key.")
    api_token_file: FilePath | None = Field(
        default=None, description="File holding the REST API key (notes, look-ups)."
    )
    from_email: Email | None = None
    service_id: str | None = Field(
        default=None,
        max_length=64,
        description="PagerDuty service of the default routing key (pagerDuty.serviceId): "
        "tells the relay's own incidents apart from others with the same incident_key.",
    )
    webhook_secret_file: FilePath | None = Field(
        default=None,
        description="File holding the Webhooks v3 signing secret(s), one per line "
        "(several during rotation).",
    )
    webhook_max_age_seconds: int = Field(
        default=24 * 3600,
        ge=60,
        le=48 * 3600,
        description="Webhooks v3 events whose signed occurred_at is older than this are "
        "ignored (replay window; PagerDuty retries for up to 48 h).",
    )

    @property
    def events_enqueue_url(self) -> str:
        return self.events_url.rstrip("/") + "/v2/enqueue"


class BigPandaRelayConfig(CamelModel):
    api_url: HttpUrl = BIGPANDA_API_URL
    api_token_file: FilePath | None = Field(
        default=None, description="File holding the BigPanda API key (write-backs)."
    )
    environment_id: str | None = None
    webhook_token_file: FilePath = Field(
        description="File holding the bearer token BigPanda's webhook must present."
    )
    app_url: HttpUrl = Field(
        default="https://a.bigpanda.io",
        description="BigPanda UI base, for the link back from PagerDuty.",
    )


class SyncConfig(CamelModel):
    resolve: bool = True
    notes: bool = True
    acknowledge: bool = Field(
        default=False,
        description="Deprecated alias of pagerDutyEvents.acknowledged (read while that is unset).",
    )
    pager_duty_events: PagerDutyEvents | None = Field(
        default=None,
        description="PagerDuty incident event types that become BigPanda comments; "
        "omitted: none but acknowledge's.",
    )
    snooze: bool = Field(
        default=False,
        description="A snoozed BigPanda incident sends an Events API v2 acknowledge.",
    )
    flapping: FlappingSpec | None = Field(
        default=None, description="Severity and custom detail of a flapping incident."
    )

    @property
    def comment_events(self) -> frozenset[str]:
        """The PagerDuty event types the relay turns into BigPanda comments."""
        events = self.pager_duty_events or PagerDutyEvents()
        return frozenset(events.enabled(self.acknowledge))


class IntegrationIdentity(CamelModel):
    """The PagerDutyIntegration a relay serves (its metrics carry it as labels)."""

    namespace: str = Field(max_length=63)
    name: str = Field(max_length=253)


class RelayConfig(CamelModel):
    """Everything one relay needs; see the module docstring."""

    pager_duty: PagerDutyRelayConfig
    big_panda: BigPandaRelayConfig
    key_override_tag: TagName | None = None
    tag_mappings: list[TagMapping] = Field(default_factory=list)
    links: list[LinkRule] = Field(
        default_factory=list,
        max_length=MAX_RULES,
        description="Link rules of every PagerDutyTagMapping (pagerbridge.api.links).",
    )
    images: list[ImageRule] = Field(
        default_factory=list,
        max_length=MAX_RULES,
        description="Image rules of every PagerDutyTagMapping (pagerbridge.api.links).",
    )
    severity_map: dict[BigPandaStatus, PagerDutySeverity] = Field(
        default_factory=lambda: dict(DEFAULT_SEVERITY_MAP)
    )
    sync: SyncConfig = Field(default_factory=SyncConfig)
    outbox_path: FilePath = "/var/lib/pagerbridge/outbox.db"
    admin_token_file: FilePath | None = Field(
        default=None,
        description="File holding the bearer token(s) of the admin API on the internal port, "
        "one per line; unset: the admin API answers 404.",
    )
    integration: IntegrationIdentity | None = Field(
        default=None,
        description="The integration this relay serves (label values of pagerbridge_relay_info).",
    )

    @field_validator("severity_map")
    @classmethod
    def _complete_severity_map(
        cls, value: dict[BigPandaStatus, PagerDutySeverity]
    ) -> dict[BigPandaStatus, PagerDutySeverity]:
        # A partial map is completed from the defaults, so every status maps somewhere.
        return {**DEFAULT_SEVERITY_MAP, **value}

    @field_validator("tag_mappings")
    @classmethod
    def _unique_fields(cls, value: list[TagMapping]) -> list[TagMapping]:
        seen: set[str] = set()
        for mapping in value:
            if mapping.field in seen:
                raise ValueError(f"PagerDuty field {mapping.field!r} is mapped more than once")
            seen.add(mapping.field)
        return value

    def to_json(self) -> str:
        """Stable JSON text (sorted keys), so equal configs give equal ConfigMaps."""
        return json.dumps(self.to_json_dict(), sort_keys=True, indent=2) + "\n"

    @classmethod
    def load(cls, path: str | Path) -> RelayConfig:
        """Read and validate a RelayConfig file (raises ``pydantic.ValidationError``)."""
        return cls.model_validate_json(Path(path).read_bytes())
