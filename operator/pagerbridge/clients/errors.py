"""Every way a call to PagerDuty or BigPanda can fail, and what the caller does about it.

Each class carries its :class:`RetryClass` as data (``retry``, the second column below): what a
delivery does next is read from the error, never from the order of ``except`` clauses
(the relay's :func:`pagerbridge.relay.outbound.retry.decide`). A subclass inherits its
parent's class unless it names its own; the table test
(tests/unit/relay/test_retry_decide.py) reads this tree and fails for a class it does not
name or names with another retry class.

::

    class                          retry class   what follows
    ClientError                    UNFORESEEN    base of everything raised by pagerbridge.clients
    ├── TransientError             BACKOFF       retry with backoff + jitter
    │   ├── RateLimited            SLOW_DOWN     429: wait ``retry_after`` (or backoff), retry
    │   ├── ServerError            BACKOFF       5xx, 408: retry
    │   └── ConnectionFailed       BACKOFF       timeout, refused, reset, DNS: retry
    └── PermanentError             NEVER         do not retry the same request
        ├── Rejected               NEVER         400/404/413/422: the request itself is
        │                                        wrong; record it, surface it in metrics
        │                                        and logs, move on
        ├── Conflict               DONE          409: the target is already in that state
        │                                        (BigPanda: already resolved); counts as
        │                                        done
        ├── Unauthorized           SLOWLY        401/403: credentials are wrong; surfaced
        │                                        (metric, log, readiness, condition
        │                                        ``InvalidKey`` / ``BigPandaUnauthorized``)
        │                                        and retried slowly, since a rotated Secret
        │                                        fixes it without anyone touching the event
        ├── EgressRefused          NEVER         the URL or the address it resolves to is
        │                                        outside the admin's egress policy
        │                                        (:mod:`.egress`): nothing was sent;
        │                                        condition ``URLNotAllowed``
        └── MalformedResponse      NEVER         a 2xx answer we cannot use: not the JSON
                                                 shape the API documents, larger than the
                                                 size cap, or a listing longer than the
                                                 page/item caps; the relay dead-letters the
                                                 delivery, the operator sets a condition
                                                 and reconciles again later

The relay adds ``NotReady`` (:mod:`pagerbridge.relay.errors`, a ``TransientError`` with
retry class ``NOT_YET``).

A call that has no complete answer within its overall deadline (``CallLimits.deadline``:
connect, send and every read together, so a server dribbling one byte at a time cannot
hold a worker) is a ``ConnectionFailed``.

Messages never contain a credential: only method, URL path, status and the service's own
error text.
"""

from __future__ import annotations

import enum
from typing import ClassVar

from pagerbridge.api.common import ConditionReason


class RetryClass(enum.Enum):
    """What follows a failed call, as data (see the tree above)."""

    #: retry with exponential backoff and jitter (no bound but the job's maximum age)
    BACKOFF = "backoff"
    #: the service asked to slow down: wait its ``Retry-After`` (else backoff), then retry
    SLOW_DOWN = "slow_down"
    #: credentials refused: retried at a slow fixed pace until a rotated Secret fixes it
    SLOWLY = "slowly"
    #: something the call depends on does not exist yet: backoff, a bounded number of
    #: attempts, then given up (the relay's ``NotReady``)
    NOT_YET = "not_yet"
    #: permanent: retrying the same request cannot succeed (the relay dead-letters it)
    NEVER = "never"
    #: the target already is in the requested state: counts as done
    DONE = "done"
    #: not classified (a bare ClientError, or any other exception: a bug, an unforeseen
    #: input): retried a few times, then given up as poison
    UNFORESEEN = "unforeseen"


class ClientError(Exception):
    """A PagerDuty or BigPanda call failed."""

    retry: ClassVar[RetryClass] = RetryClass.UNFORESEEN

    def __init__(self, message: str, *, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body[:2000]


class TransientError(ClientError):
    """Worth retrying later."""

    retry = RetryClass.BACKOFF


class RateLimited(TransientError):
    retry = RetryClass.SLOW_DOWN

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

    retry = RetryClass.NEVER


class Rejected(PermanentError):
    """The service refused the request as invalid (400, 404, 413, 422)."""


class Conflict(PermanentError):
    """409: the target already is in the requested state."""

    retry = RetryClass.DONE


class Unauthorized(PermanentError):
    """401/403: bad or revoked credentials."""

    retry = RetryClass.SLOWLY


class EgressRefused(PermanentError):
    """The egress policy refused the URL or its address; no request was sent.

    The one name of this refusal: raised by the policy check itself (:mod:`.egress`), by
    a client's call, and by the operator's check of a spec's URLs, whose status then
    carries ``reason`` (the message says which rule broke, never whether the host answers).
    """

    reason = ConditionReason.URL_NOT_ALLOWED

    @property
    def message(self) -> str:
        return str(self)


class MalformedResponse(PermanentError):
    """A success answer that is unusable: wrong shape, too large, or an endless listing."""
