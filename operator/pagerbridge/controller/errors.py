"""Every way reconciling an integration can fail, and what the operator does about it.

::

    ReconcileError                  base; carries a condition ``reason`` and a message
    ├── WaitingForInput             the user must act; no retry timer (a watch event on
    │   │                           the missing object re-triggers the reconcile)
    │   ├── SecretNotFound          a referenced Secret or key is missing       -> Ready False
    │   ├── InvalidKey              a routing key that cannot be a PagerDuty key -> Ready False
    │   ├── InvalidSpec             the spec does not parse (CRD bypassed)       -> Ready False
    │   ├── DatabaseNotConfigured   storage PostgreSQL without a database Secret -> Ready False
    │   └── NameConflict            a child or external object of our name is not ours
    │                               (left untouched; see :mod:`.ownership`)  -> Ready False;
    │                               re-checked every minute (no watch event tells us)
    └── RetryLater                  transient; retried with backoff (kopf TemporaryError
        │                           in kopf handlers, the reconcile queue's backoff elsewhere)
        ├── SubscriptionFailed      PagerDuty REST refused or unreachable        -> Ready False
        ├── RoutingKeyFailed        the same, for the managed routing key         -> Ready False
        └── KubernetesUnavailable   the API server failed a request             (no condition)

Client failures (:mod:`pagerbridge.clients.errors`) map as follows: ``TransientError``
(429, 5xx, timeouts) -> retry with backoff; ``Unauthorized`` -> ``InvalidKey`` on the
condition but still retried slowly (a rotated Secret fixes it); other ``PermanentError``
-> condition with the service's status code, retried slowly (the user may fix PagerDuty);
``EgressRefused`` -> reason ``URLNotAllowed`` whose message never tells whether the host
answers (the same class refuses a spec's own URLs before anything is called or compiled:
it makes the integration wait like a ``WaitingForInput``, Ready False);
``MalformedResponse`` -> reason ``UpstreamMalformed``, retried slowly.

Messages name Secrets and keys, never their values.
"""

from __future__ import annotations

from typing import TypeVar

from pagerbridge.api import ConditionReason as Reason
from pagerbridge.clients.errors import (
    ClientError,
    EgressRefused,
    MalformedResponse,
    TransientError,
    Unauthorized,
)


class ReconcileError(Exception):
    reason: Reason = Reason.RECONCILE_FAILED
    retry_after: float | None = None  # seconds; None: wait for a watch event

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class WaitingForInput(ReconcileError):
    """The user must change something; a watch event re-triggers the reconcile."""


class SecretNotFound(WaitingForInput):
    reason = Reason.SECRET_NOT_FOUND


class InvalidKey(WaitingForInput):
    reason = Reason.INVALID_KEY


class InvalidSpec(WaitingForInput):
    reason = Reason.INVALID_SPEC


class DatabaseNotConfigured(WaitingForInput):
    reason = Reason.DATABASE_NOT_CONFIGURED


class AccountRefused(WaitingForInput):
    """A shared account the integration names cannot serve it (see :mod:`.accounts`):
    the integration waits, and its relay in the account namespace is stopped."""


class AccountNotFound(AccountRefused):
    reason = Reason.ACCOUNT_NOT_FOUND


class AccountNotAllowed(AccountRefused):
    reason = Reason.ACCOUNT_NOT_ALLOWED


class AccountNotReady(AccountRefused):
    reason = Reason.ACCOUNT_NOT_READY


class AccountsDisabled(AccountRefused):
    reason = Reason.ACCOUNTS_DISABLED


class NameConflict(WaitingForInput):
    """An object by the name we need exists and is not ours: never taken over."""

    reason = Reason.NAME_CONFLICT
    retry_after = 60.0


class RetryLater(ReconcileError):
    retry_after = 10.0


class SubscriptionFailed(RetryLater):
    reason = Reason.SUBSCRIPTION_FAILED


class RoutingKeyFailed(RetryLater):
    reason = Reason.ROUTING_KEY_FAILED


class AdoptionTargetNotFound(RetryLater):
    """An ``adopt`` id that PagerDuty or BigPanda does not have (a typo, or deleted)."""

    reason = Reason.ADOPTION_TARGET_NOT_FOUND
    retry_after = 60.0


class KubernetesUnavailable(RetryLater):
    reason = Reason.KUBERNETES_UNAVAILABLE
    retry_after = 5.0


E = TypeVar("E", bound=RetryLater)


def subscription_failure(exc: ClientError) -> SubscriptionFailed:
    """Map a PagerDuty REST failure while managing the webhook subscription."""
    return _rest_failure(SubscriptionFailed, "PagerDuty webhook subscription", exc)


def routing_key_failure(exc: ClientError) -> RoutingKeyFailed:
    """Map a PagerDuty REST failure while managing the routing key's integration."""
    return _rest_failure(RoutingKeyFailed, "PagerDuty Events API v2 integration", exc)


def _rest_failure(cls: type[E], what: str, exc: ClientError) -> E:
    if isinstance(exc, EgressRefused | MalformedResponse):
        error = cls(f"{what}: {exc}")
        error.reason = (
            Reason.URL_NOT_ALLOWED if isinstance(exc, EgressRefused) else Reason.UPSTREAM_MALFORMED
        )
        error.retry_after = 300.0 if isinstance(exc, EgressRefused) else 60.0
        return error
    if isinstance(exc, Unauthorized):
        error = cls(
            f"PagerDuty refused the REST API key (HTTP {exc.status}); check pagerDuty.apiToken"
        )
        error.retry_after = 60.0
        return error
    error = cls(f"{what}: {exc}")
    error.retry_after = 15.0 if isinstance(exc, TransientError) else 60.0
    return error
