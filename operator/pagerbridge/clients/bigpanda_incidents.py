"""BigPanda Incidents API v2 (``/resources/v2.0/environments/{env}/incidents/{id}...``):
resolve, comment, read, and the incident's activity feed
(``GET /resources/v2.0/incidents/{id}/activities``: the comments already on it).
``Authorization: Bearer <API key>``. A resolve answered 409 means "already resolved" and is
reported as ``False``, not raised."""

from __future__ import annotations

from typing import Any

import httpx

from pagerbridge.clients._http import CallLimits, call
from pagerbridge.clients._http import path_segment as _seg
from pagerbridge.clients.errors import Conflict


class BigPandaIncidentsClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        api_url: str,
        token: str,
        environment_id: str,
        limits: CallLimits | None = None,
    ) -> None:
        self._http = http
        self._limits = limits or CallLimits()
        self._base = f"{api_url.rstrip('/')}/resources/v2.0/environments/{environment_id}/incidents"
        self._feed = f"{api_url.rstrip('/')}/resources/v2.0/incidents"
        self._headers = {"Authorization": f"Bearer {token}"}

    async def _call(
        self, what: str, method: str, path: str, json_body: Any = None
    ) -> httpx.Response:
        return await call(
            self._http,
            what,
            method,
            self._base + path,
            self._limits,
            json_body=json_body,
            headers=self._headers,
        )

    async def resolve(self, incident_id: str, comments: str) -> bool:
        """True when this call resolved it, False when it already was resolved (409)."""
        try:
            await self._call(
                "POST /incidents/{id}/resolve",
                "POST",
                f"/{_seg(incident_id)}/resolve",
                {"comments": comments},
            )
        except Conflict:
            return False
        return True

    async def comment(self, incident_id: str, comment: str) -> None:
        await self._call(
            "POST /incidents/{id}/comments",
            "POST",
            f"/{_seg(incident_id)}/comments",
            {"comment": comment},
        )

    async def comment_texts(self, incident_id: str) -> list[str]:
        """The text of every comment in the incident's activity feed (leniently read:
        an entry's ``comment`` or ``text``; BigPanda documents no schema for entries)."""
        response = await call(
            self._http,
            "GET /incidents/{id}/activities",
            "GET",
            f"{self._feed}/{_seg(incident_id)}/activities",
            self._limits,
            headers=self._headers,
        )
        try:
            body = response.json()
        except ValueError:
            return []
        entries = body.get("activities") if isinstance(body, dict) else body
        texts: list[str] = []
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict):
                text = entry.get("comment", entry.get("text"))
                if isinstance(text, str):
                    texts.append(text)
        return texts

    async def get_incident(self, incident_id: str) -> dict[str, Any]:
        response = await self._call("GET /incidents/{id}", "GET", f"/{_seg(incident_id)}")
        try:
            body = response.json()
        except ValueError:
            return {}
        if isinstance(body, dict) and isinstance(body.get("incident"), dict):
            inner: dict[str, Any] = body["incident"]
            return inner
        return body if isinstance(body, dict) else {}
