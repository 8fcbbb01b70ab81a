"""The declarations the lock files are compiled from, and their digest.

``requirements/runtime.lock`` pins ``[project.dependencies]`` of pyproject.toml and
``requirements/build.lock`` its ``[build-system.requires]``, with hashes (``make lock``,
``hack/lock.sh``). Each lock records the sha256 of its declarations, so a test can tell a
stale lock without network access: ``python -m pagerbridge_devkit.lockfiles digest
runtime``.
"""

from __future__ import annotations

import hashlib
import sys
import tomllib
from pathlib import Path
from typing import Literal

Kind = Literal["runtime", "build"]
REPO = Path(__file__).resolve().parents[2]
PYPROJECT = REPO / "pyproject.toml"
LOCK_DIR = REPO / "requirements"
DIGEST_PREFIX = "# declarations-sha256: "


def requirements(kind: Kind, pyproject: Path = PYPROJECT) -> list[str]:
    data = tomllib.loads(pyproject.read_text())
    found = (
        data["project"]["dependencies"] if kind == "runtime" else data["build-system"]["requires"]
    )
    return [str(item) for item in found]


def digest(kind: Kind, pyproject: Path = PYPROJECT) -> str:
    text = "\n".join(sorted(requirements(kind, pyproject)))
    return hashlib.sha256(text.encode()).hexdigest()


def lock_path(kind: Kind) -> Path:
    return LOCK_DIR / f"{kind}.lock"


def main(argv: list[str]) -> int:
    command, name = argv
    kind: Kind = "runtime" if name == "runtime" else "build"
    if name != kind:
        raise SystemExit(f"unknown lock {name!r}")
    if command == "digest":
        print(digest(kind))
    elif command == "requirements":
        print("\n".join(requirements(kind)))
    else:
        raise SystemExit(f"unknown command {command!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
