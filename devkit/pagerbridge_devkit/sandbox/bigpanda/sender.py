"""BigPanda's outbound webhook sender: at-least-once, retried, in order per incident.

Each delivery belongs to a lane (target, incident). A lane sends its deliveries one at
a time, oldest first, so one incident's shares reach a target in the order the changes
happened; a failing lane waits with exponential backoff (jittered) while the other
lanes carry on. Retried: connection errors, timeouts, 408, 429 and 5xx. Other answers
are final. After ``max_attempts`` the delivery is given up (BigPanda's real policy is
not public; "at-least-once at best").

Runs on a few worker threads with a synchronous httpx client each, independent of the
simulator's event loop, so a slow receiver never blocks the simulated API.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import httpx

from pagerbridge.clients.backoff import backoff as exponential_backoff

RETRYABLE_STATUSES = frozenset({408, 429})


@dataclass
class Delivery:
    """One HTTP request to send (body already rendered: a snapshot of the change)."""

    target: str
    incident_id: str
    trigger: str
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    attempts: int = 0


@dataclass(frozen=True)
class DeliveryAttempt:
    """One try, as inspection sees it (no header values: they may hold credentials)."""

    target: str
    incident_id: str
    trigger: str
    attempt: int
    method: str
    url: str
    status: int | None
    error: str | None
    final: bool  # no more tries for this delivery (delivered, refused or given up)
    at: float

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def to_dict(self) -> dict[str, object]:
        return {
            "target": self.target,
            "incident_id": self.incident_id,
            "trigger": self.trigger,
            "attempt": self.attempt,
            "method": self.method,
            "url": self.url,
            "status": self.status,
            "error": self.error,
            "final": self.final,
            "at": self.at,
        }


@dataclass
class _Lane:
    queue: deque[Delivery] = field(default_factory=deque)
    not_before: float = 0.0
    busy: bool = False


@dataclass
class RetryPolicy:
    max_attempts: int = 8
    backoff: float = 0.2  # first retry after about this many seconds, doubling
    max_backoff: float = 5.0
    timeout: float = 5.0

    def delay(self, attempt: int) -> float:
        return exponential_backoff(attempt - 1, base=self.backoff, cap=self.max_backoff)


class WebhookSender:
    """Thread pool delivering :class:`Delivery` objects lane by lane."""

    def __init__(
        self, policy: RetryPolicy | None = None, workers: int = 4, idle_exit: float = 2.0
    ) -> None:
        self.policy = policy or RetryPolicy()
        self.idle_exit = idle_exit
        self._workers = workers
        self._cond = threading.Condition()
        self._lanes: dict[tuple[str, str], _Lane] = {}
        self._attempts: list[DeliveryAttempt] = []
        self._threads: list[threading.Thread] = []
        self._closed = False

    # -- producer side -------------------------------------------------------------------

    def enqueue(self, delivery: Delivery) -> None:
        with self._cond:
            if self._closed:
                return
            self._lanes.setdefault((delivery.target, delivery.incident_id), _Lane()).queue.append(
                delivery
            )
            self._start_workers()
            self._cond.notify_all()

    # -- inspection ----------------------------------------------------------------------

    @property
    def attempts(self) -> list[DeliveryAttempt]:
        with self._cond:
            return list(self._attempts)

    def pending(self) -> int:
        with self._cond:
            return sum(len(lane.queue) for lane in self._lanes.values())

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """True once nothing is queued or in flight; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while any(lane.queue or lane.busy for lane in self._lanes.values()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def close(self, timeout: float = 5.0) -> None:
        """Stop the workers; queued deliveries are abandoned."""
        with self._cond:
            self._closed = True
            self._lanes.clear()
            self._cond.notify_all()
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)

    # -- workers -------------------------------------------------------------------------

    def _start_workers(self) -> None:
        """Under the lock: top the pool up (idle workers exit, so nothing lingers)."""
        while len(self._threads) < self._workers:
            thread = threading.Thread(target=self._work, name="bigpanda-webhooks", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _next(self) -> tuple[tuple[str, str], Delivery] | None:
        """Under the lock: wait for a lane whose head may be sent now.

        None tells the worker to exit: closed, or nothing at all to do for a while.
        """
        idle_since = time.monotonic()
        while not self._closed:
            now = time.monotonic()
            ready: tuple[str, str] | None = None
            wake_at: float | None = None
            for key, lane in self._lanes.items():
                if lane.busy or not lane.queue:
                    continue
                if lane.not_before <= now:
                    if ready is None or lane.not_before < self._lanes[ready].not_before:
                        ready = key
                elif wake_at is None or lane.not_before < wake_at:
                    wake_at = lane.not_before
            if ready is not None:
                lane = self._lanes[ready]
                lane.busy = True
                return ready, lane.queue[0]
            if not self._lanes and now - idle_since >= self.idle_exit:
                return None
            if self._lanes:
                idle_since = now
            timeout = self.idle_exit if wake_at is None else max(0.0, wake_at - now)
            self._cond.wait(timeout)
        return None

    def _work(self) -> None:
        with httpx.Client(timeout=self.policy.timeout) as client:
            while True:
                with self._cond:
                    item = self._next()
                    if item is None:
                        self._threads.remove(threading.current_thread())
                        return
                key, delivery = item
                delivery.attempts += 1
                status, error = self._send(client, delivery)
                retry = (status is None or status in RETRYABLE_STATUSES or status >= 500) and (
                    delivery.attempts < self.policy.max_attempts
                )
                with self._cond:
                    self._attempts.append(
                        DeliveryAttempt(
                            target=delivery.target,
                            incident_id=delivery.incident_id,
                            trigger=delivery.trigger,
                            attempt=delivery.attempts,
                            method=delivery.method,
                            url=delivery.url,
                            status=status,
                            error=error,
                            final=not retry,
                            at=time.time(),
                        )
                    )
                    lane = self._lanes.get(key)
                    if lane is not None:
                        lane.busy = False
                        if retry:
                            lane.not_before = time.monotonic() + self.policy.delay(
                                delivery.attempts
                            )
                        else:
                            lane.queue.popleft()
                            lane.not_before = 0.0
                            if not lane.queue:
                                del self._lanes[key]
                    self._cond.notify_all()

    @staticmethod
    def _send(client: httpx.Client, delivery: Delivery) -> tuple[int | None, str | None]:
        try:
            response = client.request(
                delivery.method, delivery.url, headers=delivery.headers, content=delivery.body
            )
        except httpx.TimeoutException as exc:
            return None, f"timeout ({type(exc).__name__})"
        except httpx.HTTPError as exc:
            return None, f"connection error ({type(exc).__name__})"
        return response.status_code, None
