"""PagerDuty REST API v2 ``/webhook_subscriptions``: the Webhooks v3 subscription that sends
incident changes of one service back to the relay.

PagerDuty returns the signing secret once, in the create response; the caller stores it.
Failures are :mod:`pagerbridge.clients.errors` classes (via ``_http.call``); the API key is
sent as ``Authorization: Token token=...`` and never appears in a message.

The base URL comes from a tenant's CR, so every call goes through the egress policy's
guarded transport and the :class:`~pagerbridge.clients._http.CallLimits`: each answer is
parsed into the models below (a missing key is a ``MalformedResponse``, not a crash), and
the listing stops with an error past the page and item caps however long ``more: true``
goes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from pagerbridge.clients._http import call, parse
from pagerbridge.clients._pagerduty_rest import PagerDutyRestSession
from pagerbridge.clients.errors import MalformedResponse, Rejected

PAGE_SIZE = 100

#: What a subscription created without an explicit list delivers (the operator passes the
#: list its integration's ``sync`` needs, see ``controller.external.subscription.events``).
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


class _One(_Loose):
    webhook_subscription: WebhookSubscription


class _Page(_Loose):
    webhook_subscriptions: list[WebhookSubscription]
    more: bool = False


class PagerDutySubscriptions(PagerDutyRestSession):
    """``async with PagerDutySubscriptions(api_url, token, policy=...) as client: ...``."""

    async def create(
        self,
        url: str,
        service_id: str | None,
        description: str,
        *,
        filter_type: str = "service_reference",
        events: Sequence[str] = SUBSCRIBED_EVENTS,
    ) -> WebhookSubscription:
        """Filtered on ``service_id`` (``service_reference``), a team (``team_reference``,
        ``service_id`` is then the team's id) or the account (``account_reference``)."""
        filter_: dict[str, Any] = {"type": filter_type}
        if service_id is not None and filter_type != "account_reference":
            filter_["id"] = service_id
        body: dict[str, Any] = {
            "webhook_subscription": {
                "type": "webhook_subscription",
                "delivery_method": {"type": "http_delivery_method", "url": url},
                "description": description,
                "events": list(events),
                "filter": filter_,
                "active": True,
            }
        }
        what = "POST /webhook_subscriptions"
        response = await call(
            self._http, what, "POST", "/webhook_subscriptions", self._limits, json_body=body
        )
        return parse(_One, response, what).webhook_subscription

    async def update_description(self, subscription_id: str, description: str) -> None:
        """``PUT /webhook_subscriptions/{id}`` with only a new ``description``."""
        what = "PUT /webhook_subscriptions/{id}"
        body = {"webhook_subscription": {"description": description}}
        response = await call(
            self._http,
            what,
            "PUT",
            f"/webhook_subscriptions/{subscription_id}",
            self._limits,
            json_body=body,
        )
        parse(_One, response, what)

    async def update(
        self,
        subscription_id: str,
        *,
        active: bool,
        events: Sequence[str],
        filter_type: str,
        filter_id: str | None,
        description: str | None = None,
    ) -> WebhookSubscription:
        """``PUT /webhook_subscriptions/{id}``: active, events and filter set again, and the
        description when given (the URL cannot be changed by PUT: a moved URL means a new
        subscription)."""
        what = "PUT /webhook_subscriptions/{id}"
        filter_: dict[str, Any] = {"type": filter_type}
        if filter_id is not None:
            filter_["id"] = filter_id
        fields: dict[str, Any] = {"active": active, "events": list(events), "filter": filter_}
        if description is not None:
            fields["description"] = description
        body = {"webhook_subscription": fields}
        response = await call(
            self._http,
            what,
            "PUT",
            f"/webhook_subscriptions/{subscription_id}",
            self._limits,
            json_body=body,
        )
        return parse(_One, response, what).webhook_subscription

    async def get(self, subscription_id: str) -> WebhookSubscription | None:
        """The subscription, or None when PagerDuty no longer has it."""
        what = "GET /webhook_subscriptions/{id}"
        try:
            response = await call(
                self._http, what, "GET", f"/webhook_subscriptions/{subscription_id}", self._limits
            )
        except Rejected as exc:
            if exc.status == 404:
                return None
            raise
        return parse(_One, response, what).webhook_subscription

    async def list(self) -> list[WebhookSubscription]:
        """Every subscription, page by page, within ``max_pages`` and ``max_items``."""
        what = "GET /webhook_subscriptions"
        found: list[WebhookSubscription] = []
        for _ in range(self._limits.max_pages):
            params = {"limit": str(PAGE_SIZE), "offset": str(len(found))}
            response = await call(
                self._http, what, "GET", "/webhook_subscriptions", self._limits, params=params
            )
            page = parse(_Page, response, what)
            found.extend(page.webhook_subscriptions)
            if len(found) > self._limits.max_items:
                raise MalformedResponse(f"{what}: more than {self._limits.max_items} subscriptions")
            if not page.more or not page.webhook_subscriptions:
                return found
        raise MalformedResponse(f"{what}: still more after {self._limits.max_pages} pages")

    async def delete(self, subscription_id: str) -> bool:
        """Delete; False when it was already gone."""
        try:
            await call(
                self._http,
                "DELETE /webhook_subscriptions/{id}",
                "DELETE",
                f"/webhook_subscriptions/{subscription_id}",
                self._limits,
            )
        except Rejected as exc:
            if exc.status == 404:
                return False
            raise
        return True
