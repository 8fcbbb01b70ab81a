"""Events API v2: ``POST /v2/enqueue``, validation and answers as PagerDuty gives them.

An event is checked against the official ``events-v2`` OpenAPI document and against the
rules PagerDuty documents in prose (``docs/events-API-v2``): a 32-character routing key,
``dedup_key`` up to 255 characters (required to acknowledge or resolve), a ``payload``
with ``summary`` (up to 1024 characters), ``source`` and ``severity`` for triggers,
``links[]`` / ``images[]`` URLs that are URLs (``format: url``), images served over HTTPS,
and a 512 KB size limit (the relay's
:data:`pagerbridge.relay.incidents.limits.MAX_BODY`, its generous reading).

Answers (PagerDuty's documented bodies):

- 202 ``{"status": "success", "message": "Event processed", "dedup_key": ...}``
- 400 ``{"status": "invalid event", "message": "Event object is invalid", "errors": [...]}``;
  400 ``{"status": "Unrecognized object", ...}`` when the body is not a JSON object.
  An oversized body is a 400 as well: PagerDuty documents only 202/400/429/5xx for this
  endpoint, so a client sees a permanent error, which it is.
- 429 when the routing key's per-minute limit is used up.

``payload`` only matters for triggers (PagerDuty ignores it on acknowledge and resolve),
so it is validated for triggers only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pagerbridge.relay.incidents.limits import MAX_BODY, PAGERDUTY_EVENT_KB
from pagerbridge_devkit.sandbox.pagerduty import openapi
from pagerbridge_devkit.sandbox.pagerduty.ratelimit import RateLimiter, TokenBucket
from pagerbridge_devkit.sandbox.pagerduty.state import AccountState, Change

ROUTING_KEY_LENGTH = 32
MAX_DEDUP_KEY = 255
MAX_SUMMARY = 1024
SEVERITIES = ("critical", "error", "warning", "info")


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()


def _invalid(errors: list[str]) -> Answer:
    return Answer(
        400, {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
    )


def _unrecognized(reason: str) -> Answer:
    return Answer(
        400,
        {
            "status": "Unrecognized object",
            "message": "Event object format is unrecognized",
            "errors": [reason],
        },
    )


def rule_errors(event: dict[str, Any], *, schema_checked: bool) -> list[str]:
    """The documented rules; with ``schema_checked``, only those the schema cannot express.

    The OpenAPI schema already reports missing fields, wrong types and values outside an
    enum; repeating them would double every message. Without the schema (``validate``
    off) these basics are still checked here, since the state machine relies on them.
    """
    errors: list[str] = []
    basics = not schema_checked

    def blank(container: dict[str, Any], key: str) -> bool:
        value = container.get(key)
        if key not in container or not isinstance(value, str):
            return basics
        return not value.strip()

    routing_key = event.get("routing_key")
    if isinstance(routing_key, str):
        if len(routing_key) != ROUTING_KEY_LENGTH:
            errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    elif basics:
        errors.append("'routing_key' is missing or not a string")
    action = event.get("event_action")
    if basics and action not in ("trigger", "acknowledge", "resolve"):
        errors.append("'event_action' is invalid (must be one of: trigger, acknowledge, resolve)")
    dedup_key = event.get("dedup_key")
    if basics and dedup_key is not None and not isinstance(dedup_key, str):
        errors.append("'dedup_key' must be a string")
    if isinstance(dedup_key, str) and len(dedup_key) > MAX_DEDUP_KEY:
        errors.append("'dedup_key' is too long (maximum is 255 characters)")
    if action in ("acknowledge", "resolve") and (
        not isinstance(dedup_key, str) or not dedup_key.strip()
    ):
        errors.append(f"'dedup_key' is required to {action} an alert")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            if payload is None or basics:
                errors.append("'payload' is missing or not an object")
        else:
            summary = payload.get("summary")
            if blank(payload, "summary"):
                errors.append("'payload.summary' is missing or blank")
            elif isinstance(summary, str) and len(summary) > MAX_SUMMARY:
                errors.append("'payload.summary' is too long (maximum is 1024 characters)")
            if blank(payload, "source"):
                errors.append("'payload.source' is missing or blank")
            if basics and payload.get("severity") not in SEVERITIES:
                errors.append(
                    "'payload.severity' is invalid (must be one of: critical, error, warning, info)"
                )
    errors.extend(_context_errors(event))
    return errors


def _is_url(value: str) -> bool:
    """The OpenAPI document's ``format: url``: an absolute http(s) URL with a host."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc) and " " not in value


def _context_errors(event: dict[str, Any]) -> list[str]:
    """``links[]`` and ``images[]`` (the ``Links`` / ``Images`` schemas): their URLs are
    ``format: url``, which the schema validators leave unchecked, and an image ``src``
    "must be served via HTTPS" (the document's words)."""
    errors: list[str] = []
    links = event.get("links")
    if isinstance(links, list):
        for index, link in enumerate(links):
            href = link.get("href") if isinstance(link, dict) else None
            if isinstance(href, str) and not _is_url(href):
                errors.append(f"'links[{index}].href' must be a URL")
    images = event.get("images")
    if isinstance(images, list):
        for index, image in enumerate(images):
            if not isinstance(image, dict):
                continue
            src, href = image.get("src"), image.get("href")
            if isinstance(src, str) and not src.lower().startswith("https://"):
                errors.append(f"'images[{index}].src' must be an HTTPS URL")
            elif isinstance(src, str) and not _is_url(src):
                errors.append(f"'images[{index}].src' must be a URL")
            if isinstance(href, str) and not _is_url(href):
                errors.append(f"'images[{index}].href' must be a URL")
    return errors


class EventsApi:
    """Turns request bodies into answers and state changes."""

    def __init__(
        self,
        state: AccountState,
        limiter: RateLimiter | TokenBucket,
        publish: Callable[[list[Change]], None],
        *,
        validate: bool = True,
    ) -> None:
        self.state = state
        self.limiter = limiter
        self.publish = publish
        self.validate = validate
        self._schema = openapi.request_validator("events-v2", "/enqueue", "post")
        self._fast_check = openapi.fast_request_check("events-v2", "/enqueue", "post")

    def enqueue(self, body: bytes) -> Answer:
        if len(body) > MAX_BODY:
            return _invalid([f"Event payload exceeds the {PAGERDUTY_EVENT_KB} KB size limit"])
        try:
            event = json.loads(body)
        except ValueError:
            return _unrecognized("JSON parse error")
        if not isinstance(event, dict):
            return _unrecognized("Event must be a JSON object")
        errors = self.errors(event)
        if errors:
            return _invalid(errors)
        routing_key: str = event["routing_key"]
        service_id = self.state.service_for(routing_key)
        if service_id is None:
            return _invalid(["Invalid routing key"])
        verdict = self.limiter.hit(routing_key)
        if not verdict.allowed:
            retry = verdict.retry_after
            return Answer(
                429,
                {
                    "status": "throttle event",
                    "message": "Requests for this service are arriving too quickly. "
                    "Please retry later.",
                    "errors": ["Too many events"],
                },
                (("retry-after", str(retry)),) if retry is not None else (),
            )
        dedup_key, changes = self.state.apply_event(event, service_id)
        if changes:
            self.publish(changes)
        return Answer(
            202, {"status": "success", "message": "Event processed", "dedup_key": dedup_key}
        )

    def errors(self, event: dict[str, Any]) -> list[str]:
        """Schema violations (unless ``validate`` is off) plus the documented rules."""
        errors: list[str] = []
        if self.validate:
            checked = event if event.get("event_action") == "trigger" else _without_payload(event)
            if not self._fast_check(checked):
                errors = openapi.error_messages(self._schema, checked)
        return errors + rule_errors(event, schema_checked=self.validate)


def _without_payload(event: dict[str, Any]) -> dict[str, Any]:
    if "payload" not in event:
        return event
    return {k: v for k, v in event.items() if k != "payload"}
