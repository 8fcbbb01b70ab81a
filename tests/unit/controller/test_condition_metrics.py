"""``pagerbridge_integration_condition`` (cert-manager's ``*_ready_status`` shape) and
``pagerbridge_build_info``, read back from a real Prometheus exposition."""

from __future__ import annotations

import platform

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pagerbridge import __version__
from pagerbridge.controller import metrics
from pagerbridge.controller.metrics import ConditionGauge

Series = dict[tuple[str, str, str, str], float]


def _gauge() -> tuple[ConditionGauge, CollectorRegistry]:
    registry = CollectorRegistry()
    gauge = Gauge(
        "pagerbridge_integration_condition",
        "test",
        ["namespace", "name", "type", "status"],
        registry=registry,
    )
    return ConditionGauge(gauge), registry


def _series(registry: CollectorRegistry) -> Series:
    page = generate_latest(registry).decode()
    return {
        (s.labels["namespace"], s.labels["name"], s.labels["type"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(page)
        for s in family.samples
    }


def cond(type_: str, status: str) -> dict[str, str]:
    return {"type": type_, "status": status, "reason": "R", "message": ""}


def test_one_series_per_status_valued_one_for_the_current_status() -> None:
    gauge, registry = _gauge()
    gauge.set("team-a", "pay", [cond("Ready", "False"), cond("SecretsResolved", "True")])
    series = _series(registry)
    assert series[("team-a", "pay", "Ready", "False")] == 1
    assert series[("team-a", "pay", "Ready", "True")] == 0
    assert series[("team-a", "pay", "Ready", "Unknown")] == 0
    assert series[("team-a", "pay", "SecretsResolved", "True")] == 1
    assert len(series) == 6

    gauge.set("team-a", "pay", [cond("Ready", "True"), cond("SecretsResolved", "True")])
    series = _series(registry)
    assert series[("team-a", "pay", "Ready", "True")] == 1
    assert series[("team-a", "pay", "Ready", "False")] == 0


def test_a_condition_type_that_disappears_loses_its_series() -> None:
    gauge, registry = _gauge()
    gauge.set("team-a", "pay", [cond("Ready", "True"), cond("Reconciling", "True")])
    gauge.set("team-a", "pay", [cond("Ready", "True")])
    assert {key[2] for key in _series(registry)} == {"Ready"}


def test_a_deleted_integration_loses_all_its_series_and_no_other() -> None:
    gauge, registry = _gauge()
    gauge.set("team-a", "pay", [cond("Ready", "True")])
    gauge.set("team-a", "ops", [cond("Ready", "Unknown")])
    gauge.remove("team-a", "pay")
    assert {key[:2] for key in _series(registry)} == {("team-a", "ops")}
    gauge.remove("team-a", "pay")  # twice: nothing left to remove, no error
    gauge.remove("team-b", "never-seen")


def test_an_unexpected_status_counts_as_unknown() -> None:
    gauge, registry = _gauge()
    gauge.set("team-a", "pay", [cond("Ready", "Maybe")])
    assert _series(registry)[("team-a", "pay", "Ready", "Unknown")] == 1
    assert ("team-a", "pay", "Ready", "Maybe") not in _series(registry)


def test_build_info_names_the_version_and_python() -> None:
    registry = CollectorRegistry()
    registry.register(metrics.BUILD_INFO)
    (family,) = text_string_to_metric_families(generate_latest(registry).decode())
    (sample,) = family.samples
    assert sample.name == "pagerbridge_build_info"
    assert sample.labels == {"version": __version__, "python_version": platform.python_version()}
    assert sample.value == 1
