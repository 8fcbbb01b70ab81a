"""PagerDuty event fields a BigPanda tag may be mapped onto, and BigPanda tag names.

Kept in one place: the CRD validation rule, the RelayConfig validator and the relay's
per-request header parsing all use these definitions.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

# Fields of the Events API v2 ``payload`` object that a tag may fill: those of the pattern.
CUSTOM_DETAILS_PREFIX = "custom_details."

MAPPING_FIELD_PATTERN = (
    r"^(summary|source|severity|component|group|class|custom_details\.[A-Za-z0-9_.\-]{1,128})$"
)
MAPPING_FIELD_MESSAGE = (
    "field must be one of summary, source, severity, component, group, class "
    "or custom_details.<name>"
)
_MAPPING_FIELD_RE = re.compile(MAPPING_FIELD_PATTERN)

# BigPanda tag names: letters, digits and _ . - (as shown in BigPanda's tag settings).
TAG_NAME_PATTERN = r"^[A-Za-z0-9_.\-]{1,128}$"
TAG_NAME_MESSAGE = "tag must be 1-128 characters of letters, digits, '_', '.' or '-'"
_TAG_NAME_RE = re.compile(TAG_NAME_PATTERN)


def is_mapping_field(value: str) -> bool:
    """True when ``value`` names a PagerDuty event field a tag may be mapped onto."""
    return _MAPPING_FIELD_RE.fullmatch(value) is not None


def is_tag_name(value: str) -> bool:
    return _TAG_NAME_RE.fullmatch(value) is not None


def _check_mapping_field(value: str) -> str:
    if not is_mapping_field(value):
        raise ValueError(MAPPING_FIELD_MESSAGE)
    return value


def _check_tag_name(value: str) -> str:
    if not is_tag_name(value):
        raise ValueError(TAG_NAME_MESSAGE)
    return value


MappingField = Annotated[
    str,
    Field(
        max_length=160,
        description="PagerDuty event field: summary, source, severity, component, group, "
        "class or custom_details.<name>.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": f"self.matches(r'{MAPPING_FIELD_PATTERN}')",
                    "message": MAPPING_FIELD_MESSAGE,
                }
            ]
        },
    ),
    AfterValidator(_check_mapping_field),
]

TagName = Annotated[
    str,
    Field(
        max_length=128,
        description="Name of a BigPanda alert tag.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": f"self.matches(r'{TAG_NAME_PATTERN}')", "message": TAG_NAME_MESSAGE}
            ]
        },
    ),
    AfterValidator(_check_tag_name),
]
