"""BigPanda Incidents API v2 (``/resources/v2.0/environments/{env}/incidents/{id}...``):
resolve, comment, read. ``Authorization: Bearer <API key>``. A resolve answered 409 means
"already resolved" and is reported as ``False``, not raised."""

from __future__ import annotations

from typing import Any

import httpx

from pagerbridge.clients._http import path_segment as _seg
from pagerbridge.clients._http import send
from pagerbridge.clients.errors import Conflict


class BigPandaIncidentsClient:
    def __init__(
        self, http: httpx.AsyncClient, api_url: str, token: str, environment_id: str
    ) -> None:
        self._http = http
        self._base = f"{api_url.rstrip('/')}/resources/v2.0/environments/{environment_id}/incidents"
        self._headers = {"Authorization": f"Bearer {token}"}

    async def resolve(self, incident_id: str, comments: str) -> bool:
        """True when this call resolved it, False when it already was resolved (409)."""
        try:
            await send(
                "POST /incidents/{id}/resolve",
                lambda: self._http.post(
                    f"{self._base}/{_seg(incident_id)}/resolve",
                    json={"comments": comments},
                    headers=self._headers,
                ),
            )
        except Conflict:
            return False
        return True

    async def comment(self, incident_id: str, comment: str) -> None:
        await send(
            "POST /incidents/{id}/comments",
            lambda: self._http.post(
                f"{self._base}/{_seg(incident_id)}/comments",
                json={"comment": comment},
                headers=self._headers,
            ),
        )

    async def get_incident(self, incident_id: str) -> dict[str, Any]:
        response = await send(
            "GET /incidents/{id}",
            lambda: self._http.get(f"{self._base}/{_seg(incident_id)}", headers=self._headers),
        )
        try:
            body = response.json()
        except ValueError:
            return {}
        if isinstance(body, dict) and isinstance(body.get("incident"), dict):
            inner: dict[str, Any] = body["incident"]
            return inner
        return body if isinstance(body, dict) else {}
