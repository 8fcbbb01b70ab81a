"""PagerDuty Events API v2 size limits, and the deterministic trimming that keeps every
event the relay builds within them.

PagerDuty refuses an event over its limits with a 400: permanent, so the page would be
lost. The limits (PagerDuty's Events API v2 documentation; the simulator enforces the same
ones) are:

- the whole request body at most 512 KB (:data:`PAGERDUTY_EVENT_KB`: the only place the
  number is written), ``routing_key`` included;
- ``dedup_key`` at most 255 characters (longer incident ids are refused at the edge, see
  :mod:`pagerbridge.relay.incidents.identifiers`, because the dedup key must stay the BigPanda id);
- ``payload.summary`` at most 1024 characters;
- ``payload.source``, ``component``, ``group``, ``class``, ``client``, link texts: kept to
  1024 characters as well (PagerDuty shows them next to the summary); URLs to 2048.

:func:`fit_event` runs **last**, after tag mappings, on the exact event that will be sent.
Text fields over their limit are cut and end with ``…``. If the body is still too large,
``custom_details`` (the only open-ended part) is shrunk in fixed steps, each step cutting
long strings and long lists/objects harder, until it fits; what was cut is said in
``custom_details.pagerbridge_trimmed`` and at each cut (a ``…[cut by PagerBridge]`` ending,
a last list item or an object key ``…`` counting what was dropped). Same input, same
output: the event's content hash (idempotency) stays stable across re-sends.

Sizes are measured as ``json.dumps`` with ASCII escapes and the default separators, which is
never smaller than the compact UTF-8 body the HTTP client sends.
"""

from __future__ import annotations

import json
from typing import Any

from pagerbridge.api.links import MAX_URL  # written once there: the CRD bounds URLs too

#: PagerDuty's limit on one Events API v2 request, in its documentation's words "512 KB".
#: The documentation does not say which kilobyte, and the OpenAPI documents
#: (specs/pagerduty) give no size at all, so each side takes the reading that is safe for it:
PAGERDUTY_EVENT_KB = 512
#: what PagerDuty may accept at most (the 1024-byte reading): the relay's inbound edge
#: refuses bodies over it (nothing bigger could be delivered) and the simulator accepts
#: exactly up to it;
MAX_BODY = PAGERDUTY_EVENT_KB * 1024
#: what the relay's own events are fitted into (the 1000-byte reading): accepted under
#: either reading.
MAX_EVENT_BYTES = PAGERDUTY_EVENT_KB * 1000
ROUTING_KEY_ALLOWANCE = 64  # ', "routing_key": "<32 characters>"' is added at send time
MAX_TEXT = 1024
MAX_DEPTH = 32
TEXT_FIELDS = ("summary", "source", "component", "group", "class")
CUT = "…[cut by PagerBridge]"
TRIM_NOTE_KEY = "pagerbridge_trimmed"

# (longest string kept, most entries kept per list/object), tried in this order.
_STEPS: tuple[tuple[int, int], ...] = (
    (65536, 1 << 30),
    (16384, 4096),
    (4096, 1024),
    (1024, 256),
    (512, 64),
    (256, 16),
    (128, 4),
    (64, 1),
)


def size(event: dict[str, Any]) -> int:
    return len(json.dumps(event, ensure_ascii=True, default=str))


def cut_text(value: str, limit: int) -> str:
    """``value`` shortened to ``limit`` characters, ending with ``…`` when cut."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


def fit_event(event: dict[str, Any]) -> dict[str, Any]:
    """The event within PagerDuty's limits (a new dict when anything had to change)."""
    payload = event.get("payload")
    if not isinstance(payload, dict):
        return event  # resolve / acknowledge: dedup key only
    event = _fit_fields(event, payload)
    payload = event["payload"]
    budget = MAX_EVENT_BYTES - ROUTING_KEY_ALLOWANCE
    total = size(event)
    if total <= budget:
        return event
    details = payload.get("custom_details")
    rest = total - (size({"d": details}) - size({"d": None}))  # the event minus the details
    for max_text, max_items in _STEPS:
        shrunk = _shrink(details, max_text, max_items, 0)
        if not isinstance(shrunk, dict):
            shrunk = {"value": shrunk}
        shrunk[TRIM_NOTE_KEY] = (
            f"custom_details cut to fit PagerDuty's event size limit ({total} bytes before): "
            f"strings over {max_text} characters shortened, lists and objects over "
            f"{max_items} entries cut"
        )
        candidate = {**event, "payload": {**payload, "custom_details": shrunk}}
        if size(candidate) <= budget:
            return candidate
    # Nothing of custom_details fits (the rest of the event is already near the limit,
    # which the field limits above make impossible): keep the page, drop the details.
    note = {TRIM_NOTE_KEY: f"custom_details dropped to fit PagerDuty's limit ({rest} bytes)"}
    return {**event, "payload": {**payload, "custom_details": note}}


def _fit_fields(event: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    changed_payload = {
        name: cut_text(value, MAX_TEXT)
        for name in TEXT_FIELDS
        if isinstance(value := payload.get(name), str) and len(value) > MAX_TEXT
    }
    changed: dict[str, Any] = {}
    if changed_payload:
        changed["payload"] = {**payload, **changed_payload}
    client = event.get("client")
    if isinstance(client, str) and len(client) > MAX_TEXT:
        changed["client"] = cut_text(client, MAX_TEXT)
    url = event.get("client_url")
    if isinstance(url, str) and len(url) > MAX_URL:
        changed["client_url"] = url[:MAX_URL]
    links = event.get("links")
    if isinstance(links, list) and any(
        isinstance(link, dict)
        and (len(str(link.get("href", ""))) > MAX_URL or len(str(link.get("text", ""))) > MAX_TEXT)
        for link in links
    ):
        changed["links"] = [
            {**link, "href": str(link.get("href", ""))[:MAX_URL]}
            | ({"text": cut_text(str(link["text"]), MAX_TEXT)} if "text" in link else {})
            if isinstance(link, dict)
            else link
            for link in links
        ]
    return {**event, **changed} if changed else event


def _shrink(value: Any, max_text: int, max_items: int, depth: int) -> Any:
    if isinstance(value, str):
        if len(value) <= max_text:
            return value
        return value[: max(0, max_text - len(CUT))] + CUT
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            return CUT
        items = list(value.items())
        out = {
            str(k)[:max_text]: _shrink(v, max_text, max_items, depth + 1)
            for k, v in items[:max_items]
        }
        if len(items) > max_items:
            out["…"] = f"{len(items) - max_items} more entries cut by PagerBridge"
        return out
    if isinstance(value, list | tuple):
        if depth >= MAX_DEPTH:
            return CUT
        kept = [_shrink(v, max_text, max_items, depth + 1) for v in value[:max_items]]
        if len(value) > max_items:
            kept.append(f"…{len(value) - max_items} more items cut by PagerBridge")
        return kept
    return value


# -- BigPanda comments ------------------------------------------------------------------
#: BigPanda documents no size limit for ``POST .../incidents/{id}/comments`` (see
#: ``specs/bigpanda/README.md``). A comment the relay builds from a PagerDuty change (a
#: status update message, a list of assignees) is bounded by what PagerDuty itself lets a
#: note carry (25,000 characters, :data:`pagerbridge.relay.incidents.echo.MAX_NOTE_LENGTH`),
#: the longest text the relay has ever mirrored into BigPanda, marker included.
MAX_COMMENT = 25000
#: One name in a comment (a user, an escalation policy, a priority): PagerDuty's own
#: summaries are short; a longer one is cut.
MAX_COMMENT_NAME = 200
#: Names listed in one comment (assignees); the rest are counted ("and 3 more").
MAX_COMMENT_NAMES = 10
