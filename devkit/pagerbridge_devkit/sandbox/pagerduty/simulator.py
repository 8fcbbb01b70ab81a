"""The PagerDuty simulator: one ASGI app plus a Python handle to inspect and act on it.

``sim.app`` serves, on one port, the Events API v2 (``POST /v2/enqueue``), the REST API
v2 subset, and admin/inspection routes under ``/_sandbox``; it is wrapped in
``RecordingMiddleware(FaultMiddleware(...))`` so every request is logged and faults can
be injected. Python methods act as a person would in PagerDuty's web UI (resolve,
acknowledge, add a note); every change, whatever its origin, emits Webhooks v3 to the
matching subscriptions.

The app runs in a server thread and tests call these methods from theirs: the account
state is lock-protected and webhook delivery has its own threads.

Admin and inspection routes (never faulted, never recorded):

- ``GET /_sandbox/incidents`` and ``GET /_sandbox/incidents/{id}`` (routing keys redacted)
- ``POST /_sandbox/incidents/{id}/resolve|acknowledge|unacknowledge|reopen``
  ``{"by_email"?}``, ``POST /_sandbox/incidents/{id}/ack-timeout`` (the service's
  acknowledgement timeout) and ``POST /_sandbox/incidents/{id}/notes``
  ``{"content", "by_email"?}``: a person acting; likewise ``.../reassign`` and
  ``.../escalate`` ``{"assignees": [e-mail], "escalation_policy"?}``, ``.../delegate``
  ``{"escalation_policy", "assignees"?}``, ``.../priority`` ``{"priority": "P2" | null}``,
  ``.../status_update`` ``{"message"}`` and ``.../responders``
  ``{"responder_email", "message"?}``, each emitting its v3 webhook
- ``PUT /_sandbox/rate-limits`` ``{"events_per_minute"?, "rest_per_minute"?}`` (0: off)
- ``GET /_sandbox/webhook-deliveries``: every delivery attempt
- ``/_sandbox/faults`` and ``/_sandbox/requests``: see :mod:`pagerbridge_devkit.sandbox.faults`
  and :mod:`pagerbridge_devkit.sandbox.recording`
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from pagerbridge_devkit.sandbox.faults import FaultInjector, FaultMiddleware
from pagerbridge_devkit.sandbox.faults import admin_routes as fault_routes
from pagerbridge_devkit.sandbox.pagerduty import render
from pagerbridge_devkit.sandbox.pagerduty.events import EventsApi
from pagerbridge_devkit.sandbox.pagerduty.ratelimit import RateLimiter, TokenBucket
from pagerbridge_devkit.sandbox.pagerduty.rest import RestApi
from pagerbridge_devkit.sandbox.pagerduty.state import (
    AccountState,
    Change,
    IncidentStatus,
    SimIncident,
    SimIntegration,
    SimNote,
)
from pagerbridge_devkit.sandbox.pagerduty.webhooks import (
    EVENT_TYPES,
    DeliveryAttempt,
    WebhookDispatcher,
)
from pagerbridge_devkit.sandbox.recording import (
    RecordingMiddleware,
    RequestLog,
    json_field_redactor,
)

#: The integration (routing) key of the sandbox's default service.
DEFAULT_ROUTING_KEY = "e93facc04764012d7bfb002500d5d1a6"
#: The REST API key the sandbox accepts unless told otherwise.
DEFAULT_API_TOKEN = "sandbox-pd-api-token-0000000001"
DEFAULT_SERVICE_ID = "PSANDBX"
DEFAULT_USER_EMAIL = "oncall@example.com"


def _redact(value: str) -> str:
    return "..." + value[-4:] if len(value) > 8 else "<redacted>"


def incident_inspection(incident: SimIncident) -> dict[str, Any]:
    """An incident as ``GET /_sandbox/incidents`` shows it (routing keys redacted)."""
    return {
        "id": incident.id,
        "number": incident.number,
        "incident_key": incident.incident_key,
        "routing_key": _redact(incident.routing_key),
        "service_id": incident.service_id,
        "status": incident.status,
        "title": incident.title,
        "urgency": incident.urgency,
        "created_at": incident.created_at,
        "updated_at": incident.updated_at,
        "resolved_at": incident.resolved_at,
        "acknowledged_at": incident.acknowledged_at,
        "notified": list(incident.notified),
        "assignees": list(incident.assignees),
        "escalation_policy": incident.escalation_policy,
        "priority": incident.priority,
        "events": [
            {**e, "routing_key": _redact(str(e.get("routing_key", "")))} for e in incident.events
        ],
        "notes": [
            {
                "id": n.id,
                "content": n.content,
                "user_email": n.user_email,
                "created_at": n.created_at,
            }
            for n in incident.notes
        ],
    }


_mask_custom_headers = json_field_redactor("custom_headers")


def _redact_custom_headers(body: bytes) -> bytes:
    """Webhook subscriptions' custom header values can be credentials: not in the log."""
    return _mask_custom_headers(body) if b"custom_headers" in body else body


async def _not_found(_: Request, __: Exception) -> Response:
    return JSONResponse({"error": {"message": "Not Found", "code": 2100}}, status_code=404)


async def _not_allowed(_: Request, __: Exception) -> Response:
    return JSONResponse({"error": {"message": "Method Not Allowed", "code": 2001}}, status_code=405)


class PagerDutySimulator:
    """``sim = PagerDutySimulator(); with BackgroundServer(sim.app) as server: ...``.

    Rate limits are per minute (Events API per routing key, REST per API key); ``None``
    or 0 means unlimited. ``validate`` checks requests against PagerDuty's OpenAPI
    documents (the documented prose rules of the Events API always apply).
    """

    def __init__(
        self,
        *,
        api_tokens: Iterable[str] = (DEFAULT_API_TOKEN,),
        events_per_minute: int | None = 120,
        rest_per_minute: int | None = 960,
        validate: bool = True,
        strict_routing_keys: bool = False,
        webhook_retry_delays: Sequence[float] = (0.2, 0.4, 0.8, 1.6),
        webhook_timeout: float = 5.0,
        base_url: str = "https://api.pagerduty.com",
        html_url: str = "https://sandbox.pagerduty.com",
    ) -> None:
        self.api_tokens = set(api_tokens)
        self.state = AccountState(base_url, html_url)
        self.state.strict_routing_keys = strict_routing_keys
        self.state.add_service(DEFAULT_SERVICE_ID, DEFAULT_ROUTING_KEY, "Sandbox Service")
        #: Team of each service (subscriptions filtered by ``team_reference``).
        self.service_teams: dict[str, str] = {}
        self.dropping_webhooks = False
        self.dropped_webhooks: list[str] = []  # event types lost on purpose
        self.faults = FaultInjector()
        self.requests = RequestLog()
        self._webhooks = WebhookDispatcher(
            retry_delays=webhook_retry_delays, timeout=webhook_timeout
        )
        self._events_limiter = RateLimiter(events_per_minute or 0)
        self._rest_limiter = RateLimiter(rest_per_minute or 0)
        self._events = EventsApi(self.state, self._events_limiter, self._publish, validate=validate)
        self._rest = RestApi(
            self.state,
            self._webhooks,
            self._rest_limiter,
            self.api_tokens,
            self._publish,
            validate=validate,
        )
        routed = Starlette(
            routes=self._routes(),
            exception_handlers={404: _not_found, 405: _not_allowed},
        )
        self.app: ASGIApp = RecordingMiddleware(
            FaultMiddleware(self._events_fast_path(routed), self.faults),
            self.requests,
            redact_body=_redact_custom_headers,
        )

    # -- inspection --------------------------------------------------------------------

    def incidents(self) -> list[SimIncident]:
        return self.state.incidents()

    def incident(self, incident_id: str) -> SimIncident | None:
        return self.state.incident(incident_id)

    def incident_by_key(self, dedup_key: str) -> SimIncident | None:
        return self.state.incident_by_key(dedup_key)

    @property
    def webhook_deliveries(self) -> list[DeliveryAttempt]:
        return list(self._webhooks.deliveries)

    def wait_webhooks_idle(self, timeout: float = 5.0) -> bool:
        """True once every webhook so far was delivered or given up on."""
        return self._webhooks.wait_idle(timeout)

    # -- configuration -----------------------------------------------------------------

    @property
    def strict_routing_keys(self) -> bool:
        return self.state.strict_routing_keys

    @strict_routing_keys.setter
    def strict_routing_keys(self, value: bool) -> None:
        self.state.strict_routing_keys = value

    def add_service(
        self,
        service_id: str,
        routing_key: str,
        name: str | None = None,
        team_id: str | None = None,
    ) -> None:
        self.state.add_service(service_id, routing_key, name)
        if team_id is not None:
            self.service_teams[service_id] = team_id

    def service_integrations(self, service_id: str) -> list[SimIntegration]:
        """The integrations of a service (REST ``/services/{id}/integrations``)."""
        return self.state.service_integrations(service_id)

    def delete_integration(self, integration_id: str) -> None:
        """A person deletes an integration in PagerDuty's web UI: its key stops routing."""
        self.state.delete_integration(integration_id)

    def drop_webhooks(self, dropping: bool = True) -> None:
        """Lose every webhook from now on (until called with False), as PagerDuty does once
        its retries are spent; dropped ones are counted in :attr:`dropped_webhooks`."""
        self.dropping_webhooks = dropping

    def set_rate_limits(
        self, events_per_minute: int | None = None, rest_per_minute: int | None = None
    ) -> None:
        """Change limits (None: leave as is; 0: unlimited); counting starts afresh."""
        if events_per_minute is not None:
            self._events_limiter.set_limit(events_per_minute)
            self._events.limiter = self._events_limiter
        if rest_per_minute is not None:
            self._rest_limiter.set_limit(rest_per_minute)

    def set_events_bucket(self, rate: float, burst: int) -> None:
        """A PagerDuty stricter than documented: per routing key ``rate`` events per second,
        at most ``burst`` at once, ``Retry-After`` on every 429 (see ``ratelimit``).
        :meth:`set_rate_limits` with ``events_per_minute`` goes back to the window."""
        self._events.limiter = TokenBucket(rate, burst)

    def create_subscription(
        self,
        url: str,
        service_id: str | None = None,
        events: Sequence[str] = EVENT_TYPES,
        description: str = "",
        team_id: str | None = None,
    ) -> tuple[str, str]:
        """Like ``POST /webhook_subscriptions``; returns (subscription id, signing secret).
        Filtered on ``service_id``, else on ``team_id``, else the whole account."""
        subscription = self._webhooks.create(
            url,
            events,
            filter_type=(
                "service_reference"
                if service_id
                else "team_reference"
                if team_id
                else "account_reference"
            ),
            filter_id=service_id or team_id,
            description=description,
        )
        return subscription.id, subscription.secret

    def webhook_subscription_ids(self) -> list[str]:
        """Ids of the webhook subscriptions that exist now."""
        return [s.id for s in self._webhooks.list()]

    # -- a person acting in PagerDuty --------------------------------------------------

    def resolve(self, incident_id: str, by_email: str = DEFAULT_USER_EMAIL) -> None:
        self._set_status(incident_id, "resolved", by_email)

    def acknowledge(self, incident_id: str, by_email: str = DEFAULT_USER_EMAIL) -> None:
        self._set_status(incident_id, "acknowledged", by_email)

    def ack_timeout(self, incident_id: str) -> None:
        """The service's acknowledgement timeout expires (see ``AccountState.ack_timeout``)."""
        self._publish(self.state.ack_timeout(incident_id))

    def unacknowledge(self, incident_id: str, by_email: str = DEFAULT_USER_EMAIL) -> None:
        """Back to triggered (``incident.unacknowledged``), as the web UI's ack timeout."""
        self._set_status(incident_id, "triggered", by_email)

    def reopen(self, incident_id: str, by_email: str = DEFAULT_USER_EMAIL) -> None:
        """A resolved incident triggered again by a person (``incident.reopened``)."""
        self._set_status(incident_id, "triggered", by_email)

    def reassign(
        self,
        incident_id: str,
        assignees: Sequence[str],
        by_email: str = DEFAULT_USER_EMAIL,
        escalation_policy: str | None = None,
    ) -> None:
        self._publish(
            self.state.reassign(
                incident_id, list(assignees), by_email, escalation_policy=escalation_policy
            )
        )

    def escalate(
        self, incident_id: str, assignees: Sequence[str], by_email: str = DEFAULT_USER_EMAIL
    ) -> None:
        """To the next escalation level: its on-call ``assignees``."""
        self._publish(
            self.state.reassign(incident_id, list(assignees), by_email, kind="incident.escalated")
        )

    def delegate(
        self,
        incident_id: str,
        escalation_policy: str,
        by_email: str = DEFAULT_USER_EMAIL,
        assignees: Sequence[str] = (),
    ) -> None:
        """To another escalation policy (its first level's on-call ``assignees``)."""
        self._publish(
            self.state.reassign(
                incident_id,
                list(assignees),
                by_email,
                kind="incident.delegated",
                escalation_policy=escalation_policy,
            )
        )

    def set_priority(
        self, incident_id: str, priority: str | None, by_email: str = DEFAULT_USER_EMAIL
    ) -> None:
        self._publish(self.state.set_priority(incident_id, priority, by_email))

    def publish_status_update(
        self, incident_id: str, message: str, by_email: str = DEFAULT_USER_EMAIL
    ) -> None:
        self._publish([self.state.publish_status_update(incident_id, message, by_email)])

    def add_responder(
        self,
        incident_id: str,
        responder_email: str,
        by_email: str = DEFAULT_USER_EMAIL,
        message: str = "",
    ) -> None:
        self._publish([self.state.add_responder(incident_id, responder_email, by_email, message)])

    def add_note(
        self, incident_id: str, content: str, by_email: str = DEFAULT_USER_EMAIL
    ) -> SimNote:
        note, change = self.state.add_note(incident_id, content, by_email)
        self._publish([change])
        return note

    def _set_status(self, incident_id: str, status: IncidentStatus, by_email: str) -> None:
        self._publish(self.state.set_status(incident_id, status, by_email))

    def _publish(self, changes: list[Change]) -> None:
        for change in changes:
            if self.dropping_webhooks:
                self.dropped_webhooks.append(change.event_type)
                continue
            service_id = change.incident.service_id
            self._webhooks.publish(
                change,
                service_id,
                functools.partial(self._data, change),
                team_id=self.service_teams.get(service_id),
            )

    def _data(self, change: Change) -> dict[str, Any]:
        if change.note is not None:
            return render.webhook_note_data(self.state, change.incident, change.note)
        if change.status_update is not None:
            return render.webhook_status_update_data(
                self.state, change.incident, change.status_update
            )
        if change.responder is not None:
            return render.webhook_responder_data(self.state, change.incident, change.responder)
        return render.webhook_incident_data(self.state, change.incident)

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Stop webhook delivery threads."""
        self._webhooks.close()

    def __enter__(self) -> PagerDutySimulator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- HTTP --------------------------------------------------------------------------

    def _events_fast_path(self, routed: ASGIApp) -> ASGIApp:
        """``POST /v2/enqueue`` straight to the Events API, other requests to the router.

        The Events API is the hot path (3,000 events/s on one core): skipping the
        router's request objects saves a third of the time per event.
        """

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or scope["path"] != "/v2/enqueue":
                await routed(scope, receive, send)
                return
            if scope["method"] != "POST":
                await JSONResponse({"error": "Method Not Allowed"}, status_code=405)(
                    scope, receive, send
                )
                return
            chunks = []
            while True:
                message = await receive()
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            answer = self._events.enqueue(b"".join(chunks))
            body = json.dumps(answer.body).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *((k.encode(), v.encode()) for k, v in answer.headers),
            ]
            await send({"type": "http.response.start", "status": answer.status, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        return app

    def _routes(self) -> list[Route]:
        return [
            *self._rest.routes(),
            *self._admin_routes(),
            *fault_routes(self.faults),
            *self._request_log_routes(),
        ]

    def _request_log_routes(self) -> list[Route]:
        """``GET/DELETE /_sandbox/requests``, showing routing keys redacted.

        The Python-side log keeps bodies as sent (tests check which key an event used);
        over HTTP, where a person or a CI log reads it, the keys are masked.
        """
        mask = json_field_redactor("routing_key")

        async def list_requests(_: Request) -> Response:
            entries = []
            for entry in self.requests.matching():
                shown = entry.to_dict()
                shown["body"] = mask(entry.body).decode("utf-8", "replace")
                entries.append(shown)
            return JSONResponse(entries)

        async def clear_requests(_: Request) -> Response:
            self.requests.clear()
            return Response(status_code=204)

        return [
            Route("/_sandbox/requests", list_requests, methods=["GET"]),
            Route("/_sandbox/requests", clear_requests, methods=["DELETE"]),
        ]

    def _admin_routes(self) -> list[Route]:
        async def list_incidents(_: Request) -> Response:
            return JSONResponse([incident_inspection(i) for i in self.incidents()])

        async def get_incident(request: Request) -> Response:
            incident = self.incident(request.path_params["id"])
            if incident is None:
                return JSONResponse({"error": "no such incident"}, status_code=404)
            return JSONResponse(incident_inspection(incident))

        async def act(request: Request) -> Response:
            incident_id, action = request.path_params["id"], request.path_params["action"]
            try:
                body = await request.json() if await request.body() else {}
            except ValueError:
                return JSONResponse({"error": "body must be JSON"}, status_code=400)
            by_email = str(body.get("by_email") or DEFAULT_USER_EMAIL)
            try:
                if action == "notes":
                    content = body.get("content")
                    if not isinstance(content, str) or not content:
                        return JSONResponse({"error": "content is required"}, status_code=400)
                    self.add_note(incident_id, content, by_email)
                elif action == "resolve":
                    self.resolve(incident_id, by_email)
                elif action == "acknowledge":
                    self.acknowledge(incident_id, by_email)
                elif action == "ack-timeout":
                    self.ack_timeout(incident_id)
                elif action in ("unacknowledge", "reopen"):
                    getattr(self, action)(incident_id, by_email)
                elif action in ("reassign", "escalate", "delegate"):
                    assignees = body.get("assignees", [])
                    policy = body.get("escalation_policy")
                    if not isinstance(assignees, list) or not all(
                        isinstance(a, str) and a for a in assignees
                    ):
                        return JSONResponse({"error": "assignees: e-mails"}, status_code=400)
                    if policy is not None and not (isinstance(policy, str) and policy):
                        return JSONResponse({"error": "escalation_policy: a name"}, status_code=400)
                    if action == "delegate":
                        if policy is None:
                            return JSONResponse(
                                {"error": "escalation_policy is required"}, status_code=400
                            )
                        self.delegate(incident_id, policy, by_email, assignees)
                    elif action == "escalate":
                        self.escalate(incident_id, assignees, by_email)
                    else:
                        self.reassign(incident_id, assignees, by_email, policy)
                elif action == "priority":
                    priority = body.get("priority")
                    if priority is not None and not (isinstance(priority, str) and priority):
                        return JSONResponse({"error": "priority: a name or null"}, status_code=400)
                    self.set_priority(incident_id, priority, by_email)
                elif action == "status_update":
                    message = body.get("message")
                    if not isinstance(message, str) or not message:
                        return JSONResponse({"error": "message is required"}, status_code=400)
                    self.publish_status_update(incident_id, message, by_email)
                elif action == "responders":
                    responder = body.get("responder_email")
                    if not isinstance(responder, str) or not responder:
                        return JSONResponse(
                            {"error": "responder_email is required"}, status_code=400
                        )
                    self.add_responder(
                        incident_id, responder, by_email, str(body.get("message") or "")
                    )
                else:
                    return JSONResponse({"error": f"unknown action {action}"}, status_code=404)
            except KeyError:
                return JSONResponse({"error": "no such incident"}, status_code=404)
            incident = self.incident(incident_id)
            assert incident is not None
            return JSONResponse(incident_inspection(incident))

        async def rate_limits(request: Request) -> Response:
            try:
                body = await request.json()
                events, rest = body.get("events_per_minute"), body.get("rest_per_minute")
                if not all(v is None or (isinstance(v, int) and v >= 0) for v in (events, rest)):
                    raise ValueError
            except (ValueError, AttributeError):
                return JSONResponse(
                    {"error": "expected {events_per_minute?: int>=0, rest_per_minute?: int>=0}"},
                    status_code=400,
                )
            self.set_rate_limits(events, rest)
            return JSONResponse(
                {
                    "events_per_minute": self._events_limiter.per_minute,
                    "rest_per_minute": self._rest_limiter.per_minute,
                }
            )

        async def deliveries(_: Request) -> Response:
            return JSONResponse([vars(d) for d in self.webhook_deliveries])

        return [
            Route("/_sandbox/incidents", list_incidents, methods=["GET"]),
            Route("/_sandbox/incidents/{id}", get_incident, methods=["GET"]),
            Route("/_sandbox/incidents/{id}/{action}", act, methods=["POST"]),
            Route("/_sandbox/rate-limits", rate_limits, methods=["PUT"]),
            Route("/_sandbox/webhook-deliveries", deliveries, methods=["GET"]),
        ]
