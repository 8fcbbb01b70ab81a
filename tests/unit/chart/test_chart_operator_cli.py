"""The chart's operator arguments are accepted by the real `pagerbridge operator` parser."""

from __future__ import annotations

import argparse

import pytest

from chart.helm_tools import Helm, one
from pagerbridge.cli import build_parser


def _parsed(helm: Helm, *values: str) -> argparse.Namespace:
    pod = one(helm.render(*values), "Deployment")["spec"]["template"]["spec"]
    args: list[str] = pod["containers"][0]["args"]
    parsed = build_parser().parse_args(args)
    assert parsed.command == "operator"
    assert parsed._module == "pagerbridge.cli.operator", "operator subcommand not built"
    return parsed


def test_cluster_scope_arguments(helm: Helm) -> None:
    parsed = _parsed(helm, "--set", "rbac.scope=cluster")
    assert parsed.all_namespaces is True
    assert parsed.namespace == []
    assert parsed.liveness == "http://0.0.0.0:8081/healthz"
    assert parsed.metrics_port == 8080
    assert parsed.verbose is False


def test_namespace_scope_arguments(helm: Helm) -> None:
    parsed = _parsed(
        helm, "--set", "rbac.scope=namespace", "--set", "watchNamespaces={team-a,team-b}"
    )
    assert parsed.all_namespaces is False
    assert parsed.namespace == ["team-a", "team-b"]


def test_verbose_and_extra_arguments(helm: Helm) -> None:
    parsed = _parsed(helm, "--set", "operator.verbose=true")
    assert parsed.verbose is True


def test_unknown_extra_argument_is_refused_by_the_operator(helm: Helm) -> None:
    pod = one(helm.render("--set", "operator.extraArgs={--no-such-flag}"), "Deployment")
    args = pod["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[-1] == "--no-such-flag"
    with pytest.raises(SystemExit):
        build_parser().parse_args(args)
