"""``pagerbridge demo``, the README's main command, run as a user runs it.

Checks the contract: exit status, every summary row ok, the story's key moments shown (the
override masked, the mapped fields, the counts), no secret value printed, and nothing left
behind. Every process the demo starts (control plane, operator, relay) inherits a marker
environment variable unique to the run, so "nothing left behind" is checked by looking for
that marker in every process on the machine (the operator's command line does not name the
work directory); anything found is killed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from pagerbridge_devkit.demo.environment import OVERRIDE_ROUTING_KEY
from pagerbridge_devkit.demo.manifests import (
    INTEGRATION_EXAMPLE,
    ROUTING_EXAMPLE,
    Sandbox,
    demo_manifests,
)
from pagerbridge_devkit.demo.steps import StepFailed
from pagerbridge_devkit.ports import free_port
from pagerbridge_devkit.sandbox import bigpanda as bp
from pagerbridge_devkit.sandbox import pagerduty as pd

from .conftest import EXTERNAL_KUBECONFIG_ENV, REPO, Cluster

pytestmark = pytest.mark.e2e

MARKER = "PAGERBRIDGE_DEMO_TEST_MARKER"
STORY = [
    "Kubernetes API server and CRDs",
    "PagerDuty and BigPanda simulators",
    "operator and harness kubelet running",
    "integration applied and Ready",
    "BigPanda webhook pointed at the relay",
    "BigPanda: incident opened",
    "PagerDuty: incident triggered",
    "BigPanda: comment added",
    "PagerDuty: note from the comment",
    "PagerDuty: note added",
    "BigPanda: comment from the note",
    "PagerDuty: incident resolved",
    "BigPanda: incident resolved",
]
SECRETS = [
    pd.DEFAULT_ROUTING_KEY,
    OVERRIDE_ROUTING_KEY,
    pd.DEFAULT_API_TOKEN,
    bp.DEFAULT_API_TOKEN,
]
SUMMARY_ROW = re.compile(r"^\s+(\d+)\s+(.+?)\s+(ok|FAILED)\s+(\d+\.\d)$")


@dataclass
class DemoRun:
    """A running ``python -m pagerbridge demo``; its output collected line by line."""

    args: tuple[str, ...]
    env_overrides: dict[str, str] = field(default_factory=dict)
    marker: str = field(default_factory=lambda: uuid.uuid4().hex)
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        env = {**os.environ, **self.env_overrides, MARKER: self.marker}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pagerbridge", "demo", *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=REPO,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, prefix: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(line.startswith(prefix) for line in self.lines):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no line starting {prefix!r}:\n{self.output}")
            time.sleep(0.1)

    def wait(self, timeout: float) -> int:
        """The exit status; on timeout the demo gets SIGTERM (it cleans up), the test fails."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=90)
            self._reader.join(timeout=5)
            raise AssertionError(f"demo still running after {timeout} s:\n{self.output}") from None
        self._reader.join(timeout=5)
        return code

    def summary(self) -> list[tuple[str, str]]:
        """(step, result) rows of the summary table."""
        start = self.lines.index("summary")
        rows = [SUMMARY_ROW.match(line) for line in self.lines[start:]]
        return [(m.group(2), m.group(3)) for m in rows if m]

    def work_directory(self) -> Path:
        found = re.search(r"^work directory (\S+)", self.output, re.MULTILINE)
        assert found, self.output
        return Path(found.group(1))


def processes_with(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(MARKER) == marker and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def assert_nothing_left(run: DemoRun) -> None:
    """No process of this run alive (short grace for exits in flight); work dir gone."""
    deadline = time.monotonic() + 5
    left = processes_with(run.marker)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = processes_with(run.marker)
    described = [f"{p.pid} {' '.join(p.cmdline())[:120]}" for p in left]
    for proc in left:
        proc.kill()
    assert not described, "demo left processes behind:\n" + "\n".join(described)
    assert not run.work_directory().exists(), "work directory not removed"


@pytest.fixture
def demo_runs() -> Iterator[list[DemoRun]]:
    """Every run a test starts; killed (with whatever it started) if still alive."""
    runs: list[DemoRun] = []
    yield runs
    for run in runs:
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait(timeout=10)
        for proc in processes_with(run.marker):
            proc.kill()


def test_demo_plays_the_whole_story_and_cleans_up(demo_runs: list[DemoRun]) -> None:
    run = DemoRun(("--timeout", "60"))
    demo_runs.append(run)
    code = run.wait(timeout=240)
    assert code == 0, run.output
    assert "demo passed: every step happened" in run.output
    assert run.summary() == [(step, "ok") for step in STORY], run.output
    assert "Traceback" not in run.output, run.output
    # What a person is shown: the override (masked), the mapped fields, the final counts.
    assert f"key ****{OVERRIDE_ROUTING_KEY[-4:]}" in run.output
    assert "host -> source = db-1" in run.output
    assert "team -> custom_details.team = core" in run.output
    assert "BigPanda comments 2 (1 by PagerBridge), resolves by PagerBridge 1" in run.output
    # No secret value, whole, anywhere in the output; the relay's token is shown masked.
    for secret in SECRETS:
        assert secret not in run.output
    assert re.search(r"Authorization: Bearer \*\*\*\*\S{4}\s", run.output), run.output
    assert not re.search(r"Bearer (?!\*\*\*\*)\S{8,}", run.output)
    assert_nothing_left(run)


def test_demo_names_the_failing_step_when_the_cluster_is_unreachable(
    tmp_path: Path, demo_runs: list[DemoRun]
) -> None:
    kubeconfig = tmp_path / "unreachable.kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "gone",
                        "cluster": {
                            "server": f"https://127.0.0.1:{free_port()}",
                            "insecure-skip-tls-verify": True,
                        },
                    }
                ],
                "users": [{"name": "nobody", "user": {"token": "not-a-real-token"}}],
                "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "nobody"}}],
                "current-context": "gone",
            }
        )
    )
    run = DemoRun(("--kubeconfig", str(kubeconfig), "--timeout", "10"))
    demo_runs.append(run)
    code = run.wait(timeout=90)
    assert code == 1, run.output
    assert f"demo FAILED at step 1: {STORY[0]}" in run.output
    assert f"the API server of {kubeconfig} is not reachable" in run.output
    assert "refused" in run.output
    assert run.summary() == [(STORY[0], "FAILED")]
    assert f"({len(STORY) - 1} later step(s) not run)" in run.output
    assert_nothing_left(run)


@pytest.mark.skipif(
    bool(os.environ.get(EXTERNAL_KUBECONFIG_ENV)),
    reason="interrupts the demo's own local control plane",
)
def test_ctrl_c_stops_everything(demo_runs: list[DemoRun]) -> None:
    run = DemoRun(("--timeout", "60"))
    demo_runs.append(run)
    # Interrupt once the operator runs: control plane, simulators and operator are up.
    run.wait_for_line("[ 4/13]", timeout=120)
    run.process.send_signal(signal.SIGINT)
    code = run.wait(timeout=90)
    assert code == 130, run.output
    assert f"demo interrupted during step 4: {STORY[3]}" in run.output
    assert_nothing_left(run)


@pytest.mark.skipif(
    bool(os.environ.get(EXTERNAL_KUBECONFIG_ENV)),
    reason="reads the demo's own local control plane start",
)
def test_a_reader_going_away_does_not_stop_the_cleanup() -> None:
    """``pagerbridge demo | head``: the pipe closes mid-story; nothing may be left behind."""
    marker = uuid.uuid4().hex
    process = subprocess.Popen(
        [sys.executable, "-m", "pagerbridge", "demo", "--timeout", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, MARKER: marker},
        cwd=REPO,
    )
    assert process.stdout is not None
    seen: list[str] = []
    try:
        for line in process.stdout:
            seen.append(line)
            if line.startswith("[ 4/13]"):
                break
        process.stdout.close()  # the reader is gone: the demo's next write breaks the pipe
        process.wait(timeout=180)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        left = processes_with(marker)
        for proc in left:
            proc.kill()
    assert any(line.startswith("[ 4/13]") for line in seen), "".join(seen)
    assert not left, [" ".join(p.cmdline())[:120] for p in left]
    found = re.search(r"^work directory (\S+)", "".join(seen), re.MULTILINE)
    assert found, "".join(seen)
    assert not Path(found.group(1)).exists()


def test_demo_on_a_given_cluster_deletes_what_it_created(
    cluster: Cluster, demo_runs: list[DemoRun]
) -> None:
    run = DemoRun(
        ("--kubeconfig", str(cluster.kubeconfig), "--timeout", "60"),
        {EXTERNAL_KUBECONFIG_ENV: ""},
    )
    demo_runs.append(run)
    code = run.wait(timeout=240)
    assert code == 0, run.output
    assert run.summary() == [(step, "ok") for step in STORY], run.output
    found = re.search(r"^\s+namespace (pagerbridge-demo-[0-9a-f]{6})$", run.output, re.M)
    assert found, run.output
    namespace = found.group(1)
    # The integration went through its finalizer while the operator still ran ...
    left = cluster.kubectl("get", "pdi", "-n", namespace, "-o", "name", check=False)
    assert left.stdout.strip() == ""
    # ... and the namespace is on its way out (deleted without waiting).
    phase = cluster.kubectl(
        "get", "namespace", namespace, "-o", "jsonpath={.status.phase}", check=False
    )
    assert phase.returncode != 0 or phase.stdout == "Terminating", phase.stdout
    assert_nothing_left(run)


def _sandbox() -> Sandbox:
    return Sandbox(
        pagerduty_url="http://127.0.0.1:1001",
        bigpanda_url="http://127.0.0.1:1002",
        public_url="http://127.0.0.1:1003",
        routing_key="r" * 32,
        pagerduty_api_token="p" * 20,
        bigpanda_api_token="b" * 20,
        service_id="PSANDBX",
        environment_id="env-1",
    )


def test_demo_manifests_fill_each_secret_key_with_what_its_reference_asks_for() -> None:
    manifests = demo_manifests(_sandbox())
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in manifests.documents:
        by_kind.setdefault(doc["kind"], []).append(doc)
    (integration,) = by_kind["PagerDutyIntegration"]
    spec = integration["spec"]
    secrets = {s["metadata"]["name"]: s["stringData"] for s in by_kind["Secret"]}

    def value(ref: dict[str, str]) -> str:
        return secrets[ref["name"]][ref["key"]]

    assert value(spec["pagerDuty"]["routingKey"]) == "r" * 32
    assert value(spec["pagerDuty"]["apiToken"]) == "p" * 20
    assert value(spec["bigPanda"]["apiToken"]) == "b" * 20
    assert spec["pagerDuty"]["eventsUrl"] == spec["pagerDuty"]["apiUrl"] == "http://127.0.0.1:1001"
    assert spec["bigPanda"]["apiUrl"] == "http://127.0.0.1:1002"
    assert spec["relay"]["publicUrl"] == "http://127.0.0.1:1003"
    for kind in ("PagerDutyKeyOverride", "PagerDutyTagMapping"):
        (doc,) = by_kind[kind]
        assert doc["spec"]["integrationRef"]["name"] == manifests.integration
    assert {"tag": "host", "field": "source"} in manifests.mappings


def test_demo_manifests_refuse_a_secret_key_nothing_references(tmp_path: Path) -> None:
    for name in (INTEGRATION_EXAMPLE, ROUTING_EXAMPLE):
        text = (REPO / "examples" / name).read_text()
        (tmp_path / name).write_text(text)
    path = tmp_path / INTEGRATION_EXAMPLE
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    next(d for d in docs if d["kind"] == "Secret")["stringData"]["stray"] = "x"
    path.write_text(yaml.safe_dump_all(docs))
    with pytest.raises(StepFailed, match="stray"):
        demo_manifests(_sandbox(), tmp_path)
