"""Children started through ``localcluster.processes`` do not outlive a SIGKILLed parent.

Real processes: a parent Python process starts a child with ``spawn()`` and prints its
pid; the test SIGKILLs the parent and watches the child.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import psutil
import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux-only")

PARENT = textwrap.dedent(
    """
    import sys, threading, time
    from pagerbridge_devkit.localcluster.processes import spawn

    CHILD = [sys.executable, "-c", "import time; time.sleep(120)"]
    mode = sys.argv[1]
    if mode == "thread":  # started from a short-lived thread: dies when the thread ends
        box = []
        worker = threading.Thread(target=lambda: box.append(spawn(CHILD)))
        worker.start()
        worker.join()
        child = box[0]
    else:
        child = spawn(CHILD, die_with_parent=mode != "detached")
    print(child.pid, flush=True)
    time.sleep(120)
    """
)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def parent() -> Iterator[list[tuple[subprocess.Popen[str], int]]]:
    """Starts parents on demand; kills every parent and child it saw in teardown."""
    started: list[tuple[subprocess.Popen[str], int]] = []
    yield started
    for process, child in started:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait(timeout=5)
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


def _start(started: list[tuple[subprocess.Popen[str], int]], mode: str) -> tuple[int, int]:
    process = subprocess.Popen(
        [sys.executable, "-c", PARENT, mode], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    child = int(process.stdout.readline())
    started.append((process, child))
    assert psutil.Process(child).ppid() == process.pid
    return process.pid, child


def test_child_dies_when_its_parent_is_sigkilled(
    parent: list[tuple[subprocess.Popen[str], int]],
) -> None:
    parent_pid, child = _start(parent, "attached")
    assert not _gone(child)
    os.kill(parent_pid, signal.SIGKILL)
    assert _wait_gone(child), f"child {child} outlived its SIGKILLed parent {parent_pid}"


def test_detached_child_outlives_its_parent(
    parent: list[tuple[subprocess.Popen[str], int]],
) -> None:
    """``make cluster-up``: a detached control plane must survive its CLI."""
    parent_pid, child = _start(parent, "detached")
    os.kill(parent_pid, signal.SIGKILL)
    assert _wait_gone(parent_pid)
    time.sleep(0.5)  # give a (wrongly) delivered death signal time to act
    assert not _gone(child)


def test_child_of_a_finished_thread_gets_the_signal(
    parent: list[tuple[subprocess.Popen[str], int]],
) -> None:
    """The documented caveat: the death signal follows the forking *thread*."""
    _, child = _start(parent, "thread")
    assert _wait_gone(child)
