"""A harness pod: one replica of a relay Deployment, as a local process.

The container's command (the operator renders ``pagerbridge relay --config ... --host ...
--port ... --internal-port ...``, see :func:`pagerbridge.api.contract.relay_command`) runs
with this interpreter, its paths rewritten to the pod's local volume directories, on
127.0.0.1 and two ports of its own (public and internal) that it keeps across restarts (as
a Service address would).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pagerbridge.api.contract import (
    RELAY_HOST_FLAG,
    RELAY_INTERNAL_PORT_FLAG,
    RELAY_PORT_FLAG,
    RELAY_PROGRAM,
)
from pagerbridge_devkit.localcluster import pod_volumes
from pagerbridge_devkit.localcluster.processes import spawn
from pagerbridge_devkit.localcluster.processes import stop as stop_process
from pagerbridge_devkit.ports import free_port


@dataclass
class Pod:
    """One running relay: the local stand-in for one pod of a Deployment."""

    namespace: str
    name: str
    directory: Path
    template_hash: str = ""
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    internal_port: int = 0
    log_path: Path | None = None
    restarts: int = 0
    rollout_hash: str = ""  # the pod template whose rollout is tracked
    rollout_started: float = 0.0  # wall clock, for Progressing and its deadline
    rolled_out: bool = False  # was ready once for this template (rollout complete)
    draining_since: float | None = None  # monotonic; replaced, sleeping its preStop out

    @property
    def url(self) -> str:
        """The public port: the two webhook paths."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def internal_url(self) -> str:
        """The internal port: probes, metrics, OpenAPI, admin API."""
        return f"http://127.0.0.1:{self.internal_port}"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, pod_spec: dict[str, Any], environment: dict[str, str] | None = None) -> None:
        """Start the container's command (the pod's volumes are already written) with
        ``environment``, the container's resolved env (default: its literal values)."""
        container = pod_spec["containers"][0]
        mount_map = pod_volumes.mounts(self.directory, pod_spec)
        argv = [
            pod_volumes.rewrite(arg, mount_map)
            for arg in container["command"] + container.get("args", [])
        ]
        if argv[0] == RELAY_PROGRAM:
            argv = [sys.executable, "-m", "pagerbridge", *argv[1:]]
        self.port = self.port or free_port()
        self.internal_port = self.internal_port or free_port()
        for flag, value in (
            (RELAY_HOST_FLAG, "127.0.0.1"),
            (RELAY_PORT_FLAG, str(self.port)),
            (RELAY_INTERNAL_PORT_FLAG, str(self.internal_port)),
        ):
            if flag in argv:
                argv[argv.index(flag) + 1] = value
            else:
                argv += [flag, value]
        self.log_path = self.directory / "relay.log"
        env = dict(os.environ)
        if environment is None:
            environment = {i["name"]: i["value"] for i in container.get("env", []) if "value" in i}
        env.update(environment)
        with self.log_path.open("ab") as log:
            # Started from the kubelet's long-lived loop thread: the relay gets SIGTERM
            # when that thread (or the whole test process) dies.
            self.process = spawn(argv, stdout=log, cwd=self.directory, env=env)

    def stop(self) -> None:
        if self.process is None:
            return
        stop_process(self.process)
        self.process = None
