"""``PagerDutyKeyOverride``: a BigPanda alert tag whose value replaces the routing key.

The seed product does this with the ``x-bp-config-pdfield`` webhook header; declaring it as
a resource lets the operator compile it into the relay's configuration (and, in Managed
mode, into BigPanda's webhook headers).
"""

from __future__ import annotations

from pydantic import ConfigDict, Field

from pagerbridge.api._base import CamelModel
from pagerbridge.api.common import Condition, LocalObjectReference
from pagerbridge.api.fields import TagName


class PagerDutyKeyOverrideSpec(CamelModel):
    integration_ref: LocalObjectReference = Field(
        description="The PagerDutyIntegration (same namespace) this override applies to."
    )
    tag: TagName = Field(
        description="BigPanda alert tag whose value is the PagerDuty integration key to use."
    )


class ReferenceStatus(CamelModel):
    """Status of an object that references an integration (override or mapping)."""

    model_config = ConfigDict(frozen=False)  # merged with the base config

    observed_generation: int | None = Field(
        default=None,
        description="metadata.generation the operator last reconciled; status describes "
        "that generation (kstatus: equal to metadata.generation once caught up).",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready: True (Applied) when the referenced integration is Ready and "
        "uses this object; False with the reason (IntegrationNotFound, IntegrationNotReady, "
        "Conflict) otherwise.",
    )
