"""Helpers every e2e folder shares: polling, reading and patching objects with kubectl, a
condition of a status, and an operator process of its own.

A support module, not a test module and not a conftest: test modules of any folder import
from here.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from pagerbridge_devkit.localcluster.processes import spawn
from pagerbridge_devkit.localcluster.processes import stop as stop_process
from pagerbridge_devkit.waiting import wait_for as _wait_for

from .conftest import Cluster

# The dev kit's wait_for, polled every 0.2 s: most predicates here run kubectl (a process).
wait_for = functools.partial(_wait_for, interval=0.2)


def get_json(cluster: Cluster, namespace: str, *what: str) -> Any:
    result = cluster.kubectl("get", "-n", namespace, *what, "-o", "json", check=False)
    if result.returncode != 0:
        return None
    return json.loads(result.stdout)


def merge_patch(
    cluster: Cluster, namespace: str, kind: str, name: str, patch: Any, *flags: str
) -> None:
    """``kubectl patch --type=merge`` of one object (``flags``: e.g. ``--subresource=status``)."""
    cluster.kubectl(
        "patch", "-n", namespace, kind, name, *flags, "--type=merge", "-p", json.dumps(patch)
    )


def condition(body: dict[str, Any] | None, type_: str = "Ready") -> dict[str, Any]:
    for cond in ((body or {}).get("status") or {}).get("conditions", []):
        if cond["type"] == type_:
            return dict(cond)
    return {}


def start_operator(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """``python -m pagerbridge ARGS`` in its own process group, dying with the test run."""
    with log_path.open("ab") as log:
        return spawn([sys.executable, "-m", "pagerbridge", *args], stdout=log, env=env)


def stop_operator(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the operator's group, SIGKILL after 15 s."""
    stop_process(process, timeout=15)
