"""Two distributions: the runtime (what the image ships) and the dev kit (never shipped).

The runtime wheel is built for real, the way the Dockerfile builds it (``pip wheel`` of the
repository root), and read back: it must hold no dev-kit module and require none of the
dev kit's dependencies. Each distribution declares exactly the third-party packages its
modules import, checked by reading every module's imports.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUNTIME_PACKAGE = REPO / "operator" / "pagerbridge"
DEVKIT_PACKAGE = REPO / "devkit" / "pagerbridge_devkit"

# Distribution name -> the top-level module it provides, where they differ.
IMPORT_NAMES = {
    "pyyaml": "yaml",
    "prometheus-client": "prometheus_client",
    "openapi-schema-validator": "openapi_schema_validator",
    "pydantic-core": "pydantic_core",
    "pagerbridge": "pagerbridge",
}
DEV_KIT_ONLY = {"psutil", "openapi-schema-validator", "jsonschema", "fastjsonschema"}
# Declared for a library that imports them itself, never imported by name: uvloop is the
# relay's event loop, which uvicorn's loop="auto" picks when it is installed (declared since
# the runtime dropped uvicorn[standard], which carried it).
PICKED_BY_A_LIBRARY = {"uvloop"}


def requirement_name(requirement: str) -> str:
    name = requirement
    for stop in "<>=!~[; ":
        name = name.split(stop, 1)[0]
    return name.strip().lower()


def declared(pyproject: Path) -> set[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    return {requirement_name(r) for r in project["dependencies"]}


def imported_third_party(package: Path, own: set[str]) -> set[str]:
    """Top-level modules imported anywhere in ``package`` that are neither stdlib nor ours."""
    found: set[str] = set()
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".", 1)[0]
                if top not in sys.stdlib_module_names and top not in own:
                    found.add(top)
    return found


def as_import_names(distributions: set[str]) -> set[str]:
    return {IMPORT_NAMES.get(d, d.replace("-", "_")) for d in distributions}


def test_runtime_declares_exactly_what_it_imports():
    imports = imported_third_party(RUNTIME_PACKAGE, own={"pagerbridge"})
    assert as_import_names(declared(REPO / "pyproject.toml")) - PICKED_BY_A_LIBRARY == imports


def test_devkit_declares_exactly_what_it_imports():
    imports = imported_third_party(DEVKIT_PACKAGE, own={"pagerbridge_devkit"})
    assert as_import_names(declared(REPO / "devkit" / "pyproject.toml")) == imports | {
        "pagerbridge"
    }


def test_runtime_does_not_depend_on_the_devkit_or_its_dependencies():
    runtime = declared(REPO / "pyproject.toml")
    assert "pagerbridge-devkit" not in runtime
    assert not runtime & DEV_KIT_ONLY


@pytest.fixture(scope="module")
def runtime_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # As the Dockerfile's build stage does (`pip wheel .`), without the dependencies.
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(REPO)],
        check=True,
        timeout=600,
    )
    (wheel,) = out.glob("pagerbridge-*.whl")
    return wheel


def test_runtime_wheel_holds_no_devkit_module(runtime_wheel: Path):
    names = zipfile.ZipFile(runtime_wheel).namelist()
    modules = [n for n in names if n.endswith(".py")]
    assert any(n == "pagerbridge/relay/app.py" for n in modules)
    assert any(n == "pagerbridge/controller/runtime/handlers.py" for n in modules)
    devkit = [
        n
        for n in names
        if n.startswith("pagerbridge_devkit/")
        or any(f"/{part}/" in f"/{n}" for part in ("sandbox", "localcluster", "demo"))
    ]
    assert devkit == []
    # The simulators' OpenAPI documents are dev-kit data too.
    assert not [n for n in names if n.endswith("openapiv3.json")]


def test_runtime_wheel_requires_no_devkit_dependency(runtime_wheel: Path):
    with zipfile.ZipFile(runtime_wheel) as whl:
        metadata_name = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(whl.read(metadata_name).decode())
    requires = {
        requirement_name(r) for r in metadata.get_all("Requires-Dist") or [] if "extra ==" not in r
    }
    assert requires == declared(REPO / "pyproject.toml")
    assert not requires & (DEV_KIT_ONLY | {"pagerbridge-devkit"})
