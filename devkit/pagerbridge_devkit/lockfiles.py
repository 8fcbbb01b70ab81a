"""The declarations the lock files are compiled from, and their digest.

``requirements/runtime.lock`` pins ``[project.dependencies]`` of pyproject.toml,
``requirements/build.lock`` its ``[build-system.requires]`` (the image is built from these
two), and ``requirements/dev.lock`` what ``make install`` puts in the project venv for the
tests, lint and CI: all of that, the ``test`` and ``lint`` extras and the dev kit's
dependencies (devkit/pyproject.toml), compiled against the other two locks so the tests
run the versions the image ships. All with hashes (``make lock``, ``hack/lock.sh``);
``hack/venv.sh`` installs the dev lock with ``pip --require-hashes``. Each lock records
the sha256 of its declarations, so a test can tell a stale lock without network access:
``python -m pagerbridge_devkit.lockfiles digest runtime``.
"""

from __future__ import annotations

import hashlib
import sys
import tomllib
from pathlib import Path
from typing import Literal

Kind = Literal["runtime", "build", "dev"]
KINDS: tuple[Kind, ...] = ("runtime", "build", "dev")
REPO = Path(__file__).resolve().parents[2]
PYPROJECT = REPO / "pyproject.toml"
DEVKIT_PYPROJECT = REPO / "devkit" / "pyproject.toml"
DEV_EXTRAS = ("test", "lint")
# Installed editable from the work tree by hack/venv.sh, never from an index.
OWN = ("pagerbridge", "pagerbridge-devkit")
LOCK_DIR = REPO / "requirements"
DIGEST_PREFIX = "# declarations-sha256: "


def requirements(
    kind: Kind, pyproject: Path = PYPROJECT, devkit: Path = DEVKIT_PYPROJECT
) -> list[str]:
    data = tomllib.loads(pyproject.read_text())
    if kind == "runtime":
        return [str(item) for item in data["project"]["dependencies"]]
    if kind == "build":
        return [str(item) for item in data["build-system"]["requires"]]
    kit = tomllib.loads(devkit.read_text())
    found = [
        *data["project"]["dependencies"],
        *data["build-system"]["requires"],  # editable installs without build isolation
        *(item for extra in DEV_EXTRAS for item in data["project"]["optional-dependencies"][extra]),
        *kit["project"]["dependencies"],
        *kit["build-system"]["requires"],
    ]
    return [str(item) for item in found if _name(str(item)) not in OWN]


def _name(requirement: str) -> str:
    head = requirement.split(";", 1)[0]
    for stop in "[<>=!~ ":
        head = head.split(stop, 1)[0]
    return head.strip().lower().replace("_", "-")


def digest(kind: Kind, pyproject: Path = PYPROJECT, devkit: Path = DEVKIT_PYPROJECT) -> str:
    text = "\n".join(sorted(requirements(kind, pyproject, devkit)))
    return hashlib.sha256(text.encode()).hexdigest()


def lock_path(kind: Kind) -> Path:
    return LOCK_DIR / f"{kind}.lock"


def main(argv: list[str]) -> int:
    command, name = argv
    kind = next((k for k in KINDS if k == name), None)
    if kind is None:
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
