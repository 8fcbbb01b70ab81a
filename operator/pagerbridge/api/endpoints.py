"""The upstream base URLs and the URL, e-mail and region fields a RelayConfig and a
PagerDutyIntegration share.

Their own module (not :mod:`pagerbridge.api.integration`) so that the relay, which reads
only its RelayConfig, does not build the operator's custom resource models at start (issue
30: idle RSS); ``integration`` re-exports every name.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, Field

# A *base* URL: the operator and the relay append fixed paths to it. User info, a query or
# a fragment would change what that means (a trailing "?" turns our path into a query
# string), so the API server refuses them (CEL rule below) and so do the models.
BASE_URL_PATTERN = r"^https?://[^/?#@\s]+(/[^?#\s]*)?$"
BASE_URL_MESSAGE = (
    "must be a base URL http(s)://host[:port][/path], without user info (@), "
    "query (?) or fragment (#)"
)
_BASE_URL_RE = re.compile(BASE_URL_PATTERN)


def _check_base_url(value: str) -> str:
    if _BASE_URL_RE.fullmatch(value) is None:
        raise ValueError(BASE_URL_MESSAGE)
    return value


HttpUrl = Annotated[
    str,
    Field(
        max_length=2048,
        pattern=r"^https?://[^\s/$.?#][^\s]*$",
        description="An absolute http(s) base URL, without user info, query or fragment.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": f"self.matches(r'{BASE_URL_PATTERN}')", "message": BASE_URL_MESSAGE}
            ]
        },
    ),
    AfterValidator(_check_base_url),
]
Email = Annotated[str, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]


class Region(StrEnum):
    US = "us"
    EU = "eu"


PAGERDUTY_EVENTS_URLS: dict[Region, str] = {
    Region.US: "https://events.pagerduty.com",
    Region.EU: "https://events.eu.pagerduty.com",
}
PAGERDUTY_API_URLS: dict[Region, str] = {
    Region.US: "https://api.pagerduty.com",
    Region.EU: "https://api.eu.pagerduty.com",
}
BIGPANDA_API_URL = "https://api.bigpanda.io"
