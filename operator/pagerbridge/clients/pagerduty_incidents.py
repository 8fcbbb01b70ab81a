"""PagerDuty REST API v2, the incident calls the relay needs: find by ``incident_key``, get,
notes (list, create), resolve. ``Authorization: Token token=...``; writes carry ``From``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from pagerbridge.clients._http import CallLimits, call
from pagerbridge.clients._http import path_segment as _seg

ACCEPT = "application/vnd.pagerduty+json;version=2"


class PagerDutyIncidentsClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        api_url: str,
        token: str,
        from_email: str | None = None,
        limits: CallLimits | None = None,
    ) -> None:
        self._http = http
        self._limits = limits or CallLimits()
        self._base = api_url.rstrip("/")
        self._headers = {"Authorization": f"Token token={token}", "Accept": ACCEPT}
        self._from = from_email

    def _write_headers(self) -> dict[str, str]:
        headers = dict(self._headers)
        if self._from:
            headers["From"] = self._from
        return headers

    async def _call(
        self,
        what: str,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json_body: Any = None,
        write: bool = False,
    ) -> httpx.Response:
        headers = self._write_headers() if write else self._headers
        return await call(
            self._http,
            what,
            method,
            self._base + path,
            self._limits,
            params=params,
            json_body=json_body,
            headers=headers,
        )

    async def find_by_incident_key(
        self,
        incident_key: str,
        service_id: str | None = None,
        since: float | None = None,
    ) -> dict[str, Any] | None:
        """The incident a relay's trigger with Events v2 ``dedup_key`` = ``incident_key``
        produced: on ``service_id`` when known (the routing key's service), created at or
        after ``since`` (the trigger's first attempt, seconds since the epoch, less the
        allowed clock skew) when known, the earliest of those; None when none matches.
        Other integrations may use the same key on other services, before or after ours."""
        params: dict[str, str] = {"incident_key": incident_key, "date_range": "all"}
        if service_id:
            params["service_ids[]"] = service_id
        response = await self._call("GET /incidents", "GET", "/incidents", params=params)
        incidents = _obj(response).get("incidents")
        if not isinstance(incidents, list):
            return None
        matching = [
            i
            for i in incidents
            if isinstance(i, dict)
            and i.get("incident_key") == incident_key
            and (service_id is None or service_of(i) == service_id)
            and (since is None or (_created(i) or 0.0) >= since)
        ]
        if not matching:
            return None
        return min(matching, key=lambda i: _created(i) or 0.0)

    async def get_incident(self, incident_id: str) -> dict[str, Any]:
        response = await self._call("GET /incidents/{id}", "GET", f"/incidents/{_seg(incident_id)}")
        incident = _obj(response).get("incident")
        return incident if isinstance(incident, dict) else {}

    async def list_notes(self, incident_id: str) -> list[dict[str, Any]]:
        response = await self._call(
            "GET /incidents/{id}/notes", "GET", f"/incidents/{_seg(incident_id)}/notes"
        )
        notes = _obj(response).get("notes")
        return [n for n in notes if isinstance(n, dict)] if isinstance(notes, list) else []

    async def create_note(self, incident_id: str, content: str) -> dict[str, Any]:
        response = await self._call(
            "POST /incidents/{id}/notes",
            "POST",
            f"/incidents/{_seg(incident_id)}/notes",
            json_body={"note": {"content": content}},
            write=True,
        )
        note = _obj(response).get("note")
        return note if isinstance(note, dict) else {}

    async def resolve(self, incident_id: str) -> dict[str, Any]:
        response = await self._call(
            "PUT /incidents/{id}",
            "PUT",
            f"/incidents/{_seg(incident_id)}",
            json_body={"incident": {"type": "incident_reference", "status": "resolved"}},
            write=True,
        )
        incident = _obj(response).get("incident")
        return incident if isinstance(incident, dict) else {}


def service_of(incident: dict[str, Any]) -> str | None:
    """The id of the service an incident (REST or webhook form) is on."""
    service = incident.get("service")
    found = service.get("id") if isinstance(service, dict) else None
    return found if isinstance(found, str) else None


def _created(incident: dict[str, Any]) -> float | None:
    value = incident.get("created_at")
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


def _obj(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
