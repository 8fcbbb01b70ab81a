"""Every metric the chart's alerts and dashboard name is on the /metrics page of a running
operator or of a running relay (the real processes, on the local control plane)."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
import yaml

from pagerbridge.controller.names import ChildNames
from pagerbridge_devkit.localcluster.kubelet import HarnessKubelet

from ..conftest import REPO, Cluster
from .conftest import OperatorProcess, integration, pd_secret, wait_for

pytestmark = pytest.mark.e2e

CHART = REPO / "charts" / "pagerbridge"
SYNTHETIC = {"up"}  # made by Prometheus itself
PROMQL_WORDS = {
    "sum", "by", "rate", "increase", "max", "min", "min_over_time", "histogram_quantile",
    "le", "and", "on", "label_values",
}  # fmt: skip
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def _exported(page: str) -> set[str]:
    names = set()
    for line in page.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            base = name.removesuffix("_total") if kind == "counter" else name
            names.update(base + suffix for suffix in SUFFIXES.get(kind, ("",)))
    return names


def _referenced(expr: str) -> set[str]:
    text = re.sub(r'"[^"]*"', '""', expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|on|without|ignoring)\s*\([^)]*\)", "", text)
    return set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text)) - PROMQL_WORDS


def _chart_exprs(cluster: Cluster) -> list[str]:
    rendered = cluster.helm(
        "template", "pb", str(CHART), "--set", "prometheusRule.enabled=true",
        "--set", "prometheusRule.force=true", "--set", "grafanaDashboard.enabled=true",
    ).stdout  # fmt: skip
    docs: list[dict[str, Any]] = [d for d in yaml.safe_load_all(rendered) if d]
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    exprs = [r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]]
    (dashboard_map,) = [d for d in docs if d["kind"] == "ConfigMap"]
    dashboard = json.loads(dashboard_map["data"]["pagerbridge.json"])
    exprs += [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    return exprs


def test_alerts_and_dashboard_name_metrics_of_the_running_operator_and_relay(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    kubelet: HarnessKubelet,
    pagerduty: tuple[Any, str],
) -> None:
    _, pd_url = pagerduty
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=pd_secret())
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=integration("watched", pd_url))
    relay = ChildNames("watched").relay

    def relay_url() -> str | None:
        pod = kubelet.pod(namespace, relay)
        return pod.internal_url if pod is not None and pod.running() else None

    url = wait_for(relay_url, 90, f"the relay of {namespace}/watched running")

    def page(address: str) -> str | None:
        try:
            response = httpx.get(address, timeout=5)
        except httpx.HTTPError:
            return None
        return response.text if response.status_code == 200 else None

    relay_page = wait_for(lambda: page(f"{url}/metrics"), 30, "relay /metrics")
    operator_page = wait_for(
        lambda: page(f"http://127.0.0.1:{operator.metrics_port}/metrics"), 30, "operator /metrics"
    )
    exported = _exported(relay_page) | _exported(operator_page)
    referenced = set().union(*(_referenced(expr) for expr in _chart_exprs(cluster)))
    assert {"pagerbridge_relay_outbox_pending", "pagerbridge_operator_reconciles_total"} <= (
        referenced
    )
    unknown = referenced - exported - SYNTHETIC
    assert not unknown, f"named by the chart, exported by no running process: {sorted(unknown)}"


def _ready_series(page: str, namespace: str, name: str) -> dict[str, float]:
    """The Ready condition's series of one integration: status -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        sample.labels["status"]: sample.value
        for family in text_string_to_metric_families(page)
        if family.name == "pagerbridge_integration_condition"
        for sample in family.samples
        if sample.labels["namespace"] == namespace
        and sample.labels["name"] == name
        and sample.labels["type"] == "Ready"
    }


def test_integration_condition_gauge_follows_ready_and_goes_with_the_integration(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    kubelet: HarnessKubelet,
    pagerduty: tuple[Any, str],
) -> None:
    _, pd_url = pagerduty
    metrics_url = f"http://127.0.0.1:{operator.metrics_port}/metrics"

    def fetch() -> str | None:
        try:
            response = httpx.get(metrics_url, timeout=5)
        except httpx.HTTPError:
            return None
        return response.text if response.status_code == 200 else None

    def series() -> dict[str, float] | None:
        page = fetch()
        return None if page is None else _ready_series(page, namespace, "gauged")

    page = wait_for(fetch, 30, "operator /metrics")
    assert "pagerbridge_build_info{" in page
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=pd_secret())
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=integration("gauged", pd_url))
    ready = wait_for(
        lambda: (s := series()) and s.get("True") == 1 and s, 90, "Ready=True in the gauge"
    )
    assert ready == {"True": 1, "False": 0, "Unknown": 0}
    cluster.kubectl("delete", "-n", namespace, "pdi", "gauged", "--wait=true")
    wait_for(lambda: series() == {}, 60, "the deleted integration's series gone")
