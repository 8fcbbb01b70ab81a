"""The command line as a user meets it: --version, help that documents every flag and its
default, --kubeconfig/--context on every command that talks to a cluster, and a one-line
message (never a traceback) for a user's mistake."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pagerbridge import __version__
from pagerbridge.cli import SUBCOMMANDS, build_parser
from pagerbridge_devkit.ports import free_port


def pagerbridge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pagerbridge", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_version() -> None:
    result = pagerbridge("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"pagerbridge {__version__}"
    assert __version__ != "unknown"


def test_help_first_lines_are_plain_text() -> None:
    result = pagerbridge("--help")
    assert result.returncode == 0
    description = result.stdout.split("\n\n")[1]
    assert "``" not in description
    assert ":mod:" not in description
    for name in SUBCOMMANDS:
        sub = pagerbridge(name, "--help")
        assert sub.returncode == 0, sub.stderr
        assert "``" not in sub.stdout


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_every_flag_has_help_and_shows_its_default(command: str) -> None:
    parser = subparsers()[command]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{command} {action.option_strings or action.dest}: no help text"
    text = parser.format_help()
    for action in parser._actions:
        shown = action.default not in (None, [], argparse.SUPPRESS) and action.nargs != 0
        if action.option_strings and shown:
            assert "default" in (action.help or "") or f"(default: {action.default})" in " ".join(
                text.split()
            ), f"{command} {action.option_strings[0]}: default {action.default!r} not shown"


@pytest.mark.parametrize("command", ["operator", "webhook-config"])
def test_cluster_commands_take_kubeconfig_and_context(command: str) -> None:
    options = {o for a in subparsers()[command]._actions for o in a.option_strings}
    assert {"--kubeconfig", "--context"} <= options


def kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
        f"clusters: [{{name: c, cluster: {{server: '{server}', "
        "insecure-skip-tls-verify: true}}]\n"
        "users: [{name: u, user: {token: not-a-real-token}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
    )
    return path


def no_kube_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")
    }
    env["HOME"] = str(tmp_path / "home")
    return env


@pytest.mark.parametrize("command", [["operator"], ["webhook-config", "x"]])
def test_user_errors_are_one_line_without_traceback(tmp_path: Path, command: list[str]) -> None:
    env = no_kube_env(tmp_path)
    closed = f"https://127.0.0.1:{free_port()}"  # nothing listens there
    config = kubeconfig(tmp_path / "config", closed)
    cases = {
        "no kubeconfig at all": ([], "no kubeconfig"),
        "missing file": (["--kubeconfig", str(tmp_path / "absent")], "not found"),
        "unknown context": (
            ["--kubeconfig", str(config), "--context", "prod"],
            "context 'prod' not found",
        ),
        "no cluster": (["--kubeconfig", str(config)], "ConnectError"),
    }
    for case, (extra, expected) in cases.items():
        result = pagerbridge(*command, *extra, env=env)
        assert result.returncode != 0, case
        assert "Traceback" not in result.stderr, f"{case}:\n{result.stderr}"
        messages = [line for line in result.stderr.splitlines() if not line.startswith("{")]
        assert len(messages) == 1, f"{case}: {result.stderr}"
        assert expected in messages[0], f"{case}: {messages[0]}"
        assert "not-a-real-token" not in result.stderr + result.stdout
