"""The relay's admin API, on the internal port only: see and replay the outbox.

- ``GET  /admin/v1/pending``: jobs waiting in the outbox, oldest first;
- ``GET  /admin/v1/dead-letters``: jobs given up, with status and error;
- ``POST /admin/v1/dead-letters/{job_id}/replay``: put one back (202), see
  :meth:`pagerbridge.relay.outbox.port.OutboxPort.replay_dead_letter` for the per-incident
  order rule.

Authentication: ``Authorization: Bearer <token>`` or ``X-PagerBridge-Admin-Token: <token>``
(the API server's pod proxy, which ``pagerbridge outbox`` uses, keeps ``Authorization`` for
itself), the token being a line of the file ``adminTokenFile`` of the RelayConfig names (the
operator mounts its generated per-integration Secret ``<name>-relay-admin`` there; several
lines during a rotation). Compared in constant time, never logged. Without
``adminTokenFile`` the API answers 404: it is off.

Every refusal is a JSON ``{"error", "message"}``: 401 (no or bad token), 404 (off, no such
dead letter), 409 (the dead letter's incident still has pending jobs), 429 with
``Retry-After`` (too many failed token attempts from this source,
:mod:`pagerbridge.relay.throttle`), 503 (outbox closed).
Payloads are not listed: they carry incident content, and an operator needs only kind,
incident (ordering key), age, attempts and error to decide on a replay.
"""

from __future__ import annotations

import hmac
import logging
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pagerbridge.api.contract import RELAY_ADMIN_TOKEN_HEADER
from pagerbridge.relay.config.watch import SettingsHolder
from pagerbridge.relay.errors import InboundError, NotConfigured, SenderUnauthorized
from pagerbridge.relay.inbound.common import check_bearer
from pagerbridge.relay.inbound.sweep import RepairSweep
from pagerbridge.relay.outbound.dispatcher import Dispatcher
from pagerbridge.relay.outbox.port import OutboxAdmin, OutboxClosed, ReplayConflict
from pagerbridge.relay.throttle import FailedAttempts

logger = logging.getLogger(__name__)


class NoSuchDeadLetter(InboundError):
    status = 404
    code = "not_found"


class ReplayRefused(InboundError):
    status = 409
    code = "conflict"


class OutboxUnavailable(InboundError):
    status = 503
    code = "outbox_unavailable"


class TooManyAttempts(InboundError):
    status = 429
    code = "too_many_attempts"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed admin token attempts; retry in {retry_after}s")
        self.retry_after = retry_after


def _error(exc: InboundError) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyAttempts) else None
    return JSONResponse(
        {"error": exc.code, "message": exc.message}, status_code=exc.status, headers=headers
    )


class AdminApi:
    def __init__(
        self,
        holder: SettingsHolder,
        outbox: OutboxAdmin,
        dispatcher: Dispatcher,
        attempts: FailedAttempts | None = None,
        sweep: RepairSweep | None = None,
    ) -> None:
        self.holder = holder
        self.outbox = outbox
        self.dispatcher = dispatcher
        self.sweep = sweep
        self.attempts = attempts or FailedAttempts()

    def _authorize(self, request: Request) -> None:
        tokens = self.holder.current.secrets.admin_tokens
        if not tokens:
            raise NotConfigured("the admin API is off (no adminTokenFile in the relay config)")
        source = request.client.host if request.client else ""
        wait = self.attempts.retry_after(source)
        if wait is not None:
            raise TooManyAttempts(wait)  # the token is not even looked at
        try:
            self._check_token(request, tokens)
        except SenderUnauthorized:
            self.attempts.failed(source)
            raise
        self.attempts.succeeded(source)

    def _check_token(self, request: Request, tokens: tuple[str, ...]) -> None:
        try:
            presented = request.headers.get(RELAY_ADMIN_TOKEN_HEADER)
            if presented is None:
                check_bearer(request, tokens)
                return
            given = presented.strip().encode("utf-8", "replace")
            ok = False
            for token in tokens:
                ok |= hmac.compare_digest(given, token.encode())
            if not ok:
                raise SenderUnauthorized("invalid admin token")
        except SenderUnauthorized:
            logger.warning(
                "admin request refused: bad or missing token", extra={"path": request.url.path}
            )
            raise

    async def pending(self, request: Request) -> Response:
        try:
            self._authorize(request)
            jobs = await self.outbox.pending()
        except InboundError as exc:
            return _error(exc)
        except OutboxClosed as exc:
            return _error(OutboxUnavailable(str(exc)))
        now = time.time()
        items: list[dict[str, Any]] = [
            {
                "id": job.id,
                "kind": job.kind,
                "orderingKey": job.ordering_key,
                "ageSeconds": round(max(0.0, now - job.created_at), 3),
                "attempts": job.attempts,
            }
            for job in jobs
        ]
        return JSONResponse({"pending": items})

    async def drift(self, request: Request) -> Response:
        """What the repair sweep's next pass would repair, without repairing it."""
        try:
            self._authorize(request)
            if self.sweep is None:
                raise NotConfigured("no repair sweep in this relay")
            checked, found = await self.sweep.drift()
        except InboundError as exc:
            return _error(exc)
        except OutboxClosed as exc:
            return _error(OutboxUnavailable(str(exc)))
        items = [
            {
                "incidentId": d.incident_id,
                "pagerDutyIncidentId": d.pd_incident_id,
                "bigPandaActive": d.bigpanda_active,
                "pagerDutyStatus": d.pagerduty_status,
                "repair": d.repair,
                "reason": d.reason,
            }
            for d in found
        ]
        return JSONResponse({"checked": checked, "drift": items})

    async def dead_letters(self, request: Request) -> Response:
        try:
            self._authorize(request)
            letters = await self.outbox.dead_letters()
        except InboundError as exc:
            return _error(exc)
        except OutboxClosed as exc:
            return _error(OutboxUnavailable(str(exc)))
        items = [
            {
                "id": letter["job_id"],
                "kind": letter["kind"],
                "orderingKey": letter["ordering_key"],
                "status": letter["status"],
                "error": letter["error"],
            }
            for letter in letters
        ]
        return JSONResponse({"deadLetters": items})

    async def replay(self, request: Request) -> Response:
        try:
            self._authorize(request)
            raw = request.path_params["job_id"]
            try:
                job_id = int(raw)
            except ValueError:
                raise NoSuchDeadLetter(f"no dead letter {raw!r}") from None
            try:
                replayed = await self.outbox.replay_dead_letter(job_id)
            except ReplayConflict:
                raise ReplayRefused(
                    f"job {job_id}'s incident still has pending jobs; replay it once they "
                    "are delivered or dead-lettered (per-incident order)"
                ) from None
            if not replayed:
                raise NoSuchDeadLetter(f"no dead letter with id {job_id}")
            job = next((j for j in await self.outbox.pending() if j.id == job_id), None)
        except InboundError as exc:
            return _error(exc)
        except OutboxClosed as exc:
            return _error(OutboxUnavailable(str(exc)))
        if job is not None:  # else already delivered by another replica (shared store)
            self.dispatcher.submit([job])
        logger.info("dead letter replayed", extra={"job_id": job_id})
        return JSONResponse({"replayed": job_id}, status_code=202)
