"""Relay pod settings on a real API server: the chart's `relay` values, passed to the real
operator process the way the chart's Deployment passes them, plus an integration's
spec.relay overrides, end up in the relay Deployment the API server stores."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pagerbridge.controller.names import ChildNames, selector_labels
from pagerbridge.controller.settings import RELAY_DEFAULTS_ENV
from pagerbridge_devkit.ports import free_port

from ..conftest import REPO, Cluster
from .conftest import OperatorProcess, get_json, integration, pd_secret, wait_for

pytestmark = pytest.mark.e2e

CHART = REPO / "charts" / "pagerbridge"


@pytest.fixture
def priority_class(cluster: Cluster) -> Iterator[str]:
    name = f"pb-relays-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "priorityclass", name, "--value=1000", "--description=e2e")
    yield name
    cluster.kubectl("delete", "priorityclass", name, "--wait=false", check=False)


def _chart_relay_defaults(cluster: Cluster, tmp_path: Path, relay: dict[str, Any]) -> str:
    """PAGERBRIDGE_RELAY_DEFAULTS as the chart's operator Deployment sets it."""
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"relay": relay}))
    rendered = cluster.helm("template", "pb", str(CHART), "-f", str(values)).stdout
    (deployment,) = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    value: str = env[RELAY_DEFAULTS_ENV]
    return value


def test_relay_pods_carry_the_operator_defaults_and_the_integration_s_overrides(
    cluster: Cluster,
    namespace: str,
    priority_class: str,
    pagerduty: tuple[Any, str],
    tmp_path: Path,
) -> None:
    zone_spread = {
        "maxSkew": 1,
        "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "ScheduleAnyway",
    }
    defaults = {
        "imagePullSecrets": [{"name": "regcred"}],
        "nodeSelector": {"pool": "integrations"},
        "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "pb", "effect": "NoSchedule"}
        ],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}
                            ]
                        }
                    ]
                }
            }
        },
        "topologySpreadConstraints": [zone_spread],
        "priorityClassName": priority_class,
        "podLabels": {"tier": "relay", "team": "platform"},
        "podAnnotations": {"example.com/owner": "platform"},
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "96Mi"}},
    }
    operator = OperatorProcess(
        cluster,
        namespace,
        tmp_path / "operator.log",
        free_port(),
        free_port(),
        extra_env={RELAY_DEFAULTS_ENV: _chart_relay_defaults(cluster, tmp_path, defaults)},
    )
    operator.start()
    try:
        _, pd_url = pagerduty
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=pd_secret())
        body = yaml.safe_load(integration("payments", pd_url))
        body["spec"]["relay"] = {
            "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoExecute"}],
            "podLabels": {"team": "payments"},
            "imagePullSecrets": [{"name": "payments-regcred"}],
        }
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(body))
        relay = ChildNames("payments").relay

        def stored() -> dict[str, Any] | None:
            assert operator.process is not None
            assert operator.process.poll() is None, f"operator exited:\n{operator.log()[-3000:]}"
            deployment: dict[str, Any] | None = get_json(cluster, namespace, "deployment", relay)
            return deployment

        deployment = wait_for(stored, 60, f"deployment/{relay}")
    finally:
        operator.stop()

    template = deployment["spec"]["template"]
    pod = template["spec"]
    # The integration's settings replace the defaults...
    assert pod["tolerations"] == [{"key": "gpu", "operator": "Exists", "effect": "NoExecute"}]
    assert pod["imagePullSecrets"] == [{"name": "payments-regcred"}]
    # ...the rest comes from the chart's values.
    assert pod["nodeSelector"] == {"pool": "integrations"}
    assert pod["affinity"] == defaults["affinity"]
    assert pod["priorityClassName"] == priority_class
    assert pod["topologySpreadConstraints"] == [
        {**zone_spread, "labelSelector": {"matchLabels": selector_labels(ChildNames("payments"))}}
    ]
    (container,) = pod["containers"]
    assert container["resources"] == defaults["resources"]
    labels = template["metadata"]["labels"]
    assert (labels["tier"], labels["team"]) == ("relay", "payments")
    assert selector_labels(ChildNames("payments")).items() <= labels.items()
    assert template["metadata"]["annotations"]["example.com/owner"] == "platform"


def test_operator_refuses_malformed_relay_defaults(cluster: Cluster) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pagerbridge", "operator", "--all-namespaces"],
        env={**cluster.env, RELAY_DEFAULTS_ENV: '{"nodeSelektor": {"pool": "x"}}'},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert f"{RELAY_DEFAULTS_ENV}: nodeSelektor: Extra inputs are not permitted" in result.stderr
