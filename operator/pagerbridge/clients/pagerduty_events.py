"""PagerDuty Events API v2: ``POST {eventsUrl}/v2/enqueue`` (trigger / acknowledge / resolve).

The routing key travels only in the request body; errors name the path and status, never
the key (see :mod:`pagerbridge.clients.errors` for what each failure means).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from pagerbridge.clients._http import send


@dataclass(frozen=True)
class EnqueueResult:
    status: str
    dedup_key: str | None
    message: str | None


class PagerDutyEventsClient:
    def __init__(self, http: httpx.AsyncClient, events_url: str) -> None:
        self._http = http
        self._url = events_url.rstrip("/") + "/v2/enqueue"

    async def enqueue(self, event: dict[str, Any]) -> EnqueueResult:
        """Send one event (``routing_key`` included); 202 → :class:`EnqueueResult`."""
        response = await send("POST /v2/enqueue", lambda: self._http.post(self._url, json=event))
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
