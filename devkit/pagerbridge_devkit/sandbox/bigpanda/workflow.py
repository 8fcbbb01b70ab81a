"""Webhook v2 integrations: the stored ``workflow_config`` and which event a trigger uses.

Field names follow BigPanda's API reference ("Create a new webhook v2 workflow
integration"), except one: the name of the event field that says which trigger the
event configures is not public. It lives in
:data:`pagerbridge.clients.bigpanda_integrations.TRIGGER_FIELD` and nowhere else.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pagerbridge.clients.bigpanda_integrations import PARENT_SYSTEM_ID, TRIGGER_FIELD
from pagerbridge_devkit.sandbox.bigpanda.templates import TemplateError, parse_headers

DEFAULT_TRIGGER = "default"
# What a masked ``authorization`` reads back as (BigPanda stores it encrypted).
MASKED = "********"
# Event types BigPanda emits (docs + bigpandaio/bigpanda-ansible), plus ``default``.
KNOWN_TRIGGERS = frozenset(
    {
        DEFAULT_TRIGGER,
        "incident#new",
        "incident#updated",
        "incident#closed",
        "incident#reopen",
        "incident#commented",
        "incident#snoozed",
        "incident#become-flapping",
        "incident-tag#upserted",
        "incident#ticket-sync",
    }
)


class WorkflowEvent(BaseModel):
    """Share settings for one trigger."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    trigger: str = Field(alias=TRIGGER_FIELD)
    enabled: bool
    body: dict[str, Any] | None = None
    headers: str | None = None
    path: str | None = None
    authorization: str | None = None
    method: Literal["POST", "PUT", "PATCH"] | None = None  # None: POST

    @property
    def http_method(self) -> str:
        return self.method or "POST"

    @field_validator("trigger")
    @classmethod
    def _known_trigger(cls, value: str) -> str:
        if value not in KNOWN_TRIGGERS:
            raise ValueError(f"unknown trigger {value!r}")
        return value

    @field_validator("headers")
    @classmethod
    def _parsable_headers(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_headers(value)
            except TemplateError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("authorization")
    @classmethod
    def _basic_or_bearer(cls, value: str | None) -> str | None:
        if value and not value.startswith(("Basic ", "Bearer ")):
            raise ValueError("authorization must start with 'Basic ' or 'Bearer '")
        return value

    @field_validator("path")
    @classmethod
    def _relative_path(cls, value: str | None) -> str | None:
        if value and not value.startswith("/"):
            raise ValueError("path must start with '/'")
        return value


class WorkflowSettings(BaseModel):
    model_config = ConfigDict(extra="allow")

    base_url: str
    expects_callbacks: bool = False

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        # Kept verbatim (a client compares what it wrote with what it reads back).
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("base_url must be an absolute http(s) URL")
        return value


class WorkflowConfig(BaseModel):
    model_config = ConfigDict(extra="allow")

    config: WorkflowSettings
    events: list[WorkflowEvent]

    @model_validator(mode="after")
    def _one_event_per_trigger(self) -> WorkflowConfig:
        seen: set[str] = set()
        for event in self.events:
            if event.trigger in seen:
                raise ValueError(f"more than one event for trigger {event.trigger!r}")
            seen.add(event.trigger)
        return self

    def event_for(self, trigger: str) -> WorkflowEvent | None:
        """The enabled event that handles ``trigger``: its own, else ``default``.

        An event configured for the trigger decides alone: disabled means not shared,
        even when ``default`` is enabled.
        """
        by_trigger = {e.trigger: e for e in self.events}
        event = by_trigger.get(trigger, by_trigger.get(DEFAULT_TRIGGER))
        return event if event is not None and event.enabled else None

    def url(self, rendered_path: str) -> str:
        """``base_url`` + the event's rendered path."""
        base = self.config.base_url
        return base.rstrip("/") + rendered_path if rendered_path else base


class IntegrationCreate(BaseModel):
    """``POST /resources/v2.1/integrations`` body."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")
    parent_system_id: Literal["webhook_v2"]
    workflow_config: WorkflowConfig


class IntegrationPatch(BaseModel):
    """``PATCH /resources/v2.1/integrations/{id}`` body."""

    model_config = ConfigDict(extra="forbid")

    workflow_config: WorkflowConfig


class Integration(BaseModel):
    """A stored integration; :meth:`to_api` is the documented ``workflow`` shape."""

    name: str
    parent_system_id: str = PARENT_SYSTEM_ID
    workflow_config: WorkflowConfig

    @property
    def id(self) -> str:
        return f"{self.parent_system_id}.{self.name}"

    def to_api(self, *, mask_secrets: bool = False) -> dict[str, Any]:
        """As written: fields the client did not send are not added (round-trips compare equal).

        ``mask_secrets``: each event's ``authorization`` comes back as :data:`MASKED`, the
        way BigPanda's reference says it stores it (encrypted, not readable back).
        """
        workflow = self.workflow_config.model_dump(mode="json", by_alias=True, exclude_unset=True)
        if mask_secrets:
            for event in workflow.get("events", []):
                if event.get("authorization"):
                    event["authorization"] = MASKED
        return {
            "name": self.name,
            "parent_system_id": self.parent_system_id,
            "workflow_config": workflow,
        }
