"""The public port's memory budget, attacked for real: hostile clients over loopback sockets
against a real relay process with its default settings.

Invariants, under each attack (issue 25, the inbound rows):
- the relay's peak resident set stays at most 128 MiB (half the pod's default limit);
- a legitimate BigPanda webhook, from another address, is accepted (202) throughout;
- what is refused gets a clear status (431, 413, 429, 503 with Retry-After) and the
  relay's JSON error body, never a crash; the budget is whole again afterwards.
No timed assertion: the accept latency under attack is the benchmark's
(``tests/bench/relay_edge.py``).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

import httpx
import pytest

from pagerbridge.relay.inbound.budget import EdgeBudget, EdgeLimits, Refusal, source_of
from pagerbridge.relay.inbound.signatures import sign
from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_ROUTING_KEY
from pagerbridge_devkit.waiting import wait_for

from . import edgeattacks as attack
from .conftest import start_relay
from .relayproc import PD_WEBHOOK_SECRET, WEBHOOK_TOKEN, RelayProcess, write_config
from .support import incident

PEAK_RSS_LIMIT = 128 * attack.MiB


def _relay(pd_sim, relays, tmp_path: Path, args: list[str] | None = None) -> RelayProcess:
    _, url = pd_sim
    config = write_config(
        tmp_path, pd_url=url, routing_key=DEFAULT_ROUTING_KEY, webhook_secrets=[PD_WEBHOOK_SECRET]
    )
    return start_relay(relays, config, args)


def _signed_pagerduty(relay: RelayProcess, source: str) -> httpx.Response:
    """A genuine (signed) PagerDuty webhook from ``source``; an event type the relay
    acknowledges and ignores, so nothing else is needed to answer it."""
    body = json.dumps(
        {"event": {"id": "01GENUINE", "event_type": "service.updated", "data": {}}}
    ).encode()
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=10) as client:
        return client.post(
            relay.url + attack.PD_PATH,
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-PagerDuty-Signature": sign(PD_WEBHOOK_SECRET, body),
            },
        )


def _budget_whole_again(relay: RelayProcess) -> None:
    wait_for(
        lambda: (
            relay.metric("pagerbridge_relay_edge_connections") == 0
            and relay.metric("pagerbridge_relay_edge_body_bytes") == 0
        ),
        timeout=60,
        what="every connection and reserved body byte released",
    )


@pytest.mark.component
def test_a_64_mib_header_is_refused_431_and_costs_no_memory(pd_sim, relays, tmp_path) -> None:
    relay = _relay(pd_sim, relays, tmp_path)
    assert relay.proc is not None
    legit = attack.Legit(relay.url)
    answers = []
    with legit.running():  # its first webhook is through: it sends all along the attack
        started = time.monotonic()
        while len(answers) < 3 or time.monotonic() - started < 2:
            answers.append(asyncio.run(attack.huge_header(relay.port)))
    assert legit.statuses[202] >= 1
    # A client still sending its 64 MiB after the answer is cut off 64 KB later; an asyncio
    # client whose write fails on the reset never reads what came before it. Every answer
    # that was read is the JSON 431.
    answered = [attack.split_answer(raw) for raw in answers if raw]
    assert answered
    for status, headers, body in answered:
        assert status == 431
        assert headers["content-type"] == "application/json"
        assert json.loads(body)["error"] == "header_too_large"
    assert set(legit.statuses) == {202}, legit.statuses
    assert attack.peak_rss(relay.proc.pid) <= PEAK_RSS_LIMIT
    refused = relay.metric("pagerbridge_relay_edge_refused_total", reason="header_too_large")
    assert refused == len(answers)
    assert relay.proc.poll() is None
    assert "Traceback" not in relay.logs()


@pytest.mark.component
def test_400_stalled_pagerduty_bodies_stay_within_the_budget(pd_sim, relays, tmp_path) -> None:
    relay = _relay(pd_sim, relays, tmp_path)
    assert relay.proc is not None
    legit = attack.Legit(relay.url)
    with legit.running():
        outcomes = asyncio.run(attack.stalled_bodies(relay.port, connections=400, duration=8))
    assert legit.statuses[202] >= 1
    assert set(legit.statuses) == {202}, legit.statuses
    assert attack.peak_rss(relay.proc.pid) <= PEAK_RSS_LIMIT
    # What the pool cannot hold is refused at once, not queued: 400 x 512 KB is 25x the
    # default unverified budget.
    assert outcomes.statuses["503"] > 0, outcomes
    assert relay.metric("pagerbridge_relay_edge_refused_total", reason="unverified_budget") > 0
    _budget_whole_again(relay)
    # The pool is whole again: a genuine PagerDuty webhook is verified and answered.
    assert _signed_pagerduty(relay, "127.0.0.9").status_code == 200
    assert relay.proc.poll() is None
    assert "Traceback" not in relay.logs()


@pytest.mark.component
def test_one_source_cannot_take_the_whole_budget(pd_sim, relays, tmp_path) -> None:
    relay = _relay(pd_sim, relays, tmp_path)

    async def attack_while_genuine_arrives() -> tuple[attack.Outcomes, list[int]]:
        outcomes = attack.Outcomes()
        flood = asyncio.create_task(
            attack.stalled_bodies(
                relay.port, connections=200, sources=1, duration=6, outcomes=outcomes
            )
        )
        await asyncio.sleep(2)  # the source holds its share by now
        genuine = [
            (await asyncio.to_thread(_signed_pagerduty, relay, "127.0.0.3")).status_code
            for _ in range(5)
        ]
        await flood
        return outcomes, genuine

    outcomes, genuine = asyncio.run(attack_while_genuine_arrives())
    assert genuine == [200] * 5
    assert outcomes.statuses["429"] > 0, outcomes
    refused = relay.metric("pagerbridge_relay_edge_refused_total", reason="source_budget")
    refused += relay.metric("pagerbridge_relay_edge_refused_total", reason="source_connections")
    assert refused > 0
    assert relay.metric("pagerbridge_relay_edge_refused_total", reason="unverified_budget") == 0


@pytest.mark.component
def test_refusals_are_json_with_retry_after_and_spare_the_internal_port(
    pd_sim, relays, tmp_path
) -> None:
    relay = _relay(pd_sim, relays, tmp_path, ["--max-connections", "2"])
    held = [socket.create_connection(("127.0.0.1", relay.port)) for _ in range(2)]
    try:
        wait_for(lambda: relay.metric("pagerbridge_relay_edge_connections") == 2, what="held")
        with socket.create_connection(("127.0.0.1", relay.port)) as third:
            third.sendall(b"POST /v1/bigpanda/webhook HTTP/1.1\r\nHost: r\r\n\r\n")
            third.settimeout(10)
            status, headers, body = attack.split_answer(third.recv(4096))
        assert status == 503
        assert headers["retry-after"] == "1"
        assert json.loads(body) == {
            "error": "busy",
            "message": "too many connections; retry later",
        }
        # The internal port is not the public one's budget: probes still answer.
        assert httpx.get(relay.internal_url + "/healthz", timeout=5).status_code == 200
    finally:
        for sock in held:
            sock.close()
    # A body over the cap is refused from its Content-Length, before a byte of it is read.
    with socket.create_connection(("127.0.0.1", relay.port)) as big:
        big.sendall(
            b"POST /v1/pagerduty/webhook HTTP/1.1\r\nHost: r\r\n"
            b"Content-Type: application/json\r\nContent-Length: 600000\r\n\r\n"
        )
        big.settimeout(10)
        status, _, body = attack.split_answer(big.recv(4096))
    assert status == 413
    assert json.loads(body)["error"] == "payload_too_large"
    assert relay.metric("pagerbridge_relay_edge_refused_total", reason="connections") == 1


def test_budget_books() -> None:
    """The accounting itself: shares per source, pools apart, everything released."""
    budget = EdgeBudget(
        EdgeLimits(
            max_connections=3,
            max_connections_per_source=2,
            unverified_body_bytes=300,
            unverified_body_bytes_per_source=200,
            verified_body_bytes=100,
        )
    )
    assert budget.connect("a") is None
    assert budget.connect("a") is None
    refused = budget.connect("a")
    assert isinstance(refused, Refusal)
    assert refused.status == 429
    budget.verified("a")  # one of a's connections proved itself: a may open another
    assert budget.connect("a") is None
    refused = budget.connect("b")
    assert isinstance(refused, Refusal)
    assert refused.status == 503
    first = budget.reserve("a", 150, verified=False)
    over_share = budget.reserve("a", 100, verified=False)
    assert isinstance(over_share, Refusal)
    assert over_share.status == 429
    other = budget.reserve("b", 150, verified=False)
    over_pool = budget.reserve("c", 1, verified=False)
    assert isinstance(over_pool, Refusal)
    assert over_pool.status == 503
    verified = budget.reserve("c", 100, verified=True)  # its own pool: not queued behind
    assert not isinstance(verified, Refusal)
    for reservation in (first, other, verified):
        assert not isinstance(reservation, Refusal)
        budget.release(reservation)
        budget.release(reservation)  # twice is once
    for stranger in (False, True, True):
        budget.disconnect("a", stranger)
    assert (budget.connections, budget.strangers, budget.unverified_bytes) == (0, {}, 0)
    assert (budget.verified_bytes, budget.source_bytes) == (0, {})
    assert source_of("2001:db8::1") == source_of("2001:db8::ffff") == "2001:db8::/64"


def test_kept_alive_connections_release_each_request_s_reservation(
    pd_sim, relays, tmp_path
) -> None:
    """Many requests over one kept-alive connection: each answer gives its body's bytes
    back, so a long-lived sender never drifts into its own budget."""
    relay = _relay(pd_sim, relays, tmp_path, ["--verified-body-budget", "64Ki"])
    headers = {"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"}
    with httpx.Client(timeout=10) as client:
        for n in range(40):  # 40 bodies of ~2.8 KB: over the 64 KiB pool if never freed
            body = json.dumps(incident(700 + n, description="x" * 2500)).encode()
            response = client.post(relay.url + attack.BP_PATH, content=body, headers=headers)
            assert response.status_code == 202
        assert relay.metric("pagerbridge_relay_edge_connections") == 1
        assert relay.metric("pagerbridge_relay_edge_body_bytes") == 0


def test_the_bearer_token_decides_the_pool_before_the_body_is_read(
    pd_sim, relays, tmp_path
) -> None:
    """With no room at all for unverified bodies, BigPanda's webhooks (a valid token in
    the headers) are still accepted; the same body with a wrong token, or a PagerDuty
    webhook, is refused at the edge without a byte of it read."""
    relay = _relay(pd_sim, relays, tmp_path, ["--unverified-body-budget", "0"])
    body = incident(990)
    assert relay.post_bigpanda(body).status_code == 202
    wrong = relay.post_bigpanda(body, token="not-the-token")
    assert wrong.status_code == 503
    assert wrong.headers["retry-after"] == "1"
    assert wrong.json()["error"] == "busy"
    assert _signed_pagerduty(relay, "127.0.0.1").status_code == 503
    assert relay.metric("pagerbridge_relay_edge_refused_total", reason="unverified_budget") == 2
