"""Every upstream call bounded, through a real relay process and a hostile Events API on
loopback (issue 25, item 2).

Invariants:
- an unrelated incident is delivered while 64 upstream answers drip (202, then a byte every
  5 s): the 202 is the answer, the dripping body is not waited for;
- one routing key whose calls hang holds at most its share of the delivery slots: an
  incident of another key is delivered while they still hang;
- a call that gets no answer is cut at its overall deadline and retried;
- a gzip bomb (510 KB inflating to 512 MiB) is never inflated: the relay's peak RSS stays
  within half the container's default limit (128 MiB).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pagerbridge_devkit.sandbox.hostile import EventsAttack, HostileEventsApi
from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_API_TOKEN, DEFAULT_ROUTING_KEY
from pagerbridge_devkit.sandbox.server import BackgroundServer
from pagerbridge_devkit.waiting import wait_for

from .conftest import start_relay
from .relayproc import RelayProcess, write_config
from .support import incident

# Every test here starts a real relay process.
pytestmark = pytest.mark.component

HOSTILE_KEY = "h" * 32
CONCURRENCY = 64  # the relay's default --delivery-concurrency
KEY_SHARE = 0.25  # the relay's default --key-slot-share
MIB = 1 << 20


@pytest.fixture
def hostile(request: pytest.FixtureRequest) -> Iterator[tuple[HostileEventsApi, str]]:
    attack, pick = request.param
    app = HostileEventsApi(attack, pick)
    with BackgroundServer(app) as server:
        yield app, server.url


def hostile_ids(n: int) -> Callable[[dict[str, Any]], bool]:
    ids = {incident(i)["id"] for i in range(1, n + 1)}
    return lambda event: event.get("dedup_key") in ids


def by_key(event: dict[str, Any]) -> bool:
    return event.get("routing_key") == HOSTILE_KEY


def relay(tmp_path: Path, relays: list[RelayProcess], url: str, *args: str) -> RelayProcess:
    config = write_config(
        tmp_path,
        pd_url=url,
        routing_key=DEFAULT_ROUTING_KEY,
        pd_api_token=DEFAULT_API_TOKEN,
        extra={"keyOverrideTag": "pd_key"},
    )
    return start_relay(relays, config, list(args))


def post(relay: RelayProcess, n: int, key: str | None = None) -> str:
    body = incident(n)
    if key is not None:
        body["alerts"][0]["pd_key"] = key
    assert relay.post_bigpanda(body).status_code == 202
    return str(body["id"])


@pytest.mark.parametrize("hostile", [(EventsAttack.DRIP, hostile_ids(64))], indirect=True)
def test_an_unrelated_incident_is_delivered_while_64_answers_drip(hostile, relays, tmp_path):
    app, url = hostile
    deadline = 60.0  # far above the bound asserted below: the deadline is not what frees them
    # All 65 on one routing key: its rate limit (2 per second) is lifted so that what is
    # measured is the delivery slots, not the token schedule.
    r = relay(
        tmp_path, relays, url, "--upstream-deadline", str(deadline), "--events-rate-limit", "1e6"
    )
    for n in range(1, 65):
        post(r, n)
    wait_for(lambda: app.in_attack > 0, timeout=deadline, what="dripping answers started")
    unrelated = post(r, 65)
    # Delivered well before any dripping call could have reached its deadline.
    wait_for(lambda: unrelated in app.accepted, timeout=deadline / 2, what="unrelated delivered")
    # Each dripped 202 counted as accepted: no event sent twice, the relay hung up on each.
    wait_for(lambda: r.metric("pagerbridge_relay_outbox_pending") == 0, timeout=deadline)
    assert sorted(app.attacked) == sorted(incident(n)["id"] for n in range(1, 65))
    wait_for(lambda: app.cut == 64, timeout=deadline, what="every drip hung up on")
    assert r.metric("pagerbridge_relay_deliveries_total", outcome="delivered") == 65


@pytest.mark.parametrize("hostile", [(EventsAttack.HANG, by_key)], indirect=True)
def test_a_hanging_routing_key_holds_only_its_share_of_the_slots(hostile, relays, tmp_path):
    app, url = hostile
    deadline = 60.0
    # Tokens for all 64 at once: the key's slot share, not its rate limit, is what binds.
    r = relay(
        tmp_path, relays, url, "--upstream-deadline", str(deadline), "--events-rate-limit", "1e6"
    )
    share = int(CONCURRENCY * KEY_SHARE)
    for n in range(1, 65):
        post(r, n, HOSTILE_KEY)
    wait_for(lambda: app.in_attack == share, timeout=deadline, what="the key's share hanging")
    unrelated = post(r, 65)
    wait_for(lambda: unrelated in app.accepted, timeout=deadline / 2, what="unrelated delivered")
    # Still hanging (nothing was cut to make room), and never more than the key's share.
    assert app.in_attack == share
    assert app.cut == 0
    assert len(app.attacked) == share
    waits = r.metric("pagerbridge_relay_delivery_slot_waits_total", bound="key")
    assert waits >= 64 - share


@pytest.mark.parametrize("hostile", [(EventsAttack.HANG, hostile_ids(1))], indirect=True)
def test_a_call_without_an_answer_is_cut_at_its_deadline_and_retried(hostile, relays, tmp_path):
    app, url = hostile
    deadline = 1.0
    r = relay(tmp_path, relays, url, "--upstream-deadline", str(deadline))
    post(r, 1)
    # The server never hangs up by itself: only the relay's deadline ends the call.
    wait_for(lambda: app.cut >= 2, timeout=30 * deadline, what="two attempts cut")
    assert r.metric("pagerbridge_relay_deliveries_total", outcome="transient") >= 1
    assert r.metric("pagerbridge_relay_outbox_pending") == 1  # retried, never dropped
    assert "no complete answer within 1s" in r.logs()


@pytest.mark.parametrize("hostile", [(EventsAttack.GZIP_BOMB, lambda event: True)], indirect=True)
def test_a_gzip_bomb_is_never_inflated(hostile, relays, tmp_path):
    app, url = hostile
    r = relay(tmp_path, relays, url)
    for n in range(1, 65):
        post(r, n)
    wait_for(lambda: r.metric("pagerbridge_relay_outbox_pending") == 0, timeout=60)
    assert len(app.attacked) == 64  # each sent once: a 202 is accepted, whatever its body
    assert r.metric("pagerbridge_relay_deliveries_total", outcome="delivered") == 64
    assert r.peak_rss() <= 128 * MIB, f"peak RSS {r.peak_rss() / MIB:.0f} MiB"
