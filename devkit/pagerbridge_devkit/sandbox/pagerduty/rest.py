"""REST API v2 subset: incidents, notes, webhook subscriptions and service integrations.

Every call needs ``Authorization: Token token=<API key>`` (401 otherwise) and counts
against the key's per-minute limit (429, with ``ratelimit-*`` headers on every answer).
Writes on incidents need a ``From`` header with the acting user's e-mail (400 otherwise);
any well-formed address is a user of the sandbox account. Errors use PagerDuty's
``{"error": {"message", "code", "errors"}}`` body and its documented error codes.

Where PagerDuty's document and its live behaviour could differ, the document wins, so
the contract tests hold: creating a note or a webhook subscription answers 200, as
declared. Setting an incident to the status it already has is a no-op answered 200
(the document declares no 400 for ``PUT /incidents/{id}``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pagerbridge_devkit.sandbox.pagerduty import openapi, render
from pagerbridge_devkit.sandbox.pagerduty.ratelimit import RateLimiter
from pagerbridge_devkit.sandbox.pagerduty.state import AccountState, Change
from pagerbridge_devkit.sandbox.pagerduty.webhooks import WebhookDispatcher

_TOKEN = re.compile(r"^Token token=(?P<token>\S+)$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_STATUSES = ("triggered", "acknowledged", "resolved")
# WebhookSubscriptionUpdate (REST v2 OpenAPI): what a PUT may change; never the URL.
_SUBSCRIPTION_UPDATE_FIELDS = frozenset(
    {"description", "events", "filter", "active", "oauth_client_id"}
)
#: Outbound event types PagerDuty's v3 webhooks know (developer docs, "v3 Overview").
KNOWN_WEBHOOK_EVENTS = frozenset(
    {
        "incident.acknowledged",
        "incident.annotated",
        "incident.delegated",
        "incident.escalated",
        "incident.priority_updated",
        "incident.reassigned",
        "incident.reopened",
        "incident.resolved",
        "incident.responder.added",
        "incident.responder.replied",
        "incident.status_update_published",
        "incident.triggered",
        "incident.unacknowledged",
    }
)

Handler = Callable[[Request], Awaitable[Response]]
_INTEGRATION = "/services/{id}/integrations/{integration_id}"
#: Integration types a client may create here (the document's enum has more; the sandbox
#: has no e-mail or vendor integrations).
_INTEGRATION_TYPES = frozenset(
    {"events_api_v2_inbound_integration", "generic_events_api_inbound_integration"}
)


class RestError(Exception):
    def __init__(self, status: int, message: str, code: int, errors: list[str] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.errors = status, message, code, errors

    def response(self) -> JSONResponse:
        error: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            error["errors"] = self.errors
        return JSONResponse({"error": error}, status_code=self.status)


def _invalid(*errors: str) -> RestError:
    return RestError(400, "Invalid Input Provided", 2001, list(errors))


class RestApi:
    def __init__(
        self,
        state: AccountState,
        webhooks: WebhookDispatcher,
        limiter: RateLimiter,
        api_tokens: set[str],
        publish: Callable[[list[Change]], None],
        *,
        validate: bool = True,
    ) -> None:
        self.state = state
        self.webhooks = webhooks
        self.limiter = limiter
        self.api_tokens = api_tokens
        self.publish = publish
        self.validate = validate

    def routes(self) -> list[Route]:
        g = self._guarded
        return [
            Route("/incidents", g(self.list_incidents), methods=["GET"]),
            Route("/incidents/{id}", g(self.get_incident), methods=["GET"]),
            Route("/incidents/{id}", g(self.update_incident), methods=["PUT"]),
            Route("/incidents/{id}/notes", g(self.list_notes), methods=["GET"]),
            Route("/incidents/{id}/notes", g(self.create_note), methods=["POST"]),
            Route("/webhook_subscriptions", g(self.list_subscriptions), methods=["GET"]),
            Route("/webhook_subscriptions", g(self.create_subscription), methods=["POST"]),
            Route("/webhook_subscriptions/{id}", g(self.get_subscription), methods=["GET"]),
            Route("/webhook_subscriptions/{id}", g(self.update_subscription), methods=["PUT"]),
            Route("/webhook_subscriptions/{id}", g(self.delete_subscription), methods=["DELETE"]),
            Route("/services/{id}", g(self.get_service), methods=["GET"]),
            Route("/services/{id}/integrations", g(self.create_integration), methods=["POST"]),
            Route(_INTEGRATION, g(self.get_integration), methods=["GET"]),
            Route(_INTEGRATION, g(self.update_integration), methods=["PUT"]),
            Route(_INTEGRATION, g(self.delete_integration), methods=["DELETE"]),
        ]

    # -- cross-cutting: auth, rate limit, error bodies ---------------------------------

    def _guarded(self, handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            match = _TOKEN.match(request.headers.get("authorization", ""))
            if match is None or match["token"] not in self.api_tokens:
                return RestError(401, "Authentication failed", 2006).response()
            verdict = self.limiter.hit(match["token"])
            if not verdict.allowed:
                response: Response = RestError(429, "Rate Limit Exceeded", 2020).response()
            else:
                try:
                    response = await handler(request)
                except RestError as exc:
                    response = exc.response()
            if verdict.limit > 0:
                response.headers.update(verdict.headers())
            return response

        return guarded

    async def _json(self, request: Request, path: str, method: str) -> dict[str, Any]:
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise _invalid("Request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise _invalid("Request body must be a JSON object")
        if self.validate:
            validator = openapi.request_validator("REST", path, method)
            if not validator.is_valid(body):
                raise _invalid(*openapi.error_messages(validator, body))
        return body

    @staticmethod
    def _from(request: Request) -> str:
        sender = request.headers.get("from", "").strip()
        if not _EMAIL.match(sender):
            raise _invalid("The From header must hold the e-mail address of a valid user")
        return sender

    def _incident_or_404(self, request: Request) -> Any:
        incident = self.state.incident(request.path_params["id"])
        if incident is None:
            raise RestError(404, "Not Found", 2100, ["Incident Not Found"])
        return incident

    @staticmethod
    def _int(request: Request, name: str, default: int) -> int:
        raw = request.query_params.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise _invalid(f"{name} must be an integer") from None
        if value < 0:
            raise _invalid(f"{name} must not be negative")
        return value

    def _page(self, request: Request, items: list[Any]) -> dict[str, Any]:
        limit = min(self._int(request, "limit", 25), 100) or 25
        offset = self._int(request, "offset", 0)
        want_total = request.query_params.get("total", "false").lower() == "true"
        return {
            "items": items[offset : offset + limit],
            "limit": limit,
            "offset": offset,
            "more": offset + limit < len(items),
            "total": len(items) if want_total else None,
        }

    # -- incidents ---------------------------------------------------------------------

    async def list_incidents(self, request: Request) -> Response:
        params = request.query_params
        statuses = params.getlist("statuses[]")
        if any(s not in _STATUSES for s in statuses):
            raise _invalid("statuses[] must be triggered, acknowledged or resolved")
        service_ids = params.getlist("service_ids[]")
        key = params.get("incident_key")
        found = [
            i
            for i in self.state.incidents()
            if (not statuses or i.status in statuses)
            and (not service_ids or i.service_id in service_ids)
            and (key is None or i.incident_key == key)
        ]
        page = self._page(request, found)
        incidents = [render.incident(self.state, i) for i in page.pop("items")]
        return JSONResponse({"incidents": incidents, **page})

    async def get_incident(self, request: Request) -> Response:
        incident = self._incident_or_404(request)
        return JSONResponse({"incident": render.incident(self.state, incident)})

    async def update_incident(self, request: Request) -> Response:
        sender = self._from(request)
        incident = self._incident_or_404(request)
        body = await self._json(request, "/incidents/{id}", "put")
        status = body["incident"].get("status")
        if status is not None and status not in _STATUSES:
            raise _invalid("incident.status must be triggered, acknowledged or resolved")
        if status is not None:
            self.publish(self.state.set_status(incident.id, status, sender))
        return JSONResponse({"incident": render.incident(self.state, incident)})

    async def list_notes(self, request: Request) -> Response:
        incident = self._incident_or_404(request)
        return JSONResponse({"notes": [render.note(self.state, n) for n in incident.notes]})

    async def create_note(self, request: Request) -> Response:
        sender = self._from(request)
        incident = self._incident_or_404(request)
        body = await self._json(request, "/incidents/{id}/notes", "post")
        content = body["note"]["content"]
        if not isinstance(content, str) or not content.strip():
            raise _invalid("Note content must not be blank")
        note, change = self.state.add_note(incident.id, content, sender)
        self.publish([change])
        return JSONResponse({"note": render.note(self.state, note)})

    # -- webhook subscriptions ---------------------------------------------------------

    async def list_subscriptions(self, request: Request) -> Response:
        filter_type = request.query_params.get("filter_type")
        filter_id = request.query_params.get("filter_id")
        found = [
            s
            for s in self.webhooks.list()
            if (filter_type is None or s.filter_type == f"{filter_type}_reference")
            and (filter_id is None or s.filter_id == filter_id)
        ]
        page = self._page(request, found)
        items = [s.to_json(with_secret=False) for s in page.pop("items")]
        return JSONResponse({"webhook_subscriptions": items, **page})

    async def create_subscription(self, request: Request) -> Response:
        body = await self._json(request, "/webhook_subscriptions", "post")
        spec = body["webhook_subscription"]
        delivery, filter_ = spec["delivery_method"], spec["filter"]
        url = delivery["url"]
        problems = []
        if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url):
            problems.append("delivery_method.url must be an http(s) URL")
        unknown = sorted(set(spec["events"]) - KNOWN_WEBHOOK_EVENTS)
        if unknown:
            problems.append(f"Unknown event types: {', '.join(unknown)}")
        if filter_["type"] != "account_reference" and not filter_.get("id"):
            problems.append("filter.id is required for service and team filters")
        if problems:
            raise _invalid(*problems)
        subscription = self.webhooks.create(
            url,
            spec["events"],
            filter_type=filter_["type"],
            filter_id=filter_.get("id"),
            description=spec.get("description", ""),
            custom_headers=[
                {"name": h["name"], "value": h["value"]}
                for h in delivery.get("custom_headers") or ()
                if isinstance(h.get("name"), str) and isinstance(h.get("value"), str)
            ],
        )
        subscription.active = spec.get("active", True)
        return JSONResponse({"webhook_subscription": subscription.to_json(with_secret=True)})

    def _subscription_or_404(self, request: Request) -> Any:
        subscription = self.webhooks.get(request.path_params["id"])
        if subscription is None:
            raise RestError(404, "Not Found", 2100, ["Webhook Subscription Not Found"])
        return subscription

    async def get_subscription(self, request: Request) -> Response:
        subscription = self._subscription_or_404(request)
        return JSONResponse({"webhook_subscription": subscription.to_json(with_secret=False)})

    async def update_subscription(self, request: Request) -> Response:
        """``PUT``: the documented ``WebhookSubscriptionUpdate`` fields (no URL change)."""
        subscription = self._subscription_or_404(request)
        body = await self._json(request, "/webhook_subscriptions/{id}", "put")
        spec = body.get("webhook_subscription") or {}
        unknown = sorted(set(spec) - _SUBSCRIPTION_UPDATE_FIELDS)
        if unknown:
            raise _invalid(f"Unknown webhook subscription field(s): {', '.join(unknown)}")
        unknown_events = sorted(set(spec.get("events") or ()) - KNOWN_WEBHOOK_EVENTS)
        if unknown_events:
            raise _invalid(f"Unknown event types: {', '.join(unknown_events)}")
        updated = self.webhooks.update(
            subscription.id,
            description=spec.get("description"),
            events=spec.get("events"),
            active=spec.get("active"),
            filter_type=(spec.get("filter") or {}).get("type"),
            filter_id=(spec.get("filter") or {}).get("id"),
        )
        return JSONResponse({"webhook_subscription": updated.to_json(with_secret=False)})

    async def delete_subscription(self, request: Request) -> Response:
        subscription = self._subscription_or_404(request)
        self.webhooks.delete(subscription.id)
        return Response(status_code=204)

    # -- services and their integrations -----------------------------------------------

    def _service_or_404(self, request: Request) -> Any:
        service = self.state.services.get(request.path_params["id"])
        if service is None:
            raise RestError(404, "Not Found", 2100, ["Service Not Found"])
        return service

    async def get_service(self, request: Request) -> Response:
        service = self._service_or_404(request)
        include = request.query_params.getlist("include[]")
        full = "integrations" in include
        return JSONResponse(
            {"service": render.service(self.state, service, with_integrations=full)}
        )

    async def create_integration(self, request: Request) -> Response:
        """``POST``: 201 with the integration (and, for an Events API one, its key).

        An unknown service answers 400: the document declares no 404 for this operation
        (``Invalid Input Provided`` naming the service)."""
        body = await self._json(request, "/services/{id}/integrations", "post")
        service_id = request.path_params["id"]
        if service_id not in self.state.services:
            raise _invalid("Service Not Found")
        spec = body["integration"]
        type_, name = spec.get("type"), spec.get("name")
        problems = []
        if type_ not in _INTEGRATION_TYPES:
            problems.append(
                f"integration.type must be one of {', '.join(sorted(_INTEGRATION_TYPES))}"
            )
        if not isinstance(name, str) or not name.strip():
            problems.append("integration.name must not be blank")
        referenced = (spec.get("service") or {}).get("id")
        if referenced is not None and referenced != service_id:
            problems.append("integration.service.id must be the service of the URL")
        if problems:
            raise _invalid(*problems)
        assert isinstance(type_, str)
        assert isinstance(name, str)
        created = self.state.add_integration(service_id, type_, name)
        return JSONResponse({"integration": render.integration(self.state, created)}, 201)

    def _integration_or_404(self, request: Request) -> Any:
        found = self.state.integration(
            request.path_params["id"], request.path_params["integration_id"]
        )
        if found is None:
            raise RestError(404, "Not Found", 2100, ["Integration Not Found"])
        return found

    async def get_integration(self, request: Request) -> Response:
        found = self._integration_or_404(request)
        return JSONResponse({"integration": render.integration(self.state, found)})

    async def update_integration(self, request: Request) -> Response:
        """``PUT``: a new name (what the operator changes); the type cannot change."""
        found = self._integration_or_404(request)
        body = await self._json(request, _INTEGRATION, "put")
        spec = body["integration"]
        if spec.get("type") not in (None, found.type):
            raise _invalid("integration.type cannot be changed")
        name = spec.get("name")
        if name is not None:
            if not isinstance(name, str) or not name.strip():
                raise _invalid("integration.name must not be blank")
            with self.state.lock:
                found.name = name
        return JSONResponse({"integration": render.integration(self.state, found)})

    async def delete_integration(self, request: Request) -> Response:
        """``DELETE``: not in PagerDuty's OpenAPI document, but in its API (go-pagerduty's
        ``DeleteIntegration``); 204, and the key no longer routes events."""
        found = self._integration_or_404(request)
        self.state.delete_integration(found.id)
        return Response(status_code=204)
