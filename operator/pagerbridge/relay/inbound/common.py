"""Shared handling of inbound webhook requests: size-capped body reading, content type,
bearer tokens, JSON decoding made safe for everything downstream, and the JSON error answer
every refusal gets.

Decoded JSON is made safe once, here, rather than defended against in every consumer:

- JSON may carry lone surrogates (``"\\ud800"``), which no UTF-8 encoder accepts (SQLite,
  hashing, the outbound request would all fail): each becomes U+FFFD. Ids containing one are
  then refused by :mod:`pagerbridge.relay.incidents.identifiers`; in free text it is harmless.
- Nesting deeper than :data:`MAX_DEPTH` is replaced by a marker string, so no later
  ``json.dumps`` or walk can hit the recursion limit (a 990-deep alert field was a 500).
  Nothing real is that deep; the incident itself is kept.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Iterable
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from pagerbridge.relay.errors import (
    ClientDisconnected,
    InboundError,
    MalformedJson,
    PayloadTooLarge,
    SenderUnauthorized,
    UnsupportedMedia,
)
from pagerbridge.relay.incidents.limits import MAX_BODY

logger = logging.getLogger(__name__)


def error_document(code: str, message: str) -> dict[str, str]:
    """The JSON body of every refusal, the application's and the edge's
    (:mod:`pagerbridge.relay.server`)."""
    return {"error": code, "message": message}


def error_response(exc: InboundError, endpoint: str) -> JSONResponse:
    if isinstance(exc, ClientDisconnected):
        # Nobody is left to answer; an everyday event on the internet, not an error.
        logger.info(
            "client disconnected before sending its whole body", extra={"endpoint": endpoint}
        )
        return JSONResponse(error_document(exc.code, exc.message), status_code=exc.status)
    logger.warning(
        "request refused",
        extra={
            "endpoint": endpoint,
            "status": exc.status,
            "error": exc.code,
            "reason": exc.message,
        },
    )
    return JSONResponse(error_document(exc.code, exc.message), status_code=exc.status)


def bearer_matches(header: str, tokens: Iterable[str]) -> bool | None:
    """Whether an ``Authorization`` value presents one of ``tokens`` (constant-time);
    None when it presents no bearer token at all."""
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return None
    given = presented.strip().encode("utf-8", "replace")
    ok = False
    for token in tokens:
        ok |= hmac.compare_digest(given, token.encode())
    return ok


def check_bearer(request: Request, tokens: Iterable[str]) -> None:
    ok = bearer_matches(request.headers.get("authorization", ""), tokens)
    if ok is None:
        raise SenderUnauthorized("missing bearer token")
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
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"body over {limit // 1024} KB")
            chunks.append(chunk)
    except ClientDisconnect:
        # The client went away (or was cut off by the server's body deadline, see
        # relay.server) in the middle of its body: counted, one info line, no traceback.
        raise ClientDisconnected("client disconnected mid-body") from None
    return b"".join(chunks)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


MAX_DEPTH = 32
DEPTH_MARKER = f"[cut by PagerBridge: nested deeper than {MAX_DEPTH} levels]"
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def decode_json(body: bytes) -> Any:
    try:
        data = json.loads(body, parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MalformedJson("body is not valid JSON") from None
    # Cheap tests on the bytes decide whether the walk is needed at all: strict UTF-8 cannot
    # carry a surrogate, so only a \\uD800-\\uDFFF escape can; fewer brackets than the
    # depth limit cannot nest that deep. (A valid escaped pair is decoded to one character.)
    scrub = _SURROGATE_ESCAPE.search(body) is not None
    if scrub or body.count(b"[") + body.count(b"{") > MAX_DEPTH:
        data = _sanitize(data, scrub, 0)
    return data


def _sanitize(value: Any, scrub: bool, depth: int) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value) if scrub else value
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            return DEPTH_MARKER
        return {
            (_SURROGATE.sub("\ufffd", k) if scrub else k): _sanitize(v, scrub, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list):
        if depth >= MAX_DEPTH:
            return DEPTH_MARKER
        return [_sanitize(v, scrub, depth + 1) for v in value]
    return value
