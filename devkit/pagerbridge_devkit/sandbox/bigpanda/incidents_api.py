"""BigPanda Incidents API v2, the part the relay writes to and reads from.

- ``POST /resources/v2.0/environments/{env}/incidents/{id}/resolve`` ``{"comments": ...}``
  -> 202; 409 when already resolved.
- ``POST .../incidents/{id}/comments`` ``{"comment": ...}`` -> 204. The comment lands on
  the incident like any other and is shared by webhook, so the relay sees its own
  comments come back (as with the real service).
- ``GET .../environments/{env}/incidents/{id}`` -> 200 with the incident.
- ``GET /resources/v2.0/incidents/{id}/activities`` -> 200 ``{"activities": [...]}``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pagerbridge_devkit.sandbox.bigpanda.guard import Guard, error, json_object, validation_errors
from pagerbridge_devkit.sandbox.bigpanda.store import (
    AlreadyResolved,
    IncidentNotFound,
    IncidentStore,
)

PREFIX = "/resources/v2.0"
_INCIDENT = PREFIX + "/environments/{environment_id}/incidents/{incident_id}"


class ResolveBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    comments: str = Field(min_length=1)


class CommentBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    comment: str = Field(min_length=1)


_Body = TypeVar("_Body", bound=BaseModel)


@dataclass(frozen=True)
class ApiWrite:
    """A write the Incidents API accepted (what the relay did to BigPanda)."""

    incident_id: str
    kind: str  # "comment" | "resolve"
    text: str
    user: str
    at: float


class IncidentsApi:
    def __init__(self, store: IncidentStore, guard: Guard) -> None:
        self.store = store
        self.guard = guard
        self._lock = threading.Lock()
        self._writes: list[ApiWrite] = []

    def writes(self, incident_id: str | None = None, kind: str | None = None) -> list[ApiWrite]:
        with self._lock:
            return [
                w
                for w in self._writes
                if (incident_id is None or w.incident_id == incident_id)
                and (kind is None or w.kind == kind)
            ]

    def _note(self, incident_id: str, kind: str, text: str, user: str) -> None:
        with self._lock:
            self._writes.append(ApiWrite(incident_id, kind, text, user, time.time()))

    def _environment_error(self, request: Request) -> Response | None:
        if request.path_params["environment_id"] != self.store.environment_id:
            return error(404, "Environment not found")
        return None

    async def _write_request(
        self, request: Request, route: str, model: type[_Body]
    ) -> tuple[str, _Body] | Response:
        """Auth, environment and body checks shared by the write endpoints: the caller's
        user and the parsed body, or the error response to send."""
        user = self.guard.check(request, "POST " + _INCIDENT + route)
        if isinstance(user, Response):
            return user
        if (missing := self._environment_error(request)) is not None:
            return missing
        body = await json_object(request)
        if isinstance(body, JSONResponse):
            return body
        try:
            return user, model.model_validate(body)
        except ValidationError as exc:
            return validation_errors(exc)

    async def resolve(self, request: Request) -> Response:
        checked = await self._write_request(request, "/resolve", ResolveBody)
        if isinstance(checked, Response):
            return checked
        user, parsed = checked
        incident_id = request.path_params["incident_id"]
        try:
            self.store.resolve(incident_id, by=user, comment=parsed.comments)
        except IncidentNotFound:
            return error(404, "Incident not found")
        except AlreadyResolved:
            return error(409, "Incident is already resolved")
        self._note(incident_id, "resolve", parsed.comments, user)
        return JSONResponse({"status": 202, "data": {}}, status_code=202)

    async def comment(self, request: Request) -> Response:
        checked = await self._write_request(request, "/comments", CommentBody)
        if isinstance(checked, Response):
            return checked
        user, parsed = checked
        incident_id = request.path_params["incident_id"]
        try:
            self.store.add_comment(incident_id, parsed.comment, by=user)
        except IncidentNotFound:
            return error(404, "Incident not found")
        self._note(incident_id, "comment", parsed.comment, user)
        return Response(status_code=204)

    async def get_incident(self, request: Request) -> Response:
        if isinstance(refused := self.guard.check(request, "GET " + _INCIDENT), Response):
            return refused
        if (missing := self._environment_error(request)) is not None:
            return missing
        try:
            incident = self.store.get(request.path_params["incident_id"])
        except IncidentNotFound:
            return error(404, "Incident not found")
        return JSONResponse(incident.to_payload())

    async def activities(self, request: Request) -> Response:
        endpoint = "GET " + PREFIX + "/incidents/{id}/activities"
        if isinstance(refused := self.guard.check(request, endpoint), Response):
            return refused
        try:
            entries = self.store.activities(request.path_params["incident_id"])
        except IncidentNotFound:
            return error(404, "Incident not found")
        body: dict[str, Any] = {"activities": [a.to_dict() for a in entries]}
        return JSONResponse(body)

    def routes(self) -> list[Route]:
        return [
            Route(_INCIDENT + "/resolve", self.resolve, methods=["POST"]),
            Route(_INCIDENT + "/comments", self.comment, methods=["POST"]),
            Route(_INCIDENT, self.get_incident, methods=["GET"]),
            Route(PREFIX + "/incidents/{incident_id}/activities", self.activities, methods=["GET"]),
        ]
