"""Every way a call to PagerDuty or BigPanda can fail, and what the caller does about it.

::

    ClientError                      base of everything raised by pagerbridge.clients
    ├── TransientError               retry with backoff + jitter
    │   ├── RateLimited              429: wait ``retry_after`` (or backoff) and retry
    │   ├── ServerError              5xx, 408: retry
    │   └── ConnectionFailed         timeout, refused, reset, DNS: retry
    └── PermanentError               do not retry the same request
        ├── Rejected                 400/404/413/422: the request itself is wrong; record it,
        │                            surface it in metrics and logs, move on
        ├── Conflict                 409: the target is already in that state (BigPanda:
        │                            already resolved); callers usually treat it as success
        ├── Unauthorized             401/403: credentials are wrong; surfaced (metric, log,
        │                            readiness, condition ``InvalidKey`` /
        │                            ``BigPandaUnauthorized``) and retried slowly, since a
        │                            rotated Secret fixes it without anyone touching the
        │                            event
        ├── EgressRefused            the URL or the address it resolves to is outside the
        │                            admin's egress policy (:mod:`.egress`): nothing was
        │                            sent; condition ``URLNotAllowed``
        └── MalformedResponse        a 2xx answer we cannot use: not the JSON shape the API
                                     documents, larger than the size cap, or a listing
                                     longer than the page/item caps; condition, slow retry

A call that has no complete answer within its overall deadline (``CallLimits.deadline``:
connect, send and every read together, so a server dribbling one byte at a time cannot
hold a worker) is a ``ConnectionFailed``.

Messages never contain a credential: only method, URL path, status and the service's own
error text.
"""

from __future__ import annotations


class ClientError(Exception):
    """A PagerDuty or BigPanda call failed."""

    def __init__(self, message: str, *, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body[:2000]


class TransientError(ClientError):
    """Worth retrying later."""


class RateLimited(TransientError):
    def __init__(
        self,
        message: str,
        *,
        status: int | None = 429,
        body: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, body=body)
        self.retry_after = retry_after


class ServerError(TransientError):
    """5xx or 408."""


class ConnectionFailed(TransientError):
    """No HTTP answer at all: timeout, refused or reset connection."""


class PermanentError(ClientError):
    """Retrying the same request cannot succeed."""


class Rejected(PermanentError):
    """The service refused the request as invalid (400, 404, 413, 422)."""


class Conflict(PermanentError):
    """409: the target already is in the requested state."""


class Unauthorized(PermanentError):
    """401/403: bad or revoked credentials."""


class EgressRefused(PermanentError):
    """The egress policy refused the URL or its address; no request was sent."""


class MalformedResponse(PermanentError):
    """A success answer that is unusable: wrong shape, too large, or an endless listing."""
