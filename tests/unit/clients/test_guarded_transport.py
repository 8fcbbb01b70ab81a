"""The guarded transport against real HTTP servers on 127.0.0.1: refused URLs and
addresses are never contacted, allowed ones work, and the refusal says nothing about
what listens there."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pagerbridge.clients.egress import EgressPolicy
from pagerbridge.clients.errors import EgressRefused, MalformedResponse, Unauthorized
from pagerbridge.clients.pagerduty_subscriptions import PagerDutySubscriptions
from pagerbridge_devkit.ports import free_port
from pagerbridge_devkit.sandbox.hostile import HostileUpstream, Mode
from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_API_TOKEN, PagerDutySimulator
from pagerbridge_devkit.sandbox.server import BackgroundServer


@pytest.fixture
def recorder() -> Iterator[tuple[HostileUpstream, int]]:
    app = HostileUpstream(Mode.MALFORMED)
    with BackgroundServer(app) as server:
        yield app, int(server.url.rsplit(":", 1)[1])


async def test_allowlisted_loopback_port_works() -> None:
    sim = PagerDutySimulator()
    with BackgroundServer(sim.app) as server:
        port = server.url.rsplit(":", 1)[1]
        policy = EgressPolicy.parse([f"127.0.0.1:{port}"], allow_http=True)
        async with PagerDutySubscriptions(server.url, DEFAULT_API_TOKEN, policy=policy) as c:
            assert await c.list() == []
    sim.close()


async def test_other_port_is_never_contacted(recorder: tuple[HostileUpstream, int]) -> None:
    app, port = recorder
    policy = EgressPolicy.parse([f"127.0.0.1:{free_port()}"], allow_http=True)
    with pytest.raises(EgressRefused) as refused:
        PagerDutySubscriptions(f"http://127.0.0.1:{port}", "tok-secret", policy=policy)
    assert "allowlist" in str(refused.value)
    assert app.seen == []


async def test_hostname_resolving_to_loopback_is_refused_at_connect(
    recorder: tuple[HostileUpstream, int],
) -> None:
    """``localhost`` is allowlisted by name, but it resolves to a loopback address that is
    not: the connection is refused after resolution, before any byte is sent."""
    app, port = recorder
    policy = EgressPolicy.parse([f"localhost:{port}"], allow_http=True)
    async with PagerDutySubscriptions(
        f"http://localhost:{port}", "tok-secret", policy=policy
    ) as client:
        with pytest.raises(EgressRefused) as refused:
            await client.list()
    assert "non-public address" in str(refused.value)
    assert "tok-secret" not in str(refused.value)
    assert app.seen == []
    # The same host with its network allowed by the admin is reachable.
    allowed = EgressPolicy.parse([f"localhost:{port}"], ["127.0.0.0/8", "::1/128"], allow_http=True)
    async with PagerDutySubscriptions(
        f"http://localhost:{port}", "tok-secret", policy=allowed
    ) as client:
        with pytest.raises(MalformedResponse):  # reached: the answer has the wrong shape
            await client.list()
    assert len(app.seen) == 1


async def test_refusal_does_not_tell_open_from_closed_port(
    recorder: tuple[HostileUpstream, int],
) -> None:
    """Status used to work as a port scanner (HTTP 403 vs ConnectError)."""
    _, open_port = recorder
    closed_port = free_port()
    policy = EgressPolicy.parse(["127.0.0.2"], allow_http=True)
    messages = []
    for port in (open_port, closed_port):
        with pytest.raises(EgressRefused) as refused:
            PagerDutySubscriptions(f"http://127.0.0.1:{port}", "t", policy=policy)
        messages.append(str(refused.value).replace(str(port), "PORT"))
    assert messages[0] == messages[1]


async def test_http_needs_the_admin_switch() -> None:
    sim = PagerDutySimulator()
    with BackgroundServer(sim.app) as server:
        policy = EgressPolicy.parse(["127.0.0.1"])
        with pytest.raises(EgressRefused, match="only https"):
            PagerDutySubscriptions(server.url, DEFAULT_API_TOKEN, policy=policy)
        wrong = EgressPolicy.parse(["127.0.0.1"], allow_http=True)
        async with PagerDutySubscriptions(server.url, "wrong", policy=wrong) as client:
            with pytest.raises(Unauthorized):
                await client.list()
    sim.close()
