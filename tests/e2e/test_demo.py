"""`pagerbridge demo`, the README's main command, run as a user runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from pagerbridge import demo
from pagerbridge.sandbox import bigpanda, pagerduty

pytestmark = pytest.mark.e2e

STEPS = [
    "local control plane (etcd + kube-apiserver)",
    "PagerDuty and BigPanda simulators",
    "operator running (pagerbridge operator)",
    "integration applied and Ready",
    "BigPanda incident opened",
    "PagerDuty incident triggered",
    "comment in BigPanda",
    "note in PagerDuty",
    "note added in PagerDuty",
    "comment in BigPanda",
    "resolve in PagerDuty",
    "resolved in BigPanda",
]
SECRETS = [
    demo.OVERRIDE_KEY,
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
    match = re.search(r"\(work directory: (\S+)\)", output)
    assert match, output
    return result.returncode, output, Path(match.group(1))


def leftovers(workdir: Path) -> list[str]:
    """Processes the demo started (they all run from its work directory) still alive."""
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
    for number, title in enumerate(STEPS, 1):
        assert re.search(rf"^\s+{number}\s+{re.escape(title)}\s+ok\s", summary, re.M), summary
    # What the story shows: the override, the mapped fields, the comment/note round trip.
    assert "routing key override: tag pd_routing_key → 'Database alerts' integration" in output
    assert "mapped fields: source=db-1 component=payments custom_details.team=core" in output
    assert "(no echo)" in output
    assert "resolve call" in output
    for secret in SECRETS:
        assert secret not in output
    assert not re.search(r"Bearer [A-Za-z0-9_\-]{8,}", output)
    assert not workdir.exists()
    assert not leftovers(workdir)


def test_demo_names_the_failed_step_and_still_cleans_up() -> None:
    code, output, workdir = run_demo("--timeout", "0.001")
    assert code == 1, output
    assert re.search(r"demo FAILED at step \d+: \S", output), output
    assert "FAILED: timed out after 0.001 s waiting for" in output
    assert "cleaning up" in output
    assert not workdir.exists()
    assert not leftovers(workdir)
