"""Build a trigger's ``links[]`` and ``images[]`` from the RelayConfig's link and image rules.

Pure: (incident tags, rules) → (links, images, drops). The rules' shape, the template
language and the bounds are :mod:`pagerbridge.api.links`; this module applies them to one
incident's tag values, which come from BigPanda alerts and so from any monitoring system:
they are data, never trusted.

- ``tag`` rule: the value is the whole URL, checked as it is.
- ``template`` rule: each ``{{tag}}`` is replaced by the tag's value percent-encoded with
  nothing kept safe (``/``, ``?``, ``@``, ``#`` and ``%`` included), so a value stays inside
  the part of the URL where the template put it. A tag longer than the URL limit is refused
  before it is encoded (bounded work, whatever the tags hold).

A URL is dropped, with a :class:`~pagerbridge.relay.outcomes.LinkDropReason`, when it is
over :data:`~pagerbridge.api.links.MAX_URL`, holds whitespace or a control or format
character, does not parse or has no host, is not http(s) (an image ``src`` not https:
PagerDuty shows images served over HTTPS only), or carries user info (``user:password@``
is a credential; PagerDuty would show it to every responder). Past the per-event counts
the rest are dropped as ``too_many`` (not evaluated). The event is never refused for a
link: dropping is the whole failure mode.

What a drop records is the rule (its position, and its tag or the template's placeholder
tags: configuration, not data) and the reason, never the URL: a URL a tag carries may hold
a token in its query, and one with user info holds a password.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from pagerbridge.api.links import (
    MAX_EVENT_IMAGES,
    MAX_EVENT_LINKS,
    MAX_URL,
    PLACEHOLDER_RE,
    ImageRule,
    LinkRule,
    placeholders,
)
from pagerbridge.relay.outcomes import LinkDropReason, LinkKind

TagLookup = Callable[[str], str | None]
_HTTP = frozenset({"http", "https"})
_HTTPS = frozenset({"https"})


@dataclass(frozen=True)
class Drop:
    """One link or image left out: which rule, and why (no URL: see the module docstring)."""

    kind: LinkKind
    rule: str  # "links[2]", "images[0]"
    source: str  # "tag runbook" or "template (host, service)"
    reason: LinkDropReason


@dataclass(frozen=True)
class Built:
    links: tuple[dict[str, str], ...] = ()
    images: tuple[dict[str, str], ...] = ()
    drops: tuple[Drop, ...] = ()


class Refused(Exception):
    """A URL that is not sent, and why."""

    def __init__(self, reason: LinkDropReason) -> None:
        self.reason = reason


def _has_bad_character(url: str) -> bool:
    return any(char.isspace() or unicodedata.category(char) in ("Cc", "Cf") for char in url)


def check_url(url: str, schemes: frozenset[str] = _HTTP) -> str:
    """``url`` if it may be sent as it is; raises ``Refused`` with the reason otherwise."""
    if len(url) > MAX_URL:
        raise Refused(LinkDropReason.TOO_LONG)
    if _has_bad_character(url):
        raise Refused(LinkDropReason.CONTROL_CHARACTERS)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a port out of range or not a number)
    except ValueError:
        raise Refused(LinkDropReason.UNPARSABLE) from None
    scheme = parts.scheme.lower()
    if scheme not in _HTTP:
        raise Refused(LinkDropReason.SCHEME if scheme else LinkDropReason.UNPARSABLE)
    if "@" in parts.netloc:
        raise Refused(LinkDropReason.CREDENTIALS)
    if not parts.hostname:
        raise Refused(LinkDropReason.UNPARSABLE)
    if scheme not in schemes:
        raise Refused(LinkDropReason.SCHEME)
    return url


def expand(template: str, lookup: TagLookup) -> str:
    """``template`` with each ``{{tag}}`` replaced by the tag's percent-encoded value."""

    def value(match: Any) -> str:
        found = lookup(match.group(1))
        if found is None or not found.strip():
            raise Refused(LinkDropReason.MISSING_TAG)
        if len(found) > MAX_URL:
            raise Refused(LinkDropReason.TOO_LONG)
        return quote(found, safe="")

    return PLACEHOLDER_RE.sub(value, template)


def _url(tag: str | None, template: str | None, lookup: TagLookup, schemes: frozenset[str]) -> str:
    if tag is not None:
        found = lookup(tag)
        if found is None or not found.strip():
            raise Refused(LinkDropReason.MISSING_TAG)
        return check_url(found.strip(), schemes)
    assert template is not None  # one of the two, by the rule's validator
    return check_url(expand(template, lookup), schemes)


def _source(tag: str | None, template: str | None) -> str:
    if tag is not None:
        return f"tag {tag}"
    names = ", ".join(dict.fromkeys(placeholders(template or "")))
    return f"template ({names})" if names else "template"


def build(lookup: TagLookup, links: Sequence[LinkRule], images: Sequence[ImageRule]) -> Built:
    """The links and images of one trigger, in rule order, within the per-event counts."""
    out_links: list[dict[str, str]] = []
    out_images: list[dict[str, str]] = []
    drops: list[Drop] = []
    for index, link in enumerate(links):
        rule, source = f"links[{index}]", _source(link.tag, link.template)
        if len(out_links) >= MAX_EVENT_LINKS:
            drops.append(Drop(LinkKind.LINK, rule, source, LinkDropReason.TOO_MANY))
            continue
        try:
            href = _url(link.tag, link.template, lookup, _HTTP)
        except Refused as refused:
            drops.append(Drop(LinkKind.LINK, rule, source, refused.reason))
            continue
        entry = {"href": href}
        text = link.text if link.text is not None else link.tag
        if text:
            entry["text"] = text
        out_links.append(entry)
    for index, image in enumerate(images):
        rule, source = f"images[{index}]", _source(image.tag, image.template)
        if len(out_images) >= MAX_EVENT_IMAGES:
            drops.append(Drop(LinkKind.IMAGE, rule, source, LinkDropReason.TOO_MANY))
            continue
        try:
            src = _url(image.tag, image.template, lookup, _HTTPS)
        except Refused as refused:
            drops.append(Drop(LinkKind.IMAGE, rule, source, refused.reason))
            continue
        entry = {"src": src}
        if image.href is not None:
            try:
                entry["href"] = check_url(expand(image.href, lookup))
            except Refused as refused:
                href_source = _source(None, image.href)
                drops.append(Drop(LinkKind.IMAGE_HREF, rule, href_source, refused.reason))
        if image.alt:
            entry["alt"] = image.alt
        out_images.append(entry)
    return Built(tuple(out_links), tuple(out_images), tuple(drops))
