"""Stalled and abandoned connections, over real sockets to a real relay process.

Invariants:
- a connection whose request headers, or body, do not all arrive within the relay's read
  deadlines is closed by the relay (slowloris), however the client dribbles them;
- a client that disconnects in the middle of its body costs one info log line and a
  metric, never an error traceback; the relay keeps serving.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_ROUTING_KEY
from pagerbridge_devkit.waiting import wait_for

from .conftest import start_relay
from .relayproc import WEBHOOK_TOKEN, RelayProcess, write_config
from .support import incident

# Every test here starts a real relay process.
pytestmark = pytest.mark.component

DEADLINE = 1.0  # the relay's header and body deadlines in this test
PATIENCE = 30.0  # how long the test waits for the close before calling it never


def _relay(pd_sim, relays, tmp_path: Path) -> RelayProcess:
    _, url = pd_sim
    config = write_config(tmp_path, pd_url=url, routing_key=DEFAULT_ROUTING_KEY)
    args = ["--header-timeout", str(DEADLINE), "--body-timeout", str(DEADLINE)]
    return start_relay(relays, config, args)


def _closed_by_server(sock: socket.socket, dribble: bytes = b"") -> bool:
    """Keep the connection open (sending ``dribble`` a byte at a time) until the server
    closes it (True) or PATIENCE runs out (False)."""
    sock.settimeout(0.2)
    give_up = time.monotonic() + PATIENCE
    pending = list(dribble)
    while time.monotonic() < give_up:
        try:
            data = sock.recv(4096)
        except TimeoutError:
            data = None
        except ConnectionResetError:
            return True
        if data == b"":
            return True
        if pending:
            try:
                sock.send(bytes([pending.pop(0)]))
            except (BrokenPipeError, ConnectionResetError):
                return True
    return False


HEAD = (
    "POST /v1/bigpanda/webhook HTTP/1.1\r\nHost: relay\r\n"
    f"Authorization: Bearer {WEBHOOK_TOKEN}\r\nContent-Type: application/json\r\n"
)


def test_slow_headers_and_bodies_are_cut_off(pd_sim, relays, tmp_path: Path) -> None:
    relay = _relay(pd_sim, relays, tmp_path)
    cases = {
        "silent": (b"", b""),
        "headers never finished": (HEAD.encode(), b""),
        "headers dribbled": (b"POST /v1/bigpanda/webhook HTTP/1.1\r\n", b"X-Slow: " + b"a" * 400),
        "body never sent": ((HEAD + "Content-Length: 1000\r\n\r\n").encode(), b""),
        "body dribbled": ((HEAD + "Content-Length: 1000\r\n\r\n").encode(), b"{" + b" " * 400),
    }
    for name, (first, dribble) in cases.items():
        with socket.create_connection(("127.0.0.1", relay.port)) as sock:
            if first:
                sock.sendall(first)
            assert _closed_by_server(sock, dribble), f"{name}: connection never closed"
    stalled = relay.metric("pagerbridge_relay_stalled_connections_total")
    assert stalled == len(cases)
    # And the relay still serves normal requests.
    assert relay.post_bigpanda(incident(950)).status_code == 202


def test_client_gone_mid_body_is_one_info_line_and_a_metric(pd_sim, relays, tmp_path: Path) -> None:
    relay = _relay(pd_sim, relays, tmp_path)
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", relay.port)) as sock:
            sock.sendall((HEAD + "Content-Length: 5000\r\n\r\n").encode() + b'{"id": "x", ')
    wait_for(
        lambda: (
            relay.metric("pagerbridge_relay_webhooks_total", outcome="client_disconnected") == 3
        ),
        timeout=PATIENCE,
        what="three disconnects counted",
    )
    logs = relay.logs()
    assert "Traceback" not in logs
    assert '"level": "error"' not in logs
    assert logs.count("client disconnected before sending its whole body") == 3
    assert relay.post_bigpanda(incident(951)).status_code == 202
