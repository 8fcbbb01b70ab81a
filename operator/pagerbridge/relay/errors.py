"""The relay's error vocabulary: every way a request or a delivery can fail, and what follows.

Inbound (answered to the caller, always a JSON body ``{"error": code, "message": text}``)::

    InboundError                   base; ``status`` + ``code``
    ├── SenderUnauthorized 401     missing/bad bearer token, missing/bad PagerDuty signature
    ├── NotConfigured      404     the endpoint's feature is off (no webhookSecretFile)
    ├── PayloadTooLarge    413     body over 512 KB (PagerDuty's own event size limit)
    ├── UnsupportedMedia   415     Content-Type is not JSON
    ├── MalformedJson      400     body is not JSON / not UTF-8
    ├── InvalidIncident    422     JSON, but not an incident (not an object, no ``id``), or an
    │                              id/key that cannot be one (control characters, surrogates)
    └── ClientDisconnected 400     the client left mid-body (nobody reads the answer; logged
                                   at info, counted)
    (outbox unwritable     503     nothing was stored; the sender must retry)

Outbound (a delivery attempt from the outbox; classes of :mod:`pagerbridge.clients.errors`)::

    TransientError (429, 408, 5xx, timeout, connection)  → retry, backoff + jitter;
                                                           429 waits Retry-After/ratelimit-reset
    Unauthorized (401/403)                               → retried slowly (60 s), metric,
                                                           log, /readyz detail
    Conflict (409)                                       → BigPanda "already resolved": success
    Rejected (400/404/413/422)                           → permanent: dead-letter table, metric,
                                                           log; a 400 for an *override* routing
                                                           key is re-sent with the default key
    NotReady (relay's own)                               → the PagerDuty incident for a note is
                                                           not there yet: retry like transient
    delivery.WaitForToken                                → a rate-limit token is needed that was
                                                           not reserved: leave the slot, wait,
                                                           try again (not an attempt)
    unexpected exception (a bug, unforeseen input)       → retried a few times, then dead-lettered
                                                           as poison; every job has a max age
    OutboxClosed (store cannot commit)                   → not the job's fault: never an attempt,
                                                           never re-sends; retried with backoff
"""

from __future__ import annotations

from pagerbridge.clients.errors import RetryClass, TransientError


class InboundError(Exception):
    """A request the relay refuses; ``status`` and ``code`` go into the JSON answer."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SenderUnauthorized(InboundError):
    """The sender (BigPanda, PagerDuty) did not prove who it is: bad token or signature."""

    status = 401
    code = "unauthorized"


class NotConfigured(InboundError):
    status = 404
    code = "not_configured"


class PayloadTooLarge(InboundError):
    status = 413
    code = "payload_too_large"


class UnsupportedMedia(InboundError):
    status = 415
    code = "unsupported_media_type"


class MalformedJson(InboundError):
    status = 400
    code = "malformed_json"


class InvalidIncident(InboundError):
    status = 422
    code = "invalid_incident"


class ClientDisconnected(InboundError):
    status = 400
    code = "client_disconnected"


class NotReady(TransientError):
    """The delivery depends on something that does not exist yet (e.g. the PagerDuty
    incident a note belongs to); retried like a transient failure, a bounded number of
    times (:data:`pagerbridge.relay.outbound.retry.MAX_NOT_READY_ATTEMPTS`)."""

    retry = RetryClass.NOT_YET
