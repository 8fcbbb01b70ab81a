"""How a flapping BigPanda incident's PagerDuty event differs (``sync.flapping``), shared by
PagerDutyIntegration and the RelayConfig.

Its own module (not :mod:`pagerbridge.api.integration`) so that the relay, which reads
only its RelayConfig, does not build the operator's custom resource models at start (issue
30: idle RSS); ``integration`` re-exports every name.
"""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import AfterValidator, Field

from pagerbridge.api._base import CamelModel
from pagerbridge.api.severity import PagerDutySeverity

# Custom details the relay itself sets on every trigger: a flapping detail may not take
# their name (the PagerDuty incident would lose its way back to BigPanda).
RESERVED_DETAILS: tuple[str, ...] = (
    "bigpanda_incident_id",
    "bigpanda_url",
    "status",
    "active",
    "severity",
    "flapping",
    "environments",
    "folders",
    "snooze",
    "tags",
    "alerts",
    "pagerbridge_key_override",
)
DETAIL_KEY_PATTERN = r"^[A-Za-z0-9_.\-]{1,64}$"


def _not_reserved(value: str) -> str:
    if value in RESERVED_DETAILS:
        raise ValueError(f"{value!r} is a custom detail the relay sets itself")
    return value


class FlappingDetail(CamelModel):
    """One custom detail added to the PagerDuty event of a flapping incident."""

    key: Annotated[str, AfterValidator(_not_reserved)] = Field(
        min_length=1,
        max_length=64,
        pattern=DETAIL_KEY_PATTERN,
        description="Name of the custom detail (1-64 letters, digits, '_', '.' or '-'; not "
        f"one the relay sets itself: {', '.join(RESERVED_DETAILS)}).",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!(self in " + json.dumps(list(RESERVED_DETAILS)) + ")",
                    "message": "sync.flapping.customDetail.key names a custom detail the "
                    "relay sets itself",
                }
            ]
        },
    )
    value: str = Field(
        default="true",
        max_length=256,
        description='Its value, a string of at most 256 characters (default "true").',
    )


class FlappingSpec(CamelModel):
    """How the PagerDuty event of a flapping BigPanda incident (flapping: true) differs."""

    severity: PagerDutySeverity | None = Field(
        default=None,
        description="PagerDuty severity of a flapping incident's trigger, instead of the "
        "severityMap's (a tag mapping onto severity still wins). Unset: the severityMap's.",
    )
    custom_detail: FlappingDetail | None = Field(
        default=None,
        description="A custom detail added to a flapping incident's trigger, e.g. "
        "{key: flapping_hint, value: noisy}, for PagerDuty event rules or responders.",
    )
