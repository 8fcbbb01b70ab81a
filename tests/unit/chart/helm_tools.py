"""Run the real ``helm`` binary against the chart, the way a user would.

helm comes from the project's tool cache (``make tools`` / hack/controlplane/build.sh):
``$PAGERBRIDGE_TOOLS_DIR/current/helm``, default ``~/.cache/pagerbridge/tools/current/helm``.
A missing binary is a hard failure, never a skip: CI must not go green without the chart
having been rendered.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "pagerbridge"
HELM_TIMEOUT_S = 60


class HelmNotFoundError(RuntimeError):
    pass


def tools_dir() -> Path:
    root = os.environ.get("PAGERBRIDGE_TOOLS_DIR")
    base = Path(root) if root else Path.home() / ".cache" / "pagerbridge" / "tools"
    return base / "current"


def helm_binary() -> Path:
    candidates = [tools_dir() / "helm"]
    if os.environ.get("PAGERBRIDGE_TOOLS_DIR"):
        # Also accept PAGERBRIDGE_TOOLS_DIR pointing straight at the binaries.
        candidates.append(Path(os.environ["PAGERBRIDGE_TOOLS_DIR"]) / "helm")
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise HelmNotFoundError(
        f"helm not found (looked at {', '.join(str(p) for p in candidates)}). "
        "Run `make tools` (hack/controlplane/build.sh), or set PAGERBRIDGE_TOOLS_DIR to "
        "a directory holding current/helm."
    )


class Helm:
    """A helm binary run with private config/cache dirs and no cluster."""

    def __init__(self, binary: Path, home: Path) -> None:
        self.binary = binary
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
            "KUBECONFIG": str(home / "no-kubeconfig"),
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=HELM_TIMEOUT_S,
            check=False,
        )

    def template(
        self, *args: str, chart: Path = CHART, namespace: str = "pagerbridge-system"
    ) -> subprocess.CompletedProcess[str]:
        return self.run("template", "pb", str(chart), "--namespace", namespace, *args)

    def render(
        self, *args: str, chart: Path = CHART, namespace: str = "pagerbridge-system"
    ) -> list[dict[str, Any]]:
        """Render the chart; every document must parse as a Kubernetes object."""
        result = self.template(*args, chart=chart, namespace=namespace)
        assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
        objects = [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]
        for obj in objects:
            assert isinstance(obj, dict), f"not an object: {obj!r}"
            assert obj.get("apiVersion"), f"not a Kubernetes object: {obj}"
            assert obj.get("kind"), f"not a Kubernetes object: {obj}"
            assert obj.get("metadata", {}).get("name"), f"object without a name: {obj}"
        return objects


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = of_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]
