"""The monitoring bundle: ServiceMonitor, relay PodMonitor and PrometheusRule rendered only
where the Prometheus Operator's CRDs are served (or when forced), alerts that pass
`promtool check rules`, and rules and dashboard that name only metrics PagerBridge exports.

promtool comes from the tool cache like helm (``make tools``: hack/promtool/build.sh
builds it from the Go module proxy); a missing promtool is a failure, never a skip.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from chart.helm_tools import Helm, of_kind, one, tools_dir
from pagerbridge.api.contract import RELAY_INTERNAL_PORT_NAME, RELAY_METRICS_PATH
from pagerbridge.controller import metrics as operator_metrics
from pagerbridge.controller import names as n
from pagerbridge.relay.metrics import RelayMetrics

MONITORING = {
    "ServiceMonitor": ("serviceMonitor", "monitoring.coreos.com/v1/ServiceMonitor"),
    "PodMonitor": ("relayPodMonitor", "monitoring.coreos.com/v1/PodMonitor"),
    "PrometheusRule": ("prometheusRule", "monitoring.coreos.com/v1/PrometheusRule"),
}
ALL_ON = [arg for key, _ in MONITORING.values() for arg in ("--set", f"{key}.enabled=true")]
ALL_APIS = [arg for _, api in MONITORING.values() for arg in ("--api-versions", api)]
# Series Prometheus makes itself, not PagerBridge.
SYNTHETIC = {"up"}
# PromQL words that look like metric names.
PROMQL_WORDS = {
    "sum", "by", "rate", "increase", "max", "min", "min_over_time", "histogram_quantile",
    "le", "and", "on", "label_values",
}  # fmt: skip
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported_names(exposition: str) -> set[str]:
    """Sample names a /metrics page can carry, from its `# TYPE` lines (a labelled
    counter has no sample before its first increment, but always its TYPE line)."""
    names = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            base = name.removesuffix("_total") if kind == "counter" else name
            names.update(base + suffix for suffix in SUFFIXES.get(kind, ("",)))
    return names


def referenced_names(expr: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_braces = re.sub(r"\{[^}]*\}", "", without_strings)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_braces)
    without_groupings = re.sub(r"\b(by|on|without|ignoring)\s*\([^)]*\)", "", without_ranges)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_groupings))
    return {word for word in words if word not in PROMQL_WORDS}


def _render_monitoring(helm: Helm) -> list[dict[str, Any]]:
    return helm.render(*ALL_ON, *ALL_APIS, "--set", "grafanaDashboard.enabled=true")


def _rule_exprs(objects: list[dict[str, Any]]) -> list[str]:
    rule = one(objects, "PrometheusRule")
    return [r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]]


def _dashboard(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (config_map,) = [
        c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"].endswith("-dashboard")
    ]
    dashboard: dict[str, Any] = json.loads(config_map["data"]["pagerbridge.json"])
    return dashboard


def _dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            exprs.append(re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", variable["definition"]))
    return exprs


@pytest.mark.parametrize("kind", sorted(MONITORING))
def test_rendered_only_when_the_crd_is_served_or_forced(helm: Helm, kind: str) -> None:
    key, api = MONITORING[kind]
    assert not of_kind(helm.render("--set", f"{key}.enabled=true"), kind), "no CRD: skipped"
    assert of_kind(helm.render("--set", f"{key}.enabled=true", "--api-versions", api), kind)
    assert of_kind(helm.render("--set", f"{key}.enabled=true", "--set", f"{key}.force=true"), kind)
    assert not of_kind(helm.render("--api-versions", api), kind), "off by default"


def test_relay_pod_monitor_selects_relay_pods_and_labels_the_integration(helm: Helm) -> None:
    cluster_scope = helm.render(*ALL_ON, *ALL_APIS, "--set", "rbac.scope=cluster")
    monitor = one(cluster_scope, "PodMonitor")
    relay_labels = n.child_labels(n.ChildNames("payments"))
    assert monitor["spec"]["selector"]["matchLabels"].items() <= relay_labels.items()
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    # The relay container's internal port (controller/rendering.py), never the public one.
    assert endpoint["port"] == RELAY_INTERNAL_PORT_NAME
    assert endpoint["path"] == RELAY_METRICS_PATH
    integration_label = "__meta_kubernetes_pod_label_" + re.sub(
        r"[^a-zA-Z0-9_]", "_", n.LABEL_INTEGRATION
    )
    targets = {tuple(r["sourceLabels"]): r["targetLabel"] for r in endpoint["relabelings"]}
    assert targets[(integration_label,)] == "integration"
    assert targets[("__meta_kubernetes_namespace",)] == "namespace"
    # The alerts' job="pagerbridge-relay" is the relay pods' app.kubernetes.io/name.
    assert monitor["spec"]["jobLabel"] == n.LABEL_NAME
    assert relay_labels[n.LABEL_NAME] == "pagerbridge-relay"
    scoped = one(
        helm.render(
            *ALL_ON, *ALL_APIS, "--set", "rbac.scope=namespace", "--set", "watchNamespaces={a,b}"
        ),
        "PodMonitor",
    )
    assert scoped["spec"]["namespaceSelector"] == {"matchNames": ["a", "b"]}


def test_alerts_cover_the_failure_modes(helm: Helm) -> None:
    rule = one(_render_monitoring(helm), "PrometheusRule")
    alerts = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    assert {
        "PagerBridgeOperatorDown",
        "PagerBridgeIntegrationNotReady",
        "PagerBridgeReconcileErrors",
        "PagerBridgeRelayDown",
        "PagerBridgeRelayOldestPendingJob",
        "PagerBridgeRelayDeadLetters",
        "PagerBridgeUpstreamUnauthorized",
    } <= alerts.keys()
    for alert in alerts.values():
        assert alert["labels"]["severity"] in {"warning", "critical"}
        assert alert["annotations"]["summary"]
    assert alerts["PagerBridgeOperatorDown"]["expr"] == 'up{job="pagerbridge"} == 0'
    not_ready = alerts["PagerBridgeIntegrationNotReady"]
    assert not_ready["for"] == "10m"
    assert 'pagerbridge_integration_condition{type="Ready", status="True"}' in not_ready["expr"]
    # The gauge's own namespace label (the integration's) survives the scrape.
    monitor = one(_render_monitoring(helm), "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["honorLabels"] is True


def test_rules_and_dashboard_name_only_exported_metrics(helm: Helm) -> None:
    objects = _render_monitoring(helm)
    relay = generate_latest(RelayMetrics().registry).decode()
    registry = CollectorRegistry()
    for collector in (
        operator_metrics.RECONCILES,
        operator_metrics.RECONCILE_ERRORS,
        operator_metrics.RECONCILE_DURATION,
        operator_metrics.QUEUE_DEPTH,
        operator_metrics.APPLIES,
        operator_metrics.INTEGRATION_CONDITION,
        operator_metrics.SUBSCRIPTION_REPAIRS,
        operator_metrics.BUILD_INFO,
    ):
        registry.register(collector)
    exported = exported_names(relay) | exported_names(generate_latest(registry).decode())
    exprs = _rule_exprs(objects) + _dashboard_exprs(_dashboard(objects))
    referenced = set().union(*(referenced_names(e) for e in exprs))
    assert "pagerbridge_relay_dead_letters_total" in referenced
    assert "pagerbridge_integration_condition" in referenced
    unknown = referenced - exported - SYNTHETIC
    assert not unknown, f"metrics no PagerBridge component exports: {sorted(unknown)}"


def test_metric_name_extraction_catches_a_typo() -> None:
    names = referenced_names('sum by (kind) (rate(pagerbridge_relay_dead_leters_total{a="b"}[5m]))')
    assert names == {"pagerbridge_relay_dead_leters_total"}


def test_dashboard_configmap(helm: Helm) -> None:
    objects = _render_monitoring(helm)
    (config_map,) = [
        c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"].endswith("-dashboard")
    ]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = _dashboard(objects)
    assert dashboard["uid"] == "pagerbridge"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert not of_kind(helm.render(), "ConfigMap"), "off by default"


def promtool() -> Path:
    path = tools_dir() / "promtool"
    if not path.is_file():
        pytest.fail(
            f"promtool not found at {path}: run `make tools` (hack/promtool/build.sh)",
            pytrace=False,
        )
    return path


def test_promtool_checks_the_rendered_rules(helm: Helm, tmp_path: Path) -> None:
    rule = one(_render_monitoring(helm), "PrometheusRule")
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump(rule["spec"]))
    result = subprocess.run(
        [str(promtool()), "check", "rules", str(rules_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    # promtool would catch a broken expression.
    broken = tmp_path / "broken.yaml"
    broken.write_text(rules_file.read_text().replace("== 0", "== (", 1))
    failed = subprocess.run(
        [str(promtool()), "check", "rules", str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert failed.returncode != 0
