"""Shared handling of inbound webhook requests: size-capped body reading, content type,
bearer tokens, and the JSON error answer every refusal gets."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from pagerbridge.relay.errors import (
    InboundError,
    MalformedJson,
    PayloadTooLarge,
    SenderUnauthorized,
    UnsupportedMedia,
)

log = logging.getLogger(__name__)

MAX_BODY = 512 * 1024  # PagerDuty's event size limit; nothing bigger could be delivered


def error_response(exc: InboundError, endpoint: str) -> JSONResponse:
    log.warning(
        "request refused",
        extra={
            "endpoint": endpoint,
            "status": exc.status,
            "error": exc.code,
            "reason": exc.message,
        },
    )
    return JSONResponse({"error": exc.code, "message": exc.message}, status_code=exc.status)


def check_bearer(request: Request, tokens: Iterable[str]) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise SenderUnauthorized("missing bearer token")
    given = presented.strip().encode("utf-8", "replace")
    ok = False
    for token in tokens:
        ok |= hmac.compare_digest(given, token.encode())
    if not ok:
        raise SenderUnauthorized("invalid bearer token")


def check_json_content_type(request: Request) -> None:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise UnsupportedMedia("Content-Type must be application/json")


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise PayloadTooLarge(f"body over {limit // 1024} KB")
        except ValueError:
            raise MalformedJson("invalid Content-Length") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body over {limit // 1024} KB")
        chunks.append(chunk)
    return b"".join(chunks)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_json(body: bytes) -> Any:
    try:
        return json.loads(body, parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MalformedJson("body is not valid JSON") from None
