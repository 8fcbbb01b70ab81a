"""NOTES.txt tells the user the next commands.

`helm install --dry-run` still contacts a cluster in Helm 3 (helm/helm#13144), so the
test renders NOTES.txt through `helm template` from a copy of the chart in which the
notes are wrapped into a named template and printed into a ConfigMap.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest

from chart.helm_tools import CHART, Helm, one
from pagerbridge.cli import build_parser


@pytest.fixture(scope="module")
def notes_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("chart") / "pagerbridge"
    shutil.copytree(CHART, copy)
    notes = copy / "templates" / "NOTES.txt"
    body = notes.read_text()
    notes.unlink()
    (copy / "templates" / "_test_notes.tpl").write_text(
        '{{- define "test.notes" -}}\n' + body + "\n{{- end }}\n"
    )
    (copy / "templates" / "test-notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n"
        'data:\n  notes: {{ include "test.notes" . | toJson }}\n'
    )
    return copy


def _notes(helm: Helm, chart: Path, *values: str) -> str:
    objects = helm.render("--show-only", "templates/test-notes.yaml", *values, chart=chart)
    text: str = one(objects, "ConfigMap")["data"]["notes"]
    return text


def test_notes_name_the_next_commands(helm: Helm, notes_chart: Path) -> None:
    notes = _notes(helm, notes_chart)
    assert "rollout status deployment/pb-pagerbridge" in notes
    assert "kubectl apply -n pagerbridge-system -f examples/01-minimal.yaml" in notes
    assert "kubectl wait -n pagerbridge-system --for=condition=Ready pdi/minimal" in notes
    assert "pagerbridge webhook-config" in notes
    assert "only: pagerbridge-system" in notes  # the default: the release namespace
    assert "every namespace" in _notes(helm, notes_chart, "--set", "rbac.scope=cluster")
    assert "http://pb-pagerbridge.pagerbridge-system.svc:8080/metrics" in notes


def test_notes_follow_the_namespace_scope(helm: Helm, notes_chart: Path) -> None:
    notes = _notes(
        helm, notes_chart, "--set", "rbac.scope=namespace", "--set", "watchNamespaces={team-a}"
    )
    assert "only: team-a" in notes
    assert "kubectl apply -n team-a -f examples/01-minimal.yaml" in notes
    assert "kubectl wait -n team-a --for=condition=Ready pdi/minimal" in notes


def test_notes_webhook_config_command_parses(helm: Helm, notes_chart: Path) -> None:
    """The `pagerbridge webhook-config ...` line is accepted by the real CLI parser."""
    notes = _notes(helm, notes_chart)
    (line,) = [ln.strip() for ln in notes.splitlines() if "pagerbridge webhook-config" in ln]
    parsed = build_parser().parse_args(shlex.split(line)[1:])
    assert parsed._module == "pagerbridge.cli.webhook_config"
    assert parsed.name == "minimal"
    assert parsed.namespace == "pagerbridge-system"


def test_notes_example_exists() -> None:
    example = CHART.parents[1] / "examples" / "01-minimal.yaml"
    assert "name: minimal" in example.read_text()


def test_notes_say_when_a_monitoring_object_was_skipped(helm: Helm, notes_chart: Path) -> None:
    skipped = _notes(helm, notes_chart, "--set", "relayPodMonitor.enabled=true")
    assert "relayPodMonitor.enabled is set, but this cluster does not serve" in skipped
    assert "relayPodMonitor.force=true" in skipped
    served = _notes(
        helm, notes_chart, "--set", "relayPodMonitor.enabled=true",
        "--api-versions", "monitoring.coreos.com/v1/PodMonitor",
    )  # fmt: skip
    assert "does not serve" not in served
