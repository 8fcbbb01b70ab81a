"""PagerDuty REST API v2 service integrations: the Events API v2 integration whose
``integration_key`` is a managed routing key (``pagerDuty.routingKey.managed``).

- create: ``POST /services/{id}/integrations`` with ``{"integration": {"type":
  "events_api_v2_inbound_integration", "name": ..., "service": {"id", "type":
  "service_reference"}}}`` (PagerDuty's REST OpenAPI document, ``createServiceIntegration``);
  the answer carries the integration, with its ``integration_key`` (the routing key).
- get: ``GET /services/{id}/integrations/{integration_id}`` (404: gone).
- list: ``GET /services/{id}?include[]=integrations``: the service with its integrations
  (the document has no listing of its own for a service's integrations). Its schema
  types them as references (``summary`` the name); whatever more PagerDuty includes is
  welcome, but the key is read with ``get`` when the listing lacks it.
- rename: ``PUT /services/{id}/integrations/{integration_id}`` with a new ``name`` (the
  ownership stamp lives in the name, the one writable text field an integration has).
- delete: ``DELETE /services/{id}/integrations/{integration_id}``. PagerDuty's OpenAPI
  document does not list it; PagerDuty's own clients (go-pagerduty ``DeleteIntegration``)
  call it. A 404 is "already gone"; any other refusal is a :class:`Rejected` like the rest.

The base URL comes from a tenant's CR, so every call goes through the egress policy's
guarded transport and :class:`~pagerbridge.clients._http.CallLimits`. The key is a
secret: it is never logged, and :class:`ServiceIntegration`'s ``repr`` hides it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pagerbridge.clients._http import call, parse
from pagerbridge.clients._pagerduty_rest import PagerDutyRestSession
from pagerbridge.clients.errors import MalformedResponse, Rejected

EVENTS_V2_TYPE = "events_api_v2_inbound_integration"


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ServiceIntegration(_Loose):
    id: str
    type: str = ""
    name: str | None = None
    summary: str | None = None
    integration_key: str | None = Field(default=None, repr=False)  # a secret: never shown

    @property
    def label(self) -> str | None:
        """The name (a reference in a listing may carry only its ``summary``)."""
        return self.name if self.name is not None else self.summary


class _One(_Loose):
    integration: ServiceIntegration


class _Service(_Loose):
    id: str
    integrations: list[dict[str, Any]] = []


class _ServiceAnswer(_Loose):
    service: _Service


class PagerDutyServiceIntegrations(PagerDutyRestSession):
    """``async with PagerDutyServiceIntegrations(api_url, token, policy=...) as c: ...``."""

    async def create(self, service_id: str, name: str) -> ServiceIntegration:
        """A new Events API v2 integration on ``service_id``; its key is in the answer."""
        what = "POST /services/{id}/integrations"
        body = {
            "integration": {
                "type": EVENTS_V2_TYPE,
                "name": name,
                "service": {"id": service_id, "type": "service_reference"},
            }
        }
        response = await call(
            self._http,
            what,
            "POST",
            f"/services/{service_id}/integrations",
            self._limits,
            json_body=body,
        )
        return parse(_One, response, what).integration

    async def get(self, service_id: str, integration_id: str) -> ServiceIntegration | None:
        """The integration, or None when the service no longer has it."""
        what = "GET /services/{id}/integrations/{integration_id}"
        try:
            response = await call(
                self._http,
                what,
                "GET",
                f"/services/{service_id}/integrations/{integration_id}",
                self._limits,
            )
        except Rejected as exc:
            if exc.status == 404:
                return None
            raise
        return parse(_One, response, what).integration

    async def list(self, service_id: str) -> list[ServiceIntegration]:
        """The service's integrations (``include[]=integrations``: full objects)."""
        what = "GET /services/{id}"
        response = await call(
            self._http,
            what,
            "GET",
            f"/services/{service_id}",
            self._limits,
            params={"include[]": "integrations"},
        )
        raw = parse(_ServiceAnswer, response, what).service.integrations
        if len(raw) > self._limits.max_items:
            raise MalformedResponse(f"{what}: more than {self._limits.max_items} integrations")
        found: list[ServiceIntegration] = []
        for item in raw:
            try:
                found.append(ServiceIntegration.model_validate(item))
            except ValueError:
                raise MalformedResponse(f"{what}: an integration without an id") from None
        return found

    async def rename(self, service_id: str, integration_id: str, name: str) -> None:
        """``PUT`` of a new ``name`` (e.g. without our stamp, when it is orphaned)."""
        what = "PUT /services/{id}/integrations/{integration_id}"
        body = {"integration": {"type": EVENTS_V2_TYPE, "name": name}}
        response = await call(
            self._http,
            what,
            "PUT",
            f"/services/{service_id}/integrations/{integration_id}",
            self._limits,
            json_body=body,
        )
        parse(_One, response, what)

    async def delete(self, service_id: str, integration_id: str) -> bool:
        """Delete; False when it was already gone."""
        try:
            await call(
                self._http,
                "DELETE /services/{id}/integrations/{integration_id}",
                "DELETE",
                f"/services/{service_id}/integrations/{integration_id}",
                self._limits,
            )
        except Rejected as exc:
            if exc.status == 404:
                return False
            raise
        return True
