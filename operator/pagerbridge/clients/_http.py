"""Turning HTTP outcomes into :mod:`pagerbridge.clients.errors`, one place for all clients."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from pagerbridge.clients.errors import (
    ClientError,
    Conflict,
    ConnectionFailed,
    EgressRefused,
    MalformedResponse,
    RateLimited,
    Rejected,
    ServerError,
    Unauthorized,
)

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# A call whose answer is its status (``status_only``): how long the body of a 2xx may take
# to arrive after the headers before it is given up (a real body comes with the headers).
STATUS_ONLY_BODY_GRACE = 1.0
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class CallLimits:
    """What one external call may cost the operator (its settings, from the Helm values).

    ``deadline`` bounds the whole call (connect, send, every read), unlike httpx's
    per-read timeouts; bodies are read streamed and cut at ``max_response_bytes``; a
    listing stops with an error past ``max_pages`` pages or ``max_items`` items.
    """

    deadline: float = 30.0
    max_response_bytes: int = 1 << 20
    max_pages: int = 20
    max_items: int = 1000


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


async def call(
    client: httpx.AsyncClient,
    what: str,
    method: str,
    url: str,
    limits: CallLimits,
    *,
    params: dict[str, str] | None = None,
    json_body: Any = None,
    headers: dict[str, str] | None = None,
    status_only: bool = False,
) -> httpx.Response:
    """One bounded request: overall deadline, streamed size cap, policy refusals mapped.

    Returns the response with its (capped) body read; error statuses raise the matching
    :class:`ClientError` (:func:`raise_for_status`). An error status whose body is unusable
    (compressed, too large) still raises what its status means, with an empty body: a 503
    stays transient.

    ``status_only``: the status of a 2xx is the whole answer (PagerDuty's 202 to an event),
    so a body still incomplete :data:`STATUS_ONLY_BODY_GRACE` seconds after the headers is
    dropped and the response returned with an empty body: an upstream that answers 202 and
    then drips a byte every few seconds frees its slot at once instead of at the deadline.
    """
    # Uncompressed only: the size cap then bounds the memory the body takes (a 510 KB gzip
    # answer can decompress to 512 MiB; it is refused unread instead).
    request = client.build_request(
        method,
        url,
        params=params,
        json=json_body,
        headers={**(headers or {}), "Accept-Encoding": "identity"},
    )
    unusable: str | None = None
    try:
        async with asyncio.timeout(limits.deadline):
            response = await client.send(request, stream=True)
            try:
                body = bytearray()
                if response.headers.get("content-encoding", "identity") != "identity":
                    unusable = "compressed answer although none was accepted"
                elif status_only and response.is_success:
                    try:
                        async with asyncio.timeout(min(STATUS_ONLY_BODY_GRACE, limits.deadline)):
                            unusable = await _read(response, body, limits.max_response_bytes)
                    except TimeoutError:
                        body.clear()  # the status says it all; the rest never came
                else:
                    unusable = await _read(response, body, limits.max_response_bytes)
            finally:
                await response.aclose()
    except EgressRefused as exc:
        raise EgressRefused(f"{what}: {exc}") from None
    except (TimeoutError, httpx.TimeoutException):
        raise ConnectionFailed(f"{what}: no complete answer within {limits.deadline:g}s") from None
    except httpx.TransportError as exc:
        raise ConnectionFailed(f"{what}: {type(exc).__name__}") from None
    headers_read = response.headers.copy()
    headers_read.pop("content-encoding", None)  # the body kept is raw bytes (or nothing)
    bounded = httpx.Response(
        response.status_code, headers=headers_read, content=bytes(body), request=request
    )
    raise_for_status(bounded, what)
    if unusable is not None:
        raise MalformedResponse(f"{what}: {unusable}", status=response.status_code)
    return bounded


async def _read(response: httpx.Response, body: bytearray, cap: int) -> str | None:
    """Read the raw body into ``body``; why it is unusable (past ``cap``), or None."""
    async for chunk in response.aiter_raw():
        body.extend(chunk)
        if len(body) > cap:
            body.clear()
            return f"answer larger than {cap} bytes"
    return None


def parse(model: type[M], response: httpx.Response, what: str) -> M:
    """The body as ``model``, or :class:`MalformedResponse` (never a KeyError or crash)."""
    try:
        return model.model_validate(json.loads(response.content))
    except (ValueError, ValidationError) as exc:
        detail = (
            f"{exc.error_count()} field error(s), first at "
            + ".".join(map(str, exc.errors()[0]["loc"]))
            if isinstance(exc, ValidationError)
            else "not JSON"
        )
        raise MalformedResponse(
            f"{what}: unexpected answer ({detail})", status=response.status_code
        ) from None


__all__ = [
    "DEFAULT_TIMEOUT",
    "CallLimits",
    "ClientError",
    "call",
    "parse",
    "parse_retry_after",
    "path_segment",
    "raise_for_status",
]
