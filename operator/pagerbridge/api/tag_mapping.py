"""``PagerDutyTagMapping``: copy BigPanda tag values into PagerDuty event fields."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from pagerbridge.api._base import CamelModel
from pagerbridge.api.common import LocalObjectReference
from pagerbridge.api.fields import MappingField, TagName


class TagMapping(CamelModel):
    tag: TagName
    field: MappingField


class PagerDutyTagMappingSpec(CamelModel):
    integration_ref: LocalObjectReference = Field(
        description="The PagerDutyIntegration (same namespace) these mappings apply to."
    )
    mappings: list[TagMapping] = Field(
        min_length=1,
        max_length=64,
        description="Tag → field pairs; each PagerDuty field at most once.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["field"],
        },
    )


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
