"""BigPanda Webhook v2 integrations (``/resources/v2.1/integrations``): create, read,
update and delete the outbound webhook BigPanda shares incidents through.

Auth is a BigPanda *User API key* (``Authorization: Bearer ...``). BigPanda answers
create/get/patch with an array of ``{name, parent_system_id, workflow_config}``; ids are
``webhook_v2.<name>``. Failures are :mod:`pagerbridge.clients.errors` classes (via
``_http.send``); messages carry no credential.
"""

from __future__ import annotations

from typing import Any

import httpx

from pagerbridge.clients._http import DEFAULT_TIMEOUT, send
from pagerbridge.clients.errors import Rejected

PARENT_SYSTEM_ID = "webhook_v2"
# NOT PUBLIC in BigPanda's docs: the name of the workflow event field that says which
# trigger (``incident#new``, ...) the event configures. The operator and the simulator
# both read it from here: correct it in this one place if BigPanda's differs.
TRIGGER_FIELD = "trigger"
PREFIX = "/resources/v2.1/integrations"

WorkflowConfig = dict[str, Any]


def integration_id(name: str) -> str:
    return f"{PARENT_SYSTEM_ID}.{name}"


def _first(payload: Any) -> dict[str, Any]:
    item = payload[0] if isinstance(payload, list) else payload
    return dict(item)


class BigPandaIntegrations:
    """``async with BigPandaIntegrations(api_url, user_api_key) as client: ...``."""

    def __init__(self, api_url: str, api_key: str) -> None:
        self._http = httpx.AsyncClient(
            base_url=api_url.rstrip("/"),
            timeout=DEFAULT_TIMEOUT,
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
        )

    async def __aenter__(self) -> BigPandaIntegrations:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._http.aclose()

    async def get(self, name: str) -> dict[str, Any] | None:
        """The integration, or None when BigPanda has none by that name."""
        try:
            response = await send(
                "GET /integrations/{id}",
                lambda: self._http.get(f"{PREFIX}/{integration_id(name)}"),
            )
        except Rejected as exc:
            if exc.status == 404:
                return None
            raise
        return _first(response.json())

    async def create(self, name: str, workflow_config: WorkflowConfig) -> dict[str, Any]:
        body = {
            "name": name,
            "parent_system_id": PARENT_SYSTEM_ID,
            "workflow_config": workflow_config,
        }
        response = await send("POST /integrations", lambda: self._http.post(PREFIX, json=body))
        return _first(response.json())

    async def update(self, name: str, workflow_config: WorkflowConfig) -> dict[str, Any]:
        response = await send(
            "PATCH /integrations/{id}",
            lambda: self._http.patch(
                f"{PREFIX}/{integration_id(name)}", json={"workflow_config": workflow_config}
            ),
        )
        return _first(response.json())

    async def delete(self, name: str) -> bool:
        """Delete; False when it was already gone."""
        try:
            await send(
                "DELETE /integrations/{id}",
                lambda: self._http.delete(f"{PREFIX}/{integration_id(name)}"),
            )
        except Rejected as exc:
            if exc.status == 404:
                return False
            raise
        return True
