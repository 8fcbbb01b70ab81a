"""The PagerDuty webhook-subscription client against the PagerDuty simulator (real HTTP)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pagerbridge.clients.egress import EgressPolicy
from pagerbridge.clients.errors import ServerError, Unauthorized
from pagerbridge.clients.pagerduty_subscriptions import SUBSCRIBED_EVENTS, PagerDutySubscriptions
from pagerbridge_devkit.sandbox.pagerduty import (
    DEFAULT_API_TOKEN,
    DEFAULT_SERVICE_ID,
    PagerDutySimulator,
)
from pagerbridge_devkit.sandbox.server import BackgroundServer

LOOPBACK = EgressPolicy.parse(["127.0.0.1"], allow_http=True)


@pytest.fixture
def pd() -> Iterator[tuple[PagerDutySimulator, str]]:
    sim = PagerDutySimulator()
    with BackgroundServer(sim.app) as server:
        yield sim, server.url
    sim.close()


async def test_create_get_list_delete(pd: tuple[PagerDutySimulator, str]) -> None:
    _, url = pd
    async with PagerDutySubscriptions(url, DEFAULT_API_TOKEN, policy=LOOPBACK) as client:
        created = await client.create(
            "https://relay.example.com/v1/pagerduty/webhook", DEFAULT_SERVICE_ID, "test"
        )
        assert created.delivery_method.secret
        assert set(created.events) == set(SUBSCRIBED_EVENTS)
        assert created.filter is not None
        assert created.filter.id == DEFAULT_SERVICE_ID
        fetched = await client.get(created.id)
        assert fetched is not None
        assert fetched.delivery_method.secret is None  # only returned once
        assert [s.id for s in await client.list()] == [created.id]
        assert await client.delete(created.id) is True
        assert await client.delete(created.id) is False
        assert await client.get(created.id) is None


async def test_errors_are_classified_and_carry_no_token(pd: tuple[PagerDutySimulator, str]) -> None:
    sim, url = pd
    async with PagerDutySubscriptions(url, "wrong-token-value", policy=LOOPBACK) as client:
        with pytest.raises(Unauthorized) as refused:
            await client.list()
        assert "wrong-token-value" not in str(refused.value)
    sim.faults.fail_next(1, 503, path_prefix="/webhook_subscriptions")
    async with PagerDutySubscriptions(url, DEFAULT_API_TOKEN, policy=LOOPBACK) as client:
        with pytest.raises(ServerError):
            await client.list()
