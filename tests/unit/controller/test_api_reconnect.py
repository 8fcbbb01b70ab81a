"""After an API server outage (issue 23): kopf's retry series never runs out and stays
under its cap, a 404 to kopf's list or watch is a disconnect kopf retries, and reconciles
that failed meanwhile run again as soon as the server answers (real asyncio, a real HTTP
server on loopback; the end-to-end proof is tests/e2e/controller/test_apiserver_restart.py).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sized

import aiohttp
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from pagerbridge.clients.kubernetes import KubernetesError
from pagerbridge.controller.reconcile.api_recovery import ApiRecovery
from pagerbridge.controller.reconcile.queue import WorkQueue
from pagerbridge.controller.runtime.reconnect import (
    FIRST_DELAY,
    KindNotServed,
    ReconnectBackoff,
    missing_kind_as_disconnect,
)
from pagerbridge_devkit.sandbox.server import BackgroundServer


def test_the_retry_series_never_runs_out_and_stays_under_its_cap() -> None:
    series = ReconnectBackoff(2.0)
    # kopf escalates once a *sized* series is used up; this one it must retry forever.
    assert not isinstance(series, Sized)
    first = list(itertools.islice(series, 50))
    assert first[0] == FIRST_DELAY
    assert max(first) == 2.0
    assert first == sorted(first)  # never shrinks below what it reached
    assert list(itertools.islice(series, 50)) == first  # every request starts afresh
    assert list(itertools.islice(ReconnectBackoff(0.1), 3)) == [0.1, 0.1, 0.1]
    with pytest.raises(ValueError, match="positive"):
        ReconnectBackoff(0)


def _not_found(request: Request) -> JSONResponse:
    return JSONResponse({"kind": "Status", "code": 404}, status_code=404)


async def test_a_404_to_a_get_is_a_disconnect_and_other_answers_pass() -> None:
    app = Starlette(routes=[Route("/{path:path}", _not_found, methods=["GET", "PATCH"])])
    with BackgroundServer(app) as server:
        async with aiohttp.ClientSession(middlewares=(missing_kind_as_disconnect,)) as session:
            with pytest.raises(KindNotServed) as caught:
                await session.get(f"{server.url}/apis/pagerbridge.io/v1alpha1/x?watch=true")
            # kopf retries ClientConnectionError (and only that) like a dropped stream.
            assert isinstance(caught.value, aiohttp.ClientConnectionError)
            assert "/apis/pagerbridge.io/v1alpha1/x" in str(caught.value)
            patched = await session.patch(f"{server.url}/apis/pagerbridge.io/v1alpha1/x")
            assert patched.status == 404  # a write's 404 is kopf's to handle, unchanged
            patched.release()


class FlakyServer:
    """A KubernetesPort whose API server is away until ``back`` is set."""

    def __init__(self) -> None:
        self.back = False
        self.probes = 0

    async def server_version(self) -> str:
        self.probes += 1
        if not self.back:
            raise KubernetesError("GET /version: ConnectError", None)
        return "v1.34.0"


async def test_reconciles_that_failed_during_an_outage_run_once_the_server_answers() -> None:
    runs: list[str] = []
    rerun = asyncio.Event()

    async def handler(key: str) -> float | None:
        runs.append(key)
        if len(runs) > 1:
            rerun.set()
            return None
        return 3600.0  # a backoff far beyond the test: only the recovery can re-run it

    queue: WorkQueue[str] = WorkQueue(handler, 1)
    server = FlakyServer()
    recovery = ApiRecovery(server, queue, 0.01)  # type: ignore[arg-type]
    queue.start()
    task = asyncio.create_task(recovery.run())
    try:
        queue.add("ns/survivor")
        while server.probes < 3:  # the key waits on its timer; the server is probed
            await asyncio.sleep(0.01)
        assert runs == ["ns/survivor"]
        server.back = True
        await asyncio.wait_for(rerun.wait(), timeout=5)
        assert runs == ["ns/survivor", "ns/survivor"]
        assert not queue.retrying
        probes = server.probes
        await asyncio.sleep(0.1)
        assert server.probes == probes  # nothing waits: no probing at all
    finally:
        task.cancel()
        await queue.stop()


async def test_a_server_that_never_went_away_requeues_nothing() -> None:
    runs: list[str] = []

    async def handler(key: str) -> float | None:
        runs.append(key)
        return 3600.0  # fails for a reason of its own (PagerDuty down, say)

    queue: WorkQueue[str] = WorkQueue(handler, 1)
    server = FlakyServer()
    server.back = True
    recovery = ApiRecovery(server, queue, 0.01)  # type: ignore[arg-type]
    queue.start()
    task = asyncio.create_task(recovery.run())
    try:
        queue.add("ns/other")
        while server.probes < 5:
            await asyncio.sleep(0.01)
        assert runs == ["ns/other"]  # its own backoff stands
        assert queue.retrying
    finally:
        task.cancel()
        await queue.stop()
