"""``pagerbridge sandbox`` as a user runs it: a real process serving both simulators."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import httpx

from pagerbridge_devkit.ports import free_port
from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_API_TOKEN, DEFAULT_ROUTING_KEY


def test_sandbox_command_serves_both_and_prints_urls_and_credentials() -> None:
    pd_port, bp_port = free_port(), free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pagerbridge",
            "sandbox",
            "--pagerduty-port",
            str(pd_port),
            "--bigpanda-port",
            str(bp_port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 30
        while not lines or lines[-1] != "Ready. Ctrl-C stops.":
            assert time.monotonic() < deadline, lines
            line = process.stdout.readline()
            assert line, f"exited early: {process.stderr.read() if process.stderr else ''}"
            lines.append(line.rstrip("\n"))
        output = "\n".join(lines)
        assert f"http://127.0.0.1:{pd_port}" in output
        assert f"http://127.0.0.1:{bp_port}" in output
        assert DEFAULT_ROUTING_KEY in output
        assert DEFAULT_API_TOKEN in output
        assert re.search(r"BigPanda simulator +http://127\.0\.0\.1:\d+", output)
        event = {
            "routing_key": DEFAULT_ROUTING_KEY,
            "event_action": "trigger",
            "payload": {"summary": "s", "source": "h", "severity": "info"},
        }
        answer = httpx.post(f"http://127.0.0.1:{pd_port}/v2/enqueue", json=event)
        assert answer.status_code == 202
        listed = httpx.get(
            f"http://127.0.0.1:{pd_port}/incidents",
            headers={"Authorization": f"Token token={DEFAULT_API_TOKEN}"},
        )
        (found,) = listed.json()["incidents"]
        assert found["self"].startswith(f"http://127.0.0.1:{pd_port}/incidents/")
        assert httpx.get(f"http://127.0.0.1:{bp_port}/_sandbox/requests").status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        try:
            assert process.wait(15) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(5)
