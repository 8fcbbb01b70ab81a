"""PagerDuty Webhooks v3 signature verification.

``X-PagerDuty-Signature: v1=<hex>[,v1=<hex>...]`` where each ``<hex>`` is
HMAC-SHA256(secret, raw body). During a secret rotation PagerDuty signs with several
secrets and the relay's secret file may hold several lines; one match among all pairs is
enough. Comparison is constant-time, and nothing of the body is parsed before it passes.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

MAX_SIGNATURES = 16


def sign(secret: str, body: bytes) -> str:
    """``v1=<hex>`` for one secret (used by tests and the simulator's counterpart)."""
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signatures(header: str | None) -> list[str]:
    if not header:
        return []
    out: list[str] = []
    for part in header.split(",")[:MAX_SIGNATURES]:
        part = part.strip()
        if part.startswith("v1="):
            out.append(part[3:].strip().lower())
    return out


def verify(header: str | None, body: bytes, secrets: Iterable[str]) -> bool:
    candidates = signatures(header)
    if not candidates:
        return False
    ok = False
    for secret in secrets:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        for candidate in candidates:
            # No early exit: the time taken does not reveal which pair matched.
            ok |= hmac.compare_digest(expected.encode(), candidate.encode("ascii", "replace"))
    return ok
