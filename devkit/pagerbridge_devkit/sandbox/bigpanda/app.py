"""The BigPanda simulator: incident store, webhooks out, Incidents and integrations APIs in.

Build one, serve ``sim.app`` (e.g. in a
:class:`~pagerbridge_devkit.sandbox.server.BackgroundServer`)
and drive it from Python as BigPanda's correlation engine and users would::

    sim = BigPandaSimulator()
    sim.add_webhook_target(relay_url, headers={"Authorization": "Bearer ..."})
    incident = sim.open_incident(alerts=[{"host": "db-1", "status": "critical"}])
    sim.wait_webhooks_idle()

All methods are thread-safe: the app runs on the server's event loop, tests call in
from their own thread, and webhooks go out from the sender's worker threads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from pagerbridge_devkit.sandbox.bigpanda.admin import admin_routes
from pagerbridge_devkit.sandbox.bigpanda.guard import Guard, error
from pagerbridge_devkit.sandbox.bigpanda.incidents_api import ApiWrite, IncidentsApi
from pagerbridge_devkit.sandbox.bigpanda.integrations_api import (
    IntegrationRegistry,
    IntegrationsApi,
)
from pagerbridge_devkit.sandbox.bigpanda.ratelimit import RateLimiter
from pagerbridge_devkit.sandbox.bigpanda.sender import DeliveryAttempt, RetryPolicy, WebhookSender
from pagerbridge_devkit.sandbox.bigpanda.sharing import (
    WebhookTargets,
    classic_delivery,
    integration_delivery,
)
from pagerbridge_devkit.sandbox.bigpanda.store import Activity, Change, IncidentStore, SimIncident
from pagerbridge_devkit.sandbox.bigpanda.workflow import Integration
from pagerbridge_devkit.sandbox.faults import FaultInjector, FaultMiddleware
from pagerbridge_devkit.sandbox.faults import admin_routes as fault_routes
from pagerbridge_devkit.sandbox.recording import (
    RecordingMiddleware,
    RequestLog,
    json_field_redactor,
    request_log_routes,
)

# Credentials the sandbox accepts by default (printed by `pagerbridge sandbox`; not secrets).
DEFAULT_API_TOKEN = "bp-sandbox-user-api-key-0000000000000000"
DEFAULT_ENVIRONMENT_ID = "5f0c1e2d3b4a596877665544"
DEFAULT_API_USER = "pagerbridge-api@example.com"


class BigPandaSimulator:
    def __init__(
        self,
        api_tokens: Iterable[str] | Mapping[str, str] = (DEFAULT_API_TOKEN,),
        environment_id: str = DEFAULT_ENVIRONMENT_ID,
        requests_per_second: float | None = 5.0,
        *,
        api_user: str = DEFAULT_API_USER,
        webhook_max_attempts: int = 8,
        webhook_backoff: float = 0.2,
        webhook_timeout: float = 5.0,
        mask_authorization: bool = True,
    ) -> None:
        """``api_tokens``: accepted User API keys, or a mapping key -> the user it acts as.

        ``mask_authorization``: the integrations API answers with each event's
        ``authorization`` masked, as BigPanda stores it encrypted (False: as written)."""
        tokens = (
            dict(api_tokens)
            if isinstance(api_tokens, Mapping)
            else {token: api_user for token in api_tokens}
        )
        self.environment_id = environment_id
        self.faults = FaultInjector()
        self.requests = RequestLog()
        self.dropping_webhooks = False
        self.dropped_webhooks = 0  # changes whose webhooks were lost on purpose
        self.limiter = RateLimiter(requests_per_second)
        self.guard = Guard(tokens, self.limiter)
        self.sender = WebhookSender(
            RetryPolicy(
                max_attempts=webhook_max_attempts,
                backoff=webhook_backoff,
                timeout=webhook_timeout,
            )
        )
        self.targets = WebhookTargets()
        self.integrations = IntegrationRegistry()
        self.store = IncidentStore(environment_id, listener=self._share)
        self.incidents_api = IncidentsApi(self.store, self.guard)
        self.integrations_api = IntegrationsApi(
            self.integrations, self.guard, self.store, mask_authorization=mask_authorization
        )
        inner = Starlette(
            routes=[
                *self.incidents_api.routes(),
                *self.integrations_api.routes(),
                *admin_routes(self),
                *fault_routes(self.faults),
                *request_log_routes(self.requests),
            ],
            exception_handlers={HTTPException: _http_error},
            lifespan=self._lifespan,
        )
        self.app: ASGIApp = RecordingMiddleware(
            FaultMiddleware(inner, self.faults),
            self.requests,
            redact_body=json_field_redactor("authorization"),
        )

    @asynccontextmanager
    async def _lifespan(self, _: Starlette) -> AsyncIterator[None]:
        yield

    # -- BigPanda's side: correlation engine and users --------------------------------------

    def open_incident(
        self,
        alerts: list[dict[str, Any]],
        incident_tags: list[dict[str, Any]] | None = None,
        status: str | None = None,
        *,
        incident_id: str | None = None,
    ) -> SimIncident:
        """A new correlated incident (status defaults to its most severe alert's)."""
        return self.store.open(alerts, incident_tags, status, incident_id=incident_id)

    def update_incident(
        self,
        incident_id: str,
        *,
        status: str | None = None,
        alerts: list[dict[str, Any]] | None = None,
        incident_tags: list[dict[str, Any]] | None = None,
        flapping: bool | None = None,
    ) -> SimIncident:
        """A correlation update; ``flapping=True`` alone is shared as become-flapping."""
        return self.store.update(
            incident_id,
            status=status,
            alerts=alerts,
            incident_tags=incident_tags,
            flapping=flapping,
        )

    def snooze_incident(
        self,
        incident_id: str,
        by: str = "alice@example.com",
        end_time: int | None = None,
        auto_cancel: bool = False,
    ) -> SimIncident:
        """A user snoozes the incident (``snooze.snoozed`` true, trigger incident#snoozed)."""
        return self.store.snooze(incident_id, by, end_time, auto_cancel)

    def unsnooze_incident(self, incident_id: str, by: str = "alice@example.com") -> SimIncident:
        """The snooze ends (``snooze.snoozed`` false, shared as incident#updated)."""
        return self.store.unsnooze(incident_id, by)

    def add_comment(
        self, incident_id: str, text: str, by: str = "alice@example.com"
    ) -> dict[str, Any]:
        return self.store.add_comment(incident_id, text, by)

    def resolve_incident(self, incident_id: str, by: str = "alice@example.com") -> SimIncident:
        """A human resolves in BigPanda (raises AlreadyResolved when it is not active)."""
        return self.store.resolve(incident_id, by=by)

    # -- inspection ----------------------------------------------------------------------

    def incident(self, incident_id: str) -> SimIncident:
        return self.store.get(incident_id)

    def incidents(self) -> list[SimIncident]:
        return self.store.all()

    def activities(self, incident_id: str) -> list[Activity]:
        return self.store.activities(incident_id)

    def api_comments(self, incident_id: str | None = None) -> list[ApiWrite]:
        """Comments written through the Incidents API (by the relay)."""
        return self.incidents_api.writes(incident_id, "comment")

    def api_resolves(self, incident_id: str | None = None) -> list[ApiWrite]:
        """Resolves accepted (202) through the Incidents API."""
        return self.incidents_api.writes(incident_id, "resolve")

    def integration(self, integration_id: str) -> Integration | None:
        return self.integrations.get(integration_id)

    # -- webhooks out --------------------------------------------------------------------

    def add_webhook_target(
        self, url: str, headers: dict[str, str] | None = None, wrap: bool = False
    ) -> str:
        """Share every change to ``url`` (classic Notifications Webhook); returns its id."""
        return self.targets.add(url, headers, wrap)

    def remove_webhook_target(self, target_id: str) -> bool:
        return self.targets.remove(target_id)

    @property
    def webhook_deliveries(self) -> list[DeliveryAttempt]:
        return self.sender.attempts

    def wait_webhooks_idle(self, timeout: float = 5.0) -> bool:
        return self.sender.wait_idle(timeout)

    def set_rate_limit(self, requests_per_second: float | None) -> None:
        """Requests/s per API endpoint (None: unlimited)."""
        self.limiter.set_rate(requests_per_second)

    def close(self) -> None:
        """Stop the webhook sender (queued deliveries are abandoned)."""
        self.sender.close()

    def __enter__(self) -> BigPandaSimulator:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def drop_webhooks(self, dropping: bool = True) -> None:
        """Never send the webhooks of changes made from now on (until called with False):
        BigPanda does not document its retries; this is the case where it gave up.
        Dropped changes are counted in :attr:`dropped_webhooks`."""
        self.dropping_webhooks = dropping

    def _share(self, change: Change) -> None:
        """AutoShare: called by the store, under its lock, in change order."""
        if self.dropping_webhooks:
            self.dropped_webhooks += 1
            return
        for target in self.targets.all():
            self.sender.enqueue(classic_delivery(target, change))
        for integration in self.integrations.all():
            delivery = integration_delivery(integration, change)
            if delivery is not None:
                self.sender.enqueue(delivery)


async def _http_error(_: Request, exc: Exception) -> Response:
    """Unknown routes and methods answer in BigPanda's error shape too."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    return error(status, "Not found" if status == 404 else str(getattr(exc, "detail", "")))
