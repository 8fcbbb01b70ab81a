"""Links and images: BigPanda tags (or URL templates over tags) that become the Events API
v2 ``links[]`` (``href``, ``text``) and ``images[]`` (``src``, ``href``, ``alt``) of a trigger.

A rule names where its URL comes from, exactly one of:

- ``tag``: the tag's value is the whole URL (a monitoring tool that tags alerts with their
  runbook or dashboard URL);
- ``template``: a URL with ``{{tag}}`` placeholders, each replaced by that tag's value,
  percent-encoded (``urllib.parse.quote(value, safe="")``), so a value can never add a path,
  a query parameter, a host or user info of its own. Nothing else is interpreted: no
  filters, no expressions, no code (a deliberately tiny language, not Jinja).

The bounds are written here because the CRD, the RelayConfig and the relay's builder
(:mod:`pagerbridge.relay.incidents.links`) all enforce them:

- :data:`MAX_URL` (2048): the longest URL sent, PagerDuty's practical URL length and the
  one :mod:`pagerbridge.relay.incidents.limits` fits ``client_url`` and links into;
- :data:`MAX_EVENT_LINKS` (10) links and :data:`MAX_EVENT_IMAGES` (5) images of the user's
  per event (plus the relay's own "BigPanda incident" link). PagerDuty's Events v2 OpenAPI
  document states no count; PagerDuty does state the 512 KB event limit. At these counts
  the worst case (every URL 2048 characters, every text 256) is about 48 KB, under a tenth
  of the event, so links never crowd out the summary, and ``custom_details`` (the part the
  relay shrinks to fit) keeps at least nine tenths; a responder reads ten links, not fifty;
- :data:`MAX_RULES` (32) rules of each kind in one RelayConfig, whatever the number of
  ``PagerDutyTagMapping`` objects a namespace creates (compile keeps the first ones by
  object name), so a hostile namespace cannot make its relay evaluate without bound.
"""

from __future__ import annotations

import re
from typing import Annotated, Self

from pydantic import ConfigDict, Field, JsonValue, model_validator

from pagerbridge.api._base import CamelModel
from pagerbridge.api.fields import TagName

MAX_URL = 2048
MAX_LINK_TEXT = 256
MAX_EVENT_LINKS = 10
MAX_EVENT_IMAGES = 5
MAX_RULES = 32

# One placeholder: {{tag name}} (the tag name pattern of pagerbridge.api.fields). The CRD's
# descriptions never spell "{{": the Helm chart carries the schema inside a Go template.
PLACEHOLDER_PATTERN = r"\{\{([A-Za-z0-9_.\-]{1,128})\}\}"
PLACEHOLDER_RE = re.compile(PLACEHOLDER_PATTERN)
# Literal parts: no whitespace, no control character, no stray brace.
_LITERAL = r"[^\s{}\x00-\x1f\x7f]"
TEMPLATE_PATTERN = rf"^https?://({_LITERAL}|{PLACEHOLDER_PATTERN})+$"
IMAGE_TEMPLATE_PATTERN = rf"^https://({_LITERAL}|{PLACEHOLDER_PATTERN})+$"
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*$"

ONE_SOURCE_MESSAGE = "set exactly one of tag or template"
_ONE_SOURCE_RULE: dict[str, JsonValue] = {
    "rule": "has(self.tag) != has(self.template)",
    "message": ONE_SOURCE_MESSAGE,
}

UrlTemplate = Annotated[
    str,
    Field(
        max_length=MAX_URL,
        pattern=TEMPLATE_PATTERN,
        description="An http(s) URL with placeholders (a BigPanda tag name in double curly "
        "braces), each replaced by that tag's value, percent-encoded; a missing tag drops "
        "the link.",
    ),
]
ImageTemplate = Annotated[
    str,
    Field(
        max_length=MAX_URL,
        pattern=IMAGE_TEMPLATE_PATTERN,
        description="An https URL (PagerDuty shows images served over HTTPS only) with "
        "placeholders (a BigPanda tag name in double curly braces), each replaced by that "
        "tag's value, percent-encoded.",
    ),
]
LinkText = Annotated[
    str,
    Field(max_length=MAX_LINK_TEXT, pattern=TEXT_PATTERN, description="Text shown for it."),
]


def placeholders(template: str) -> list[str]:
    """The tag names a template refers to, in order."""
    return PLACEHOLDER_RE.findall(template)


class LinkRule(CamelModel):
    """One ``links[]`` entry of a trigger: a runbook, a dashboard, a ticket."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [_ONE_SOURCE_RULE]})

    tag: TagName | None = Field(
        default=None, description="BigPanda tag whose value is the link's whole URL."
    )
    template: UrlTemplate | None = None
    text: LinkText | None = Field(
        default=None,
        description="Text shown for the link (default: the tag's name for a tag link).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.tag is None) == (self.template is None):
            raise ValueError(ONE_SOURCE_MESSAGE)
        return self


class ImageRule(CamelModel):
    """One ``images[]`` entry of a trigger: a graph or a chart (``src`` must be HTTPS)."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [_ONE_SOURCE_RULE]})

    tag: TagName | None = Field(
        default=None, description="BigPanda tag whose value is the image's https URL (src)."
    )
    template: ImageTemplate | None = None
    href: UrlTemplate | None = Field(
        default=None,
        description="Where a click on the image goes: an http(s) URL, placeholders allowed "
        "as in template; when it cannot be built the image is sent without it.",
    )
    alt: LinkText | None = Field(default=None, description="Alternative text of the image.")

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.tag is None) == (self.template is None):
            raise ValueError(ONE_SOURCE_MESSAGE)
        return self


LINKS_DESCRIPTION = (
    f"Links added to each trigger (runbooks, dashboards), at most {MAX_EVENT_LINKS} per "
    "event; a link whose URL cannot be built or is not a plain http(s) URL is dropped "
    "(metric pagerbridge_relay_links_dropped_total), never the event."
)
IMAGES_DESCRIPTION = (
    f"Images added to each trigger (graphs), at most {MAX_EVENT_IMAGES} per event; src "
    "must be https. A bad one is dropped like a link, never the event."
)
