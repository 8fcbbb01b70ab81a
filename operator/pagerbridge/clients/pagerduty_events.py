"""PagerDuty Events API v2: ``POST {eventsUrl}/v2/enqueue`` (trigger / acknowledge / resolve).

The routing key travels only in the request body; errors name the path and status, never
the key (see :mod:`pagerbridge.clients.errors` for what each failure means).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from pagerbridge.clients._http import CallLimits, call
from pagerbridge.clients.errors import MalformedResponse


@dataclass(frozen=True)
class EnqueueResult:
    status: str
    dedup_key: str | None
    message: str | None


class PagerDutyEventsClient:
    def __init__(
        self, http: httpx.AsyncClient, events_url: str, limits: CallLimits | None = None
    ) -> None:
        self._http = http
        self._url = events_url.rstrip("/") + "/v2/enqueue"
        self._limits = limits or CallLimits()

    async def enqueue(self, event: dict[str, Any]) -> EnqueueResult:
        """Send one event (``routing_key`` included); 202 → :class:`EnqueueResult`.

        The status is the answer: a 2xx whose body is unusable (compressed although identity
        was asked for, larger than the cap, or still dripping after a grace period: see
        ``status_only``) still means the event was accepted.
        """
        what = "POST /v2/enqueue"
        try:
            response = await call(
                self._http, what, "POST", self._url, self._limits, json_body=event, status_only=True
            )
        except MalformedResponse as exc:
            if exc.status is None or not 200 <= exc.status < 300:
                raise
            return EnqueueResult(status="success", dedup_key=None, message=str(exc))
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        dedup = body.get("dedup_key")
        return EnqueueResult(
            status=str(body.get("status", "success")),
            dedup_key=dedup if isinstance(dedup, str) else None,
            message=body.get("message") if isinstance(body.get("message"), str) else None,
        )
