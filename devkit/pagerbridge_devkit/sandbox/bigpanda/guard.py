"""What every BigPanda API call goes through: bearer auth, the rate limit, error bodies.

Errors use BigPanda's documented shape ``{"status": N, "errors": ["..."]}``.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pagerbridge_devkit.sandbox.bigpanda.ratelimit import RateLimiter


def error(status: int, *messages: str) -> JSONResponse:
    return JSONResponse({"status": status, "errors": list(messages)}, status_code=status)


def validation_errors(exc: ValidationError) -> JSONResponse:
    """400 listing each problem as ``location: message`` (never the input values)."""
    messages = [
        f"{'.'.join(str(part) for part in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
    ]
    return error(400, *messages)


class Guard:
    """Bearer-token check (token -> the user it belongs to) then the per-endpoint limit."""

    def __init__(self, tokens: Mapping[str, str], limiter: RateLimiter) -> None:
        self.tokens = dict(tokens)
        self.limiter = limiter

    def user(self, request: Request) -> str | None:
        """The user whose API key authorises the request, or None."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        token = token.strip()
        found: str | None = None
        for known, user in self.tokens.items():
            # compare against every key (constant time per key, no early exit)
            if hmac.compare_digest(known.encode(), token.encode()):
                found = user
        return found

    def check(self, request: Request, endpoint: str) -> str | Response:
        """The calling user when the call may proceed, else the error response to send."""
        user = self.user(request)
        if user is None:
            return error(401, "Unauthorized: missing or invalid API key")
        if not self.limiter.allow(endpoint):
            return error(429, "Too many requests")
        return user


async def json_object(request: Request) -> dict[str, Any] | JSONResponse:
    """The body as a JSON object, or the 400 to answer."""
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        return error(400, "Body is not valid JSON")
    if not isinstance(body, dict):
        return error(400, "Body must be a JSON object")
    return body
