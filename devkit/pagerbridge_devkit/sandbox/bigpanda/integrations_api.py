"""BigPanda's Webhook v2 integrations API (``/resources/v2.1/integrations``) and its store.

As BigPanda's API reference documents it: create -> 201, list / get / patch -> 200,
delete -> 204, unknown id -> 404, bad body -> 400, all with ``{"status", "errors"}``
bodies; 401 without a valid User API key. The reference gives the 200/201 answers as
an *array* of ``{name, parent_system_id, workflow_config}`` (even for one integration),
and so does this simulator. A name that is already taken is refused with 400.
"""

from __future__ import annotations

import threading
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pagerbridge_devkit.sandbox.bigpanda.guard import Guard, error, json_object, validation_errors
from pagerbridge_devkit.sandbox.bigpanda.store import IncidentStore
from pagerbridge_devkit.sandbox.bigpanda.variables import catalogue
from pagerbridge_devkit.sandbox.bigpanda.workflow import (
    Integration,
    IntegrationCreate,
    IntegrationPatch,
)

PREFIX = "/resources/v2.1"


class IntegrationRegistry:
    """Thread-safe stored integrations, by id (``webhook_v2.<name>``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, Integration] = {}

    def all(self) -> list[Integration]:
        with self._lock:
            return [i.model_copy(deep=True) for i in self._items.values()]

    def get(self, integration_id: str) -> Integration | None:
        with self._lock:
            item = self._items.get(integration_id)
            return None if item is None else item.model_copy(deep=True)

    def create(self, integration: Integration) -> bool:
        with self._lock:
            if integration.id in self._items:
                return False
            self._items[integration.id] = integration
            return True

    def replace(self, integration: Integration) -> bool:
        with self._lock:
            if integration.id not in self._items:
                return False
            self._items[integration.id] = integration
            return True

    def delete(self, integration_id: str) -> bool:
        with self._lock:
            return self._items.pop(integration_id, None) is not None


class IntegrationsApi:
    def __init__(
        self,
        registry: IntegrationRegistry,
        guard: Guard,
        store: IncidentStore,
        *,
        mask_authorization: bool = True,
    ) -> None:
        """``mask_authorization``: answers never show an event's ``authorization`` (as
        BigPanda stores it encrypted); False returns it as written."""
        self.registry = registry
        self.guard = guard
        self.store = store
        self.mask_authorization = mask_authorization

    def _api(self, integration: Integration) -> dict[str, Any]:
        return integration.to_api(mask_secrets=self.mask_authorization)

    async def list_all(self, request: Request) -> Response:
        if isinstance(refused := self.guard.check(request, "GET /integrations"), Response):
            return refused
        return JSONResponse([self._api(i) for i in self.registry.all()])

    async def create(self, request: Request) -> Response:
        if isinstance(refused := self.guard.check(request, "POST /integrations"), Response):
            return refused
        body = await json_object(request)
        if isinstance(body, JSONResponse):
            return body
        try:
            parsed = IntegrationCreate.model_validate(body)
        except ValidationError as exc:
            return validation_errors(exc)
        integration = Integration(
            name=parsed.name,
            parent_system_id=parsed.parent_system_id,
            workflow_config=parsed.workflow_config,
        )
        if not self.registry.create(integration):
            return error(400, f"An integration with id {integration.id} already exists")
        return JSONResponse([self._api(integration)], status_code=201)

    async def get_one(self, request: Request) -> Response:
        if isinstance(refused := self.guard.check(request, "GET /integrations/{id}"), Response):
            return refused
        integration = self.registry.get(request.path_params["integration_id"])
        if integration is None:
            return error(404, "Integration not found")
        return JSONResponse([self._api(integration)])

    async def patch(self, request: Request) -> Response:
        if isinstance(refused := self.guard.check(request, "PATCH /integrations/{id}"), Response):
            return refused
        integration = self.registry.get(request.path_params["integration_id"])
        if integration is None:
            return error(404, "Integration not found")
        body = await json_object(request)
        if isinstance(body, JSONResponse):
            return body
        try:
            parsed = IntegrationPatch.model_validate(body)
        except ValidationError as exc:
            return validation_errors(exc)
        integration.workflow_config = parsed.workflow_config
        if not self.registry.replace(integration):  # deleted meanwhile
            return error(404, "Integration not found")
        return JSONResponse([self._api(integration)])

    async def delete(self, request: Request) -> Response:
        if isinstance(refused := self.guard.check(request, "DELETE /integrations/{id}"), Response):
            return refused
        if not self.registry.delete(request.path_params["integration_id"]):
            return error(404, "Integration not found")
        return Response(status_code=204)

    async def variables(self, request: Request) -> Response:
        endpoint = "GET /fields-resolver/workflows"
        if isinstance(refused := self.guard.check(request, endpoint), Response):
            return refused
        return JSONResponse(catalogue(self.store.all()))

    def routes(self) -> list[Route]:
        item = PREFIX + "/integrations/{integration_id}"
        return [
            Route(PREFIX + "/integrations", self.list_all, methods=["GET"]),
            Route(PREFIX + "/integrations", self.create, methods=["POST"]),
            Route(item, self.get_one, methods=["GET"]),
            Route(item, self.patch, methods=["PATCH"]),
            Route(item, self.delete, methods=["DELETE"]),
            Route(PREFIX + "/fields-resolver/workflows", self.variables, methods=["GET"]),
        ]
