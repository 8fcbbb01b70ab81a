"""``PagerDutyTagMapping``: copy BigPanda tag values into PagerDuty event fields, and turn
them into the links and images of a trigger (:mod:`pagerbridge.api.links`)."""

from __future__ import annotations

from typing import Any, Self

from pydantic import ConfigDict, Field, model_validator

from pagerbridge.api._base import CamelModel
from pagerbridge.api.common import LocalObjectReference
from pagerbridge.api.fields import MappingField, TagName
from pagerbridge.api.links import (
    IMAGES_DESCRIPTION,
    LINKS_DESCRIPTION,
    MAX_EVENT_IMAGES,
    MAX_EVENT_LINKS,
    ImageRule,
    LinkRule,
)

NOTHING_MAPPED_MESSAGE = "set at least one of mappings, links or images"


class TagMapping(CamelModel):
    tag: TagName
    field: MappingField


class PagerDutyTagMappingSpec(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "size(self.mappings) + size(self.links) + size(self.images) > 0",
                    "message": NOTHING_MAPPED_MESSAGE,
                }
            ]
        }
    )

    integration_ref: LocalObjectReference = Field(
        description="The PagerDutyIntegration (same namespace) these mappings apply to."
    )
    mappings: list[TagMapping] = Field(
        default_factory=list,
        max_length=64,
        description="Tag → field pairs; each PagerDuty field at most once.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["field"],
        },
    )
    links: list[LinkRule] = Field(
        default_factory=list, max_length=MAX_EVENT_LINKS, description=LINKS_DESCRIPTION
    )
    images: list[ImageRule] = Field(
        default_factory=list, max_length=MAX_EVENT_IMAGES, description=IMAGES_DESCRIPTION
    )

    @model_validator(mode="after")
    def _something_mapped(self) -> Self:
        if not (self.mappings or self.links or self.images):
            raise ValueError(NOTHING_MAPPED_MESSAGE)
        return self


def reference_printer_columns() -> list[dict[str, Any]]:
    """``kubectl get pdko/pdtm`` columns."""
    return [
        {"name": "Integration", "type": "string", "jsonPath": ".spec.integrationRef.name"},
        {
            "name": "Ready",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        },
        {
            "name": "Reason",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
        },
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
