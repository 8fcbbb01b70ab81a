"""PagerDuty REST API v2 ``/webhook_subscriptions``: the Webhooks v3 subscription that sends
incident changes of one service back to the relay.

PagerDuty returns the signing secret once, in the create response; the caller stores it.
Failures are :mod:`pagerbridge.clients.errors` classes (via ``_http.send``); the API key is
sent as ``Authorization: Token token=...`` and never appears in a message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict

from pagerbridge.clients._http import DEFAULT_TIMEOUT, send
from pagerbridge.clients.errors import Rejected

SUBSCRIBED_EVENTS: tuple[str, ...] = (
    "incident.resolved",
    "incident.annotated",
    "incident.acknowledged",
)


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class DeliveryMethod(_Loose):
    type: str = "http_delivery_method"
    url: str | None = None
    secret: str | None = None


class SubscriptionFilter(_Loose):
    type: str
    id: str | None = None


class WebhookSubscription(_Loose):
    id: str
    delivery_method: DeliveryMethod
    events: list[str] = []
    filter: SubscriptionFilter | None = None
    active: bool = True
    description: str | None = None


class PagerDutySubscriptions:
    """``async with PagerDutySubscriptions(api_url, token) as client: ...``."""

    def __init__(
        self, api_url: str, api_token: str, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=api_url.rstrip("/"),
            timeout=DEFAULT_TIMEOUT,
            transport=transport,
            headers={
                "Authorization": f"Token token={api_token}",
                "Accept": "application/vnd.pagerduty+json;version=2",
                "Content-Type": "application/json",
            },
        )

    async def __aenter__(self) -> PagerDutySubscriptions:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._http.aclose()

    async def create(self, url: str, service_id: str, description: str) -> WebhookSubscription:
        body: dict[str, Any] = {
            "webhook_subscription": {
                "type": "webhook_subscription",
                "delivery_method": {"type": "http_delivery_method", "url": url},
                "description": description,
                "events": list(SUBSCRIBED_EVENTS),
                "filter": {"type": "service_reference", "id": service_id},
                "active": True,
            }
        }
        response = await send(
            "POST /webhook_subscriptions",
            lambda: self._http.post("/webhook_subscriptions", json=body),
        )
        return WebhookSubscription.model_validate(response.json()["webhook_subscription"])

    async def get(self, subscription_id: str) -> WebhookSubscription | None:
        """The subscription, or None when PagerDuty no longer has it."""
        try:
            response = await send(
                "GET /webhook_subscriptions/{id}",
                lambda: self._http.get(f"/webhook_subscriptions/{subscription_id}"),
            )
        except Rejected as exc:
            if exc.status == 404:
                return None
            raise
        return WebhookSubscription.model_validate(response.json()["webhook_subscription"])

    async def list(self) -> list[WebhookSubscription]:
        found: list[WebhookSubscription] = []
        offset = 0
        while True:
            response = await send("GET /webhook_subscriptions", self._page_request(offset))
            page = response.json()
            items = page.get("webhook_subscriptions", [])
            found.extend(WebhookSubscription.model_validate(item) for item in items)
            if not page.get("more") or not items:
                return found
            offset += len(items)

    def _page_request(self, offset: int) -> Callable[[], Awaitable[httpx.Response]]:
        params = {"limit": "100", "offset": str(offset)}
        return lambda: self._http.get("/webhook_subscriptions", params=params)

    async def delete(self, subscription_id: str) -> bool:
        """Delete; False when it was already gone."""
        try:
            await send(
                "DELETE /webhook_subscriptions/{id}",
                lambda: self._http.delete(f"/webhook_subscriptions/{subscription_id}"),
            )
        except Rejected as exc:
            if exc.status == 404:
                return False
            raise
        return True
