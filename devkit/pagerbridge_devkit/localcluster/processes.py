"""Child processes that die with their parent: no orphans after a SIGKILLed test run.

``spawn()`` starts a child in its own process group (so ``end_group()`` ends it together
with whatever it forks) and, on Linux, asks the kernel for a parent-death signal
(``prctl(PR_SET_PDEATHSIG, SIGTERM)``): when the parent dies, even by SIGKILL, the child
gets SIGTERM.

Caveat: Linux sends the signal when the *thread* that forked the child exits, not when
the process does. Start children from the main thread or from a thread that lives as
long as they should (the harness kubelet's loop thread does); a child started from a
short-lived thread is terminated when that thread ends.

``die_with_parent=False`` is for processes meant to outlive their starter (a detached
control plane, ``make cluster-up``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

import psutil

_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def _pdeathsig(parent: int) -> Callable[[], None]:
    """A preexec_fn: SIGTERM on parent death; libc was loaded before the fork (no dlopen)."""
    libc = _LIBC

    def set_pdeathsig() -> None:
        if libc is not None:
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return set_pdeathsig


def spawn(
    argv: Sequence[str],
    *,
    stdout: IO[bytes] | int | None = None,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    die_with_parent: bool = True,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session (its own process group); stderr joins stdout."""
    preexec = _pdeathsig(os.getpid()) if die_with_parent and _LIBC is not None else None
    return subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        env=None if env is None else dict(env),
        start_new_session=True,  # own group; Ctrl-C in a terminal reaches the parent only
        preexec_fn=preexec,  # only prctl + getppid run before exec
    )


def end_group(pgid: int, timeout: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after ``timeout``."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not group_alive(pgid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def group_alive(pgid: int) -> bool:
    for proc in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(proc.info["pid"]) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                return True
    return False


def stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the child's group, SIGKILL after ``timeout``; reaps the child."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
