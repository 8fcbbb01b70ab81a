"""The demo talks to Kubernetes the way its reader would: with ``kubectl``.

Every failure becomes a :class:`~pagerbridge_devkit.demo.steps.StepFailed` quoting kubectl's
error, so the summary names the step and the reason. Manifests go in on stdin (never on
the command line, where Secrets would show in ``ps``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from pagerbridge_devkit.demo.steps import StepFailed

REQUEST_TIMEOUT = "20s"


def find_kubectl() -> Path:
    """The cached kubectl (``hack/controlplane/build.sh``), else the PATH's, else build it."""
    from pagerbridge_devkit.localcluster import find_binaries
    from pagerbridge_devkit.localcluster.binaries import tools_dir

    cached = tools_dir() / "kubectl"
    if os.access(cached, os.X_OK):
        return cached
    on_path = shutil.which("kubectl")
    return Path(on_path) if on_path else find_binaries().kubectl


class Kubectl:
    def __init__(self, path: Path, kubeconfig: Path, namespace: str) -> None:
        self.path = path
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig)}

    def __call__(self, *args: str, input: str | None = None, timeout: float = 90) -> str:
        argv = [str(self.path), f"--request-timeout={REQUEST_TIMEOUT}", *args]
        try:
            result = subprocess.run(
                argv,
                input=input,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise StepFailed(f"kubectl {args[0]} did not answer within {timeout:g} s") from None
        if result.returncode != 0:
            message = result.stderr.strip().splitlines()[-1:] or ["(no message)"]
            raise StepFailed(f"kubectl {args[0]} failed: {message[0]}")
        return result.stdout

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist (yet)."""
        out = self("get", "-n", self.namespace, kind, name, "-o", "json", "--ignore-not-found")
        if not out.strip():
            return None
        body: dict[str, Any] = json.loads(out)
        return body

    def condition(self, kind: str, name: str, type_: str = "Ready") -> dict[str, Any]:
        """The object's condition of that type ({} when missing)."""
        body = self.get(kind, name) or {}
        for cond in (body.get("status") or {}).get("conditions", []):
            if cond.get("type") == type_:
                return dict(cond)
        return {}
