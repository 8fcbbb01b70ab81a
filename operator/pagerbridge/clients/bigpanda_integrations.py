"""BigPanda Webhook v2 integrations (``/resources/v2.1/integrations``): create, read,
update and delete the outbound webhook BigPanda shares incidents through.

Auth is a BigPanda *User API key* (``Authorization: Bearer ...``). BigPanda answers
create/get/patch with an array of ``{name, parent_system_id, workflow_config}``; ids are
``webhook_v2.<name>``. Failures are :mod:`pagerbridge.clients.errors` classes (via
``_http.call``); messages carry no credential.

The base URL comes from a tenant's CR: calls go through the egress policy's guarded
transport and the :class:`~pagerbridge.clients._http.CallLimits`, and answers are parsed
into :class:`Integration` (an unexpected shape is a ``MalformedResponse``).
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, RootModel

from pagerbridge.clients._http import DEFAULT_TIMEOUT, CallLimits, call, parse
from pagerbridge.clients.egress import EgressPolicy
from pagerbridge.clients.errors import EgressRefused, MalformedResponse, Rejected
from pagerbridge.clients.guard import GuardedTransport

PARENT_SYSTEM_ID = "webhook_v2"
# NOT PUBLIC in BigPanda's docs: the name of the workflow event field that says which
# trigger (``incident#new``, ...) the event configures. The operator and the simulator
# both read it from here: correct it in this one place if BigPanda's differs.
TRIGGER_FIELD = "trigger"
PREFIX = "/resources/v2.1/integrations"

WorkflowConfig = dict[str, Any]


def integration_id(name: str) -> str:
    return f"{PARENT_SYSTEM_ID}.{name}"


class Integration(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    name: str
    workflow_config: dict[str, Any] | None = None


class _Answer(RootModel[list[Integration] | Integration]):
    def first(self, what: str) -> dict[str, Any]:
        items = self.root if isinstance(self.root, list) else [self.root]
        if not items:
            raise MalformedResponse(f"{what}: empty answer")
        return items[0].model_dump()


class BigPandaIntegrations:
    """``async with BigPandaIntegrations(api_url, user_api_key, policy=...) as client:``."""

    def __init__(
        self,
        api_url: str,
        api_key: str,
        *,
        policy: EgressPolicy,
        limits: CallLimits | None = None,
    ) -> None:
        try:
            policy.check_url(api_url)
        except EgressRefused as exc:
            raise EgressRefused(f"BigPanda API: {exc}") from None
        self._limits = limits or CallLimits()
        self._http = httpx.AsyncClient(
            base_url=api_url.rstrip("/"),
            timeout=DEFAULT_TIMEOUT,
            transport=GuardedTransport(policy),
            trust_env=False,
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
        )

    async def __aenter__(self) -> BigPandaIntegrations:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._http.aclose()

    async def _one(self, what: str, method: str, path: str, body: Any = None) -> dict[str, Any]:
        response = await call(self._http, what, method, path, self._limits, json_body=body)
        return parse(_Answer, response, what).first(what)

    async def get(self, name: str) -> dict[str, Any] | None:
        """The integration, or None when BigPanda has none by that name."""
        try:
            return await self._one(
                "GET /integrations/{id}", "GET", f"{PREFIX}/{integration_id(name)}"
            )
        except Rejected as exc:
            if exc.status == 404:
                return None
            raise

    async def create(self, name: str, workflow_config: WorkflowConfig) -> dict[str, Any]:
        body = {
            "name": name,
            "parent_system_id": PARENT_SYSTEM_ID,
            "workflow_config": workflow_config,
        }
        return await self._one("POST /integrations", "POST", PREFIX, body)

    async def update(self, name: str, workflow_config: WorkflowConfig) -> dict[str, Any]:
        return await self._one(
            "PATCH /integrations/{id}",
            "PATCH",
            f"{PREFIX}/{integration_id(name)}",
            {"workflow_config": workflow_config},
        )

    async def delete(self, name: str) -> bool:
        """Delete; False when it was already gone."""
        try:
            await call(
                self._http,
                "DELETE /integrations/{id}",
                "DELETE",
                f"{PREFIX}/{integration_id(name)}",
                self._limits,
            )
        except Rejected as exc:
            if exc.status == 404:
                return False
            raise
        return True
