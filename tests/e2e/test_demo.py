"""`pagerbridge demo`, the README's main command, run as a user runs it.

Checks the contract, not the wording: exit status, every summary row ok, the story's key
moments shown, no secret value printed, and nothing left behind (work directory and the
processes started from it).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from pagerbridge.demo.environment import OVERRIDE_ROUTING_KEY
from pagerbridge.sandbox import bigpanda, pagerduty

pytestmark = pytest.mark.e2e

SECRETS = [
    OVERRIDE_ROUTING_KEY,
    pagerduty.DEFAULT_ROUTING_KEY,
    pagerduty.DEFAULT_API_TOKEN,
    bigpanda.DEFAULT_API_TOKEN,
]


def run_demo(*args: str, timeout: float = 240) -> tuple[int, str, Path]:
    result = subprocess.run(
        [sys.executable, "-m", "pagerbridge", "demo", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    output = result.stdout + result.stderr
    match = re.search(r"work directory:? (/[^\s)]+)", output)
    assert match, output
    return result.returncode, output, Path(match.group(1))


def leftovers(workdir: Path) -> list[str]:
    """Processes started from the demo's work directory that are still alive."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if str(workdir) in cmdline:
            found.append(f"{process.info['pid']}: {cmdline[:200]}")
    return found


def test_demo_plays_the_incident_life_and_cleans_up() -> None:
    code, output, workdir = run_demo()
    assert code == 0, output
    assert "demo passed: every step happened" in output
    summary = output[output.index("\nsummary") :]
    rows = re.findall(r"^\s+(\d+)\s+(.+?)\s+(ok|FAILED)\s+[\d.]+$", summary, re.M)
    assert len(rows) >= 10, summary
    assert all(result == "ok" for _, _, result in rows), summary
    for moment in ("routing key override", "mapped fields", "no echo"):
        assert moment in output
    for secret in SECRETS:
        assert secret not in output
    assert not re.search(r"Bearer [A-Za-z0-9_\-]{8,}", output)
    assert not workdir.exists()
    assert not leftovers(workdir)


def test_demo_names_the_failed_step_and_still_cleans_up() -> None:
    code, output, workdir = run_demo("--timeout", "0.001")
    assert code == 1, output
    assert re.search(r"demo FAILED at step \d+: \S", output), output
    assert not workdir.exists()
    assert not leftovers(workdir)
