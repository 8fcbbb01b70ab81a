"""Webhooks v3: subscriptions and signed, retried, ordered delivery.

As PagerDuty documents it (webhooks "Behavior" page): each webhook is one JSON event
envelope, signed with ``X-PagerDuty-Signature: v1=<hex HMAC-SHA256(secret, body)>`` and
identified by ``X-Webhook-Id`` (the same on every attempt, so receivers deduplicate).
Timeouts, connection errors, 429 and 5xx are retried with exponential backoff, up to 5
attempts in all; other 4xx drop the webhook. Webhooks of one subscription are delivered
in order: while one is being retried the next ones wait.

Delivery runs in one thread per subscription with a synchronous ``httpx`` client, so it
works the same whether the simulator is driven over HTTP or from test code, and never
blocks the server's event loop. Backoff delays are seconds here, not PagerDuty's
minutes: tests cannot wait 20 minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from pagerbridge_devkit.sandbox.pagerduty.state import Change, now_iso, random_id

log = logging.getLogger(__name__)

#: Incident event types this simulator emits (PagerDuty's v3 incident types but
#: ``incident.responder.replied``).
EVENT_TYPES = (
    "incident.triggered",
    "incident.acknowledged",
    "incident.unacknowledged",
    "incident.resolved",
    "incident.reopened",
    "incident.annotated",
    "incident.reassigned",
    "incident.escalated",
    "incident.delegated",
    "incident.priority_updated",
    "incident.status_update_published",
    "incident.responder.added",
)


def sign(secret: str, body: bytes) -> str:
    """The ``X-PagerDuty-Signature`` value of a body."""
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class Subscription:
    id: str
    url: str
    secret: str
    events: list[str]
    filter_type: str  # account_reference | service_reference | team_reference
    filter_id: str | None
    description: str = ""
    active: bool = True
    custom_headers: list[dict[str, str]] = field(default_factory=list)
    delivery_method_id: str = field(default_factory=random_id)

    def matches(self, event_type: str, service_id: str, team_id: str | None = None) -> bool:
        if not self.active or event_type not in self.events:
            return False
        if self.filter_type == "account_reference":
            return True
        if self.filter_type == "team_reference":
            return team_id is not None and self.filter_id == team_id
        return self.filter_type == "service_reference" and self.filter_id == service_id

    def to_json(self, *, with_secret: bool) -> dict[str, Any]:
        """The REST ``WebhookSubscription``; the secret only in the create answer."""
        headers = [
            {"name": h["name"], "value": h["value"] if with_secret else "-- redacted --"}
            for h in self.custom_headers
        ]
        filter_: dict[str, Any] = {"type": self.filter_type}
        if self.filter_id is not None:
            filter_["id"] = self.filter_id
        return {
            "id": self.id,
            "type": "webhook_subscription",
            "active": self.active,
            "delivery_method": {
                "id": self.delivery_method_id,
                "secret": self.secret if with_secret else None,
                "temporarily_disabled": False,
                "type": "http_delivery_method",
                "url": self.url,
                "custom_headers": headers,
            },
            "description": self.description,
            "events": list(self.events),
            "filter": filter_,
        }

    def __repr__(self) -> str:  # the secret never appears in logs or test output
        return f"Subscription(id={self.id!r}, url={self.url!r}, events={self.events!r})"


@dataclass(frozen=True)
class DeliveryAttempt:
    """One POST of one webhook (``status`` None when it failed without an answer)."""

    subscription_id: str
    webhook_id: str
    event_type: str
    attempt: int
    status: int | None
    error: str | None
    at: float

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class _Webhook:
    webhook_id: str
    event_type: str
    body: bytes


def envelope(change: Change, data: dict[str, Any]) -> dict[str, Any]:
    """The v3 payload: one ``event`` object."""
    return {
        "event": {
            "id": uuid.uuid4().hex,
            "event_type": change.event_type,
            "resource_type": "incident",
            "occurred_at": now_iso(ms=True),
            "agent": change.agent,
            "client": {"name": "PagerBridge sandbox"},
            "data": data,
        }
    }


class WebhookDispatcher:
    """Owns the subscriptions and delivers webhooks to them."""

    def __init__(
        self,
        *,
        retry_delays: Sequence[float] = (0.2, 0.4, 0.8, 1.6),
        timeout: float = 5.0,
    ) -> None:
        self.retry_delays = tuple(retry_delays)  # 4 retries: 5 attempts in all, as PagerDuty
        self.timeout = timeout
        self.deliveries: list[DeliveryAttempt] = []
        self._subscriptions: dict[str, Subscription] = {}
        self._queues: dict[str, queue.Queue[_Webhook | None]] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        self._closed = False
        self._stop = threading.Event()

    # -- subscriptions -----------------------------------------------------------------

    def create(
        self,
        url: str,
        events: Sequence[str],
        *,
        filter_type: str = "account_reference",
        filter_id: str | None = None,
        description: str = "",
        custom_headers: Sequence[dict[str, str]] = (),
    ) -> Subscription:
        subscription = Subscription(
            id=random_id(),
            url=url,
            secret=secrets.token_urlsafe(48),
            events=list(dict.fromkeys(events)),
            filter_type=filter_type,
            filter_id=filter_id,
            description=description,
            custom_headers=[dict(h) for h in custom_headers],
        )
        with self._lock:
            self._subscriptions[subscription.id] = subscription
        return subscription

    def update(
        self,
        subscription_id: str,
        *,
        description: str | None = None,
        events: Sequence[str] | None = None,
        active: bool | None = None,
        filter_type: str | None = None,
        filter_id: str | None = None,
    ) -> Subscription:
        """Like ``PUT /webhook_subscriptions/{id}``: fields given replace, others stay."""
        with self._lock:
            subscription = self._subscriptions[subscription_id]
            if description is not None:
                subscription.description = description
            if events is not None:
                subscription.events = list(dict.fromkeys(events))
            if active is not None:
                subscription.active = active
            if filter_type is not None:
                subscription.filter_type = filter_type
                subscription.filter_id = filter_id
            return subscription

    def get(self, subscription_id: str) -> Subscription | None:
        with self._lock:
            return self._subscriptions.get(subscription_id)

    def list(self) -> list[Subscription]:
        with self._lock:
            return list(self._subscriptions.values())

    def delete(self, subscription_id: str) -> bool:
        with self._lock:
            subscription = self._subscriptions.pop(subscription_id, None)
            q = self._queues.pop(subscription_id, None)
            self._threads.pop(subscription_id, None)
        if q is not None:
            q.put(None)
        return subscription is not None

    # -- delivery ----------------------------------------------------------------------

    def publish(
        self,
        change: Change,
        service_id: str,
        data: Callable[[], dict[str, Any]],
        team_id: str | None = None,
    ) -> None:
        """Queue one webhook per matching subscription (never blocks on the network).

        ``data`` renders the event's ``data`` object, only if some subscription wants it.
        """
        if not self._subscriptions:  # the common case under load: nobody listens
            return
        body: bytes | None = None
        with self._lock:
            if self._closed:
                return
            targets = [
                s
                for s in self._subscriptions.values()
                if s.matches(change.event_type, service_id, team_id)
            ]
            for subscription in targets:
                body = body or json.dumps(envelope(change, data())).encode()
                self._pending += 1
                self._queue_for(subscription).put(
                    _Webhook(str(uuid.uuid4()), change.event_type, body)
                )

    def _queue_for(self, subscription: Subscription) -> queue.Queue[_Webhook | None]:
        q = self._queues.get(subscription.id)
        if q is None:
            q = self._queues[subscription.id] = queue.Queue()
            thread = threading.Thread(
                target=self._worker,
                args=(subscription, q),
                name=f"pd-webhooks-{subscription.id}",
                daemon=True,
            )
            self._threads[subscription.id] = thread
            thread.start()
        return q

    def _worker(self, subscription: Subscription, q: queue.Queue[_Webhook | None]) -> None:
        with httpx.Client(timeout=self.timeout) as client:
            while (webhook := q.get()) is not None:
                try:
                    self._deliver(client, subscription, webhook)
                finally:
                    with self._lock:
                        self._pending -= 1
                        self._idle.notify_all()
        # Anything left behind a stop sentinel is abandoned: count it as done.
        with self._lock:
            while not q.empty():
                if q.get_nowait() is not None:
                    self._pending -= 1
            self._idle.notify_all()

    def _deliver(self, client: httpx.Client, sub: Subscription, webhook: _Webhook) -> None:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "PagerDuty-Webhook/V3.0",
            "X-PagerDuty-Signature": sign(sub.secret, webhook.body),
            "X-Webhook-Id": webhook.webhook_id,
            "X-Webhook-Subscription": sub.id,
        }
        headers.update({h["name"]: h["value"] for h in sub.custom_headers})
        for attempt, delay in enumerate((*self.retry_delays, None), start=1):
            status: int | None = None
            error: str | None = None
            try:
                status = client.post(sub.url, content=webhook.body, headers=headers).status_code
            except httpx.HTTPError as exc:
                error = type(exc).__name__
            self._record(
                DeliveryAttempt(
                    sub.id,
                    webhook.webhook_id,
                    webhook.event_type,
                    attempt,
                    status,
                    error,
                    time.time(),
                )
            )
            retryable = status is None or status == 429 or status >= 500
            if not retryable:
                if status is not None and status >= 300:
                    log.warning(
                        "webhook %s to subscription %s dropped: HTTP %s",
                        webhook.event_type,
                        sub.id,
                        status,
                    )
                return
            if delay is None or self._stop.is_set() or self.get(sub.id) is None:
                log.warning(
                    "webhook %s to subscription %s given up after %d attempts",
                    webhook.event_type,
                    sub.id,
                    attempt,
                )
                return
            if self._stop.wait(delay * (1 + secrets.randbelow(100) / 1000)):
                return  # closed while backing off

    def _record(self, attempt: DeliveryAttempt) -> None:
        with self._lock:
            self.deliveries.append(attempt)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """True once every queued webhook was delivered or given up on."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._pending > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
            return True

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._lock:
            self._closed = True
            queues = list(self._queues.values())
            threads = list(self._threads.values())
        for q in queues:
            q.put(None)
        for thread in threads:
            thread.join(timeout)
