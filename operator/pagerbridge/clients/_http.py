"""Turning HTTP outcomes into :mod:`pagerbridge.clients.errors`, one place for all clients."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote

import httpx

from pagerbridge.clients.errors import (
    ClientError,
    Conflict,
    ConnectionFailed,
    RateLimited,
    Rejected,
    ServerError,
    Unauthorized,
)

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def path_segment(value: str) -> str:
    """An id as exactly one URL path segment: a ``/``, ``?`` or ``#`` in it cannot change
    which resource the request addresses."""
    return quote(value, safe="")


def parse_retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait, from ``Retry-After`` or PagerDuty's ``ratelimit-reset``."""
    for header in ("retry-after", "ratelimit-reset"):
        value = response.headers.get(header)
        if value is None:
            continue
        try:
            return max(0.0, float(value))
        except ValueError:
            continue
    return None


def raise_for_status(response: httpx.Response, what: str) -> None:
    """Raise the matching :class:`ClientError` for a non-2xx response."""
    status = response.status_code
    if status < 300:
        return
    body = response.text
    message = f"{what}: HTTP {status}"
    if status == 429:
        raise RateLimited(message, body=body, retry_after=parse_retry_after(response))
    if status == 408 or status >= 500:
        raise ServerError(message, status=status, body=body)
    if status in (401, 403):
        raise Unauthorized(message, status=status, body=body)
    if status == 409:
        raise Conflict(message, status=status, body=body)
    raise Rejected(message, status=status, body=body)


async def send(what: str, request: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
    """Run ``request``; map transport failures and error statuses to client errors.

    ``what`` names the call for messages (method and path, never a credential).
    """
    try:
        response = await request()
    except httpx.TimeoutException as exc:
        raise ConnectionFailed(f"{what}: timed out ({type(exc).__name__})") from None
    except httpx.TransportError as exc:
        raise ConnectionFailed(f"{what}: {type(exc).__name__}") from None
    raise_for_status(response, what)
    return response


__all__ = [
    "DEFAULT_TIMEOUT",
    "ClientError",
    "parse_retry_after",
    "path_segment",
    "raise_for_status",
    "send",
]
