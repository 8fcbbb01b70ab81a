"""``/_sandbox`` routes of the BigPanda simulator: play BigPanda's users over HTTP.

For out-of-process tests and people running ``pagerbridge sandbox``: open, update,
comment on and resolve incidents, add webhook targets, change the rate limit, and
inspect incidents, deliveries, integrations and API writes. No auth (loopback only).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pagerbridge_devkit.sandbox.bigpanda.guard import error, json_object, validation_errors
from pagerbridge_devkit.sandbox.bigpanda.store import AlreadyResolved, IncidentNotFound

if TYPE_CHECKING:
    from pagerbridge_devkit.sandbox.bigpanda.app import BigPandaSimulator


M = TypeVar("M", bound=BaseModel)


class OpenIncident(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alerts: list[dict[str, Any]] = Field(min_length=1)
    incident_tags: list[dict[str, Any]] = Field(default_factory=list)
    status: str | None = None
    id: str | None = None


class UpdateIncident(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: str | None = None
    alerts: list[dict[str, Any]] | None = None
    incident_tags: list[dict[str, Any]] | None = None


class AddComment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1)
    by: str = "user@example.com"


class AddTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict)
    wrap: bool = False


class RateLimit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests_per_second: float | None = Field(gt=0)


def admin_routes(sim: BigPandaSimulator) -> list[Route]:
    async def parse(request: Request, model: type[M]) -> M | Response:
        body = await json_object(request)
        if isinstance(body, JSONResponse):
            return body
        try:
            return model.model_validate(body)
        except ValidationError as exc:
            return validation_errors(exc)

    async def list_incidents(_: Request) -> Response:
        return JSONResponse([i.to_payload() for i in sim.store.all()])

    async def open_incident(request: Request) -> Response:
        parsed = await parse(request, OpenIncident)
        if isinstance(parsed, Response):
            return parsed
        try:
            incident = sim.store.open(
                parsed.alerts, parsed.incident_tags, parsed.status, incident_id=parsed.id
            )
        except ValueError as exc:
            return error(400, str(exc))
        return JSONResponse(incident.to_payload(), status_code=201)

    async def get_incident(request: Request) -> Response:
        try:
            return JSONResponse(sim.incident(request.path_params["incident_id"]).to_payload())
        except IncidentNotFound:
            return error(404, "Incident not found")

    async def update_incident(request: Request) -> Response:
        parsed = await parse(request, UpdateIncident)
        if isinstance(parsed, Response):
            return parsed
        try:
            incident = sim.store.update(
                request.path_params["incident_id"],
                status=parsed.status,
                alerts=parsed.alerts,
                incident_tags=parsed.incident_tags,
            )
        except IncidentNotFound:
            return error(404, "Incident not found")
        except (ValueError, AlreadyResolved) as exc:
            return error(409 if isinstance(exc, AlreadyResolved) else 400, str(exc))
        return JSONResponse(incident.to_payload())

    async def comment(request: Request) -> Response:
        parsed = await parse(request, AddComment)
        if isinstance(parsed, Response):
            return parsed
        try:
            added = sim.add_comment(request.path_params["incident_id"], parsed.text, by=parsed.by)
        except IncidentNotFound:
            return error(404, "Incident not found")
        return JSONResponse(added, status_code=201)

    async def resolve(request: Request) -> Response:
        try:
            incident = sim.resolve_incident(request.path_params["incident_id"])
        except IncidentNotFound:
            return error(404, "Incident not found")
        except AlreadyResolved:
            return error(409, "Incident is already resolved")
        return JSONResponse(incident.to_payload())

    async def add_target(request: Request) -> Response:
        parsed = await parse(request, AddTarget)
        if isinstance(parsed, Response):
            return parsed
        target_id = sim.add_webhook_target(parsed.url, headers=parsed.headers, wrap=parsed.wrap)
        return JSONResponse({"id": target_id}, status_code=201)

    async def list_targets(_: Request) -> Response:
        return JSONResponse([t.to_dict() for t in sim.targets.all()])

    async def deliveries(_: Request) -> Response:
        return JSONResponse([a.to_dict() for a in sim.webhook_deliveries])

    async def integrations(_: Request) -> Response:
        return JSONResponse([i.to_api() for i in sim.integrations.all()])

    async def api_writes(_: Request) -> Response:
        return JSONResponse(
            [
                {"incident_id": w.incident_id, "kind": w.kind, "text": w.text, "user": w.user}
                for w in sim.incidents_api.writes()
            ]
        )

    async def rate_limit(request: Request) -> Response:
        parsed = await parse(request, RateLimit)
        if isinstance(parsed, Response):
            return parsed
        sim.set_rate_limit(parsed.requests_per_second)
        return JSONResponse({"requests_per_second": parsed.requests_per_second})

    one = "/_sandbox/incidents/{incident_id}"
    return [
        Route("/_sandbox/incidents", list_incidents, methods=["GET"]),
        Route("/_sandbox/incidents", open_incident, methods=["POST"]),
        Route(one, get_incident, methods=["GET"]),
        Route(one, update_incident, methods=["PATCH"]),
        Route(one + "/comments", comment, methods=["POST"]),
        Route(one + "/resolve", resolve, methods=["POST"]),
        Route("/_sandbox/webhook-targets", add_target, methods=["POST"]),
        Route("/_sandbox/webhook-targets", list_targets, methods=["GET"]),
        Route("/_sandbox/webhook-deliveries", deliveries, methods=["GET"]),
        Route("/_sandbox/integrations", integrations, methods=["GET"]),
        Route("/_sandbox/api-writes", api_writes, methods=["GET"]),
        Route("/_sandbox/rate-limit", rate_limit, methods=["POST"]),
    ]
