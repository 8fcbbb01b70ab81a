"""What an identifier from outside may look like, checked once at the edge.

Ids and keys from a webhook end up in URL paths (``/incidents/{id}/notes``), in SQLite
keys, in Events v2 ``dedup_key`` and in log lines. One that cannot be all of those is
refused with a 4xx where it arrives, instead of becoming a job that can never be delivered
(a NUL made httpx refuse the URL and blocked the incident's lane; a lone surrogate cannot be
encoded as UTF-8 at all).

- A BigPanda incident id becomes PagerDuty's ``dedup_key`` (documented maximum: 255
  characters), so it is at most 255 characters, with no control character (C0, DEL, C1),
  no surrogate and no U+FFFD (what :func:`pagerbridge.relay.inbound.common.decode_json` puts in
  place of a lone surrogate).
- A PagerDuty object id (incident, note) is short and alphanumeric (``Q1A2B3C4D5E6F7``).
"""

from __future__ import annotations

import re

MAX_DEDUP_KEY = 255  # PagerDuty Events v2: dedup_key up to 255 characters
MAX_PAGERDUTY_ID = 64

# C0 controls, DEL, C1 controls, surrogates, U+FFFD (a replaced undecodable character).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffd]")
_PAGERDUTY_ID = re.compile(rf"[A-Za-z0-9]{{1,{MAX_PAGERDUTY_ID}}}")


def is_safe_text_id(value: str, max_length: int = MAX_DEDUP_KEY) -> bool:
    """A non-blank id of printable characters, at most ``max_length`` long."""
    return 0 < len(value) <= max_length and bool(value.strip()) and not _UNSAFE.search(value)


def is_pagerduty_id(value: str) -> bool:
    return _PAGERDUTY_ID.fullmatch(value) is not None
