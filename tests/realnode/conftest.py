"""The ``realnode`` tier: real pods on a real kubelet, from the image built here.

Needs Linux, root and the packages of ``hack/node/install-runtime.sh``. Elsewhere every
test of the tier is skipped with one reason; with ``CI=true`` they fail instead (CI must
run them). The session starts one control plane, one node (``pagerbridge.localcluster.node``)
and the chart's operator pod, and checks at the end that the node's teardown left the
machine as it found it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pagerbridge.api.contract import RELAY_INTERNAL_PORT, RELAY_PUBLIC_PORT
from pagerbridge_devkit.demo.environment import Environment
from pagerbridge_devkit.localcluster.node import GATEWAY, HostSnapshot, unavailable_reason

from .bed import Bed, prepare, running_bed

TIER_DIR = Path(__file__).resolve().parent
OWN_NODE_MODULE = "test_node_teardown.py"
LOCK_PATH = Path("/run/lock/pagerbridge-realnode.lock")
_LOCK_FDS: list[int] = []


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def _ours(item: pytest.Item) -> bool:
    return TIER_DIR in Path(str(item.path)).parents


def _own_node(item: pytest.Item) -> bool:
    return Path(str(item.path)).name == OWN_NODE_MODULE


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = unavailable_reason()
    for item in items:
        if not _ours(item):
            continue
        item.add_marker(pytest.mark.realnode)
        if reason and not _in_ci():
            item.add_marker(pytest.mark.skip(reason=f"realnode tier: {reason}"))
    # One node at a time on a machine: the tests that start a node of their own run
    # before any test of the tier that uses the shared bed (which lives until the end).
    first = [item for item in items if _ours(item) and _own_node(item)]
    if first:
        index = min(i for i, item in enumerate(items) if _ours(item))
        rest = [item for item in items if item not in first]
        items[:] = rest[:index] + first + rest[index:]


def pytest_collection_finish(session: pytest.Session) -> None:
    """Node binaries and the image (minutes the first time, cached after) before any test
    runs, outside the per-test timeout. When the node cannot run here, the tests are
    already marked skipped, or (CI=true) fail in the ``bed`` fixture with the reason.

    One node at a time per machine: a second test session waits here (no test timeout
    runs yet) until the first one's node is gone; the lock dies with the process."""
    if session.config.option.collectonly:
        return
    if any(_ours(item) for item in session.items) and unavailable_reason() is None:
        _hold_node_lock()
        prepare()


def _hold_node_lock() -> None:
    LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"realnode: another test session's node runs; waiting ({LOCK_PATH})", file=sys.stderr)
        fcntl.flock(fd, fcntl.LOCK_EX)
    _LOCK_FDS.append(fd)  # held until the session ends


def pytest_sessionfinish(session: pytest.Session) -> None:
    while _LOCK_FDS:
        os.close(_LOCK_FDS.pop())


@pytest.fixture(scope="session")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    reason = unavailable_reason()
    if reason:
        pytest.fail(f"realnode tier cannot run (CI=true): {reason}")
    before = HostSnapshot.take()
    with running_bed(tmp_path_factory.mktemp("realnode")) as started:
        yield started
    left = before.differences(HostSnapshot.take())
    assert left == {}, f"the node's teardown did not leave the machine as it found it: {left}"


class PodEnvironment(Environment):
    """The demo's environment with the relay in a pod: the simulators and the ingress (the
    relay's public URL) listen on the bridge's gateway, and the ingress forwards to the
    relay pod's IP."""

    bed: Bed | None = None
    integration: str = ""

    def relay_url(self) -> str | None:
        return self._pod_url(RELAY_PUBLIC_PORT)

    def relay_internal_url(self) -> str | None:
        return self._pod_url(RELAY_INTERNAL_PORT)

    def _pod_url(self, port: int) -> str | None:
        assert self.bed is not None
        pod = self.bed.ready_relay_pod(self.namespace, self.integration)
        if pod is None or not pod["status"].get("podIP"):
            return None
        return f"http://{pod['status']['podIP']}:{port}"


@pytest.fixture
def pod_env(bed: Bed, tmp_path: Path) -> Iterator[PodEnvironment]:
    """A namespace of its own and the simulators, reachable from pods."""
    saved_tmpdir, saved_tempdir = os.environ.get("TMPDIR"), tempfile.tempdir
    env = PodEnvironment(
        workdir=tmp_path / "env",
        step_timeout=120.0,
        kubeconfig=bed.kubeconfig,
        notify=lambda _: None,
        listen_host=GATEWAY,
    )
    env.bed = bed
    try:
        env.start_cluster()
        env.start_simulators()
        yield env
    finally:
        with contextlib.suppress(Exception):
            bed.kubectl("delete", "pdi", "--all", "-n", env.namespace, "--timeout=60s", check=False)
        env.close()
        if saved_tmpdir is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_tmpdir
        tempfile.tempdir = saved_tempdir
