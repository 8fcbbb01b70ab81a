"""The one way the operator's PagerDuty REST clients open their session.

The base URL comes from a tenant's CR, so it is checked against the egress policy first and
every call goes through the guarded transport; the token is sent as
``Authorization: Token token=...`` and never appears in a message.
"""

from __future__ import annotations

from typing import Self

import httpx

from pagerbridge.clients._http import DEFAULT_TIMEOUT, CallLimits
from pagerbridge.clients.egress import EgressPolicy
from pagerbridge.clients.errors import EgressRefused
from pagerbridge.clients.guard import GuardedTransport


class PagerDutyRestSession:
    """``async with Subclass(api_url, token, policy=...) as client: ...``."""

    def __init__(
        self,
        api_url: str,
        api_token: str,
        *,
        policy: EgressPolicy,
        limits: CallLimits | None = None,
    ) -> None:
        try:
            policy.check_url(api_url)
        except EgressRefused as exc:
            raise EgressRefused(f"PagerDuty REST API: {exc}") from None
        self._limits = limits or CallLimits()
        self._http = httpx.AsyncClient(
            base_url=api_url.rstrip("/"),
            timeout=DEFAULT_TIMEOUT,
            transport=GuardedTransport(policy),
            trust_env=False,
            headers={
                "Authorization": f"Token token={api_token}",
                "Accept": "application/vnd.pagerduty+json;version=2",
                "Content-Type": "application/json",
            },
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._http.aclose()
