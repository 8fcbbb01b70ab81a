"""The operator's external calls against a hostile upstream served by the test (a real
HTTP server on 127.0.0.1 that the test allowlists): every attack of issue 18.2 ends in a
classified client error (so a condition, never a crash loop), within the call limits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pagerbridge.clients._http import CallLimits
from pagerbridge.clients.bigpanda_integrations import BigPandaIntegrations
from pagerbridge.clients.egress import EgressPolicy
from pagerbridge.clients.errors import ConnectionFailed, MalformedResponse
from pagerbridge.clients.pagerduty_subscriptions import PagerDutySubscriptions
from pagerbridge.controller.errors import subscription_failure
from pagerbridge.controller.external.bigpanda_integration import failure
from pagerbridge_devkit.sandbox.hostile import PAGE_ITEMS, HostileUpstream, Mode
from pagerbridge_devkit.sandbox.server import BackgroundServer

LIMITS = CallLimits(deadline=2.0, max_response_bytes=256 * 1024, max_pages=5, max_items=1000)


@pytest.fixture
def hostile() -> Iterator[tuple[HostileUpstream, str, EgressPolicy]]:
    app = HostileUpstream(Mode.ENDLESS)
    with BackgroundServer(app) as server:
        port = server.url.rsplit(":", 1)[1]
        yield app, server.url, EgressPolicy.parse([f"127.0.0.1:{port}"], allow_http=True)


def client(url: str, policy: EgressPolicy, limits: CallLimits = LIMITS) -> PagerDutySubscriptions:
    return PagerDutySubscriptions(url, "token-value", policy=policy, limits=limits)


async def test_endless_listing_stops_at_the_page_cap(
    hostile: tuple[HostileUpstream, str, EgressPolicy],
) -> None:
    app, url, policy = hostile
    async with client(url, policy) as pd:
        with pytest.raises(MalformedResponse, match="still more after 5 pages") as err:
            await pd.list()
    assert len(app.seen) == LIMITS.max_pages
    assert subscription_failure(err.value).reason == "UpstreamMalformed"


async def test_endless_listing_stops_at_the_item_cap(
    hostile: tuple[HostileUpstream, str, EgressPolicy],
) -> None:
    app, url, policy = hostile
    limits = CallLimits(max_pages=100, max_items=3 * PAGE_ITEMS)
    async with client(url, policy, limits) as pd:
        with pytest.raises(MalformedResponse, match=f"more than {3 * PAGE_ITEMS}"):
            await pd.list()
    assert len(app.seen) == 4  # the fourth page crosses the cap


async def test_endless_body_is_cut_at_the_size_cap(
    hostile: tuple[HostileUpstream, str, EgressPolicy],
) -> None:
    app, url, policy = hostile
    app.mode = Mode.HUGE
    async with client(url, policy) as pd:
        with pytest.raises(MalformedResponse, match="larger than 262144 bytes"):
            await pd.list()
    # Read no further than the cap plus one chunk in flight (the server keeps writing
    # into socket buffers until it notices the hang-up, so count what we read, not sent).
    assert len(app.seen) == 1


async def test_dribbling_answer_is_cut_by_the_overall_deadline(
    hostile: tuple[HostileUpstream, str, EgressPolicy],
) -> None:
    """One byte every 0.2 s never trips a per-read timeout (10 s); the overall deadline
    (2 s here) ends the call. Without it this test would hang until pytest's timeout."""
    app, url, policy = hostile
    app.mode = Mode.DRIBBLE
    async with client(url, policy) as pd:
        with pytest.raises(ConnectionFailed, match="no complete answer within 2s") as err:
            await pd.get("PX")
    assert subscription_failure(err.value).reason == "SubscriptionFailed"  # transient


@pytest.mark.parametrize("call", ["get", "create"])
async def test_wrong_shape_is_a_condition_not_a_key_error(
    hostile: tuple[HostileUpstream, str, EgressPolicy], call: str
) -> None:
    app, url, policy = hostile
    app.mode = Mode.MALFORMED
    async with client(url, policy) as pd:
        answer = (
            pd.get("PX")
            if call == "get"
            else pd.create("https://relay.example/v1/pagerduty/webhook", "PSVC", "d")
        )
        with pytest.raises(MalformedResponse, match="webhook_subscription") as err:
            await answer
    mapped = subscription_failure(err.value)
    assert mapped.reason == "UpstreamMalformed"
    assert "token-value" not in mapped.message


async def test_bigpanda_wrong_shape_and_compression(
    hostile: tuple[HostileUpstream, str, EgressPolicy],
) -> None:
    app, url, policy = hostile
    app.mode = Mode.MALFORMED
    async with BigPandaIntegrations(url, "bp-key", policy=policy, limits=LIMITS) as bp:
        with pytest.raises(MalformedResponse) as err:
            await bp.get("x")
        assert failure(err.value).reason == "UpstreamMalformed"
        app.mode = Mode.GZIP
        with pytest.raises(MalformedResponse, match="compressed"):
            await bp.get("x")
