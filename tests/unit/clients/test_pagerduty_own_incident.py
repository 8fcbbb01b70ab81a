"""The look-up that tells the relay's own PagerDuty incident from others with the same
``incident_key`` (issue 27), against the PagerDuty simulator: the service filter, the
first-trigger time bound, the earliest match."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from pagerbridge.clients.pagerduty_incidents import PagerDutyIncidentsClient, service_of
from pagerbridge_devkit.sandbox.pagerduty import (
    DEFAULT_API_TOKEN,
    DEFAULT_ROUTING_KEY,
    DEFAULT_SERVICE_ID,
    PagerDutySimulator,
)
from pagerbridge_devkit.sandbox.server import BackgroundServer

OTHER_KEY = "a1" * 16


@pytest.fixture
def pd() -> Iterator[tuple[PagerDutySimulator, str]]:
    sim = PagerDutySimulator()
    sim.add_service("POTHER1", OTHER_KEY, "another team's service")
    with sim, BackgroundServer(sim.app) as server:
        yield sim, server.url


def _trigger(url: str, routing_key: str, dedup_key: str) -> None:
    answer = httpx.post(
        url + "/v2/enqueue",
        json={
            "routing_key": routing_key,
            "event_action": "trigger",
            "dedup_key": dedup_key,
            "payload": {"summary": "s", "source": "src", "severity": "info"},
        },
    )
    assert answer.status_code == 202


def test_only_the_incident_our_trigger_produced_matches(pd) -> None:
    sim, url = pd
    key = "bp-incident-42"
    _trigger(url, OTHER_KEY, key)  # someone else's, earlier, on another service
    # created_at has one-second precision (as PagerDuty's): ours in the next second.
    time.sleep(1.05 - time.time() % 1)
    ours_from = float(int(time.time()))
    _trigger(url, DEFAULT_ROUTING_KEY, key)
    time.sleep(0.01)
    _trigger(url, OTHER_KEY, key + "-x")  # unrelated key

    async def main() -> tuple[object, ...]:
        async with httpx.AsyncClient() as http:
            client = PagerDutyIncidentsClient(http, url, DEFAULT_API_TOKEN)
            by_service = await client.find_by_incident_key(key, service_id=DEFAULT_SERVICE_ID)
            by_time = await client.find_by_incident_key(key, since=ours_from)
            anyone = await client.find_by_incident_key(key)
            none_yet = await client.find_by_incident_key(key, since=time.time() + 5)
            wrong = await client.find_by_incident_key(key, service_id="PNOSUCH")
            return by_service, by_time, anyone, none_yet, wrong

    by_service, by_time, anyone, none_yet, wrong = asyncio.run(main())
    assert isinstance(by_service, dict)
    assert service_of(by_service) == DEFAULT_SERVICE_ID
    assert isinstance(by_time, dict)
    assert by_time["id"] == by_service["id"]
    # Without either bound the earliest wins: the foreign one (what the bounds are for).
    assert isinstance(anyone, dict)
    assert service_of(anyone) == "POTHER1"
    assert none_yet is None
    assert wrong is None
    assert len([i for i in sim.incidents() if i.incident_key == key]) == 2
