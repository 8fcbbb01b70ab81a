"""``pagerbridge doctor`` against the local control plane: a real operator, a healthy and a
broken integration; the command finds the problem, says how to fix it, never prints a
secret value, exits 0 once fixed and 1 again when the operator is gone."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
import yaml

from pagerbridge_devkit.localcluster.kubelet import HarnessKubelet
from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_API_TOKEN, DEFAULT_ROUTING_KEY

from ..conftest import Cluster
from .conftest import OperatorProcess, condition, get_json, integration, pd_secret, wait_for

pytestmark = pytest.mark.e2e


def doctor(cluster: Cluster, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable, "-m", "pagerbridge", "doctor", "-n", namespace,
            "--operator-namespace", namespace, "--kubeconfig", str(cluster.kubeconfig), *args,
        ],
        capture_output=True, text=True, timeout=120, check=False, env=cluster.env,
    )  # fmt: skip


def test_doctor_finds_what_to_fix(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    kubelet: HarnessKubelet,
    pagerduty: tuple[Any, str],
) -> None:
    _, pd_url = pagerduty
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=pd_secret())
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=integration("good", pd_url))
    broken = yaml.safe_load(integration("broken", pd_url))
    broken["spec"]["pagerDuty"]["apiToken"] = {"name": "pd-keys", "key": "no-such-key"}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(broken))
    wait_for(
        lambda: condition(get_json(cluster, namespace, "pdi", "good")).get("status") == "True",
        90,
        "good Ready",
    )
    wait_for(
        lambda: condition(get_json(cluster, namespace, "pdi", "broken")).get("status") == "False",
        60,
        "broken not Ready",
    )

    result = doctor(cluster, namespace, "--verbose")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "pagerdutyintegrations.pagerbridge.io installed and current" in out
    assert f"Lease {namespace}/pagerbridge-operator: leader" in out
    assert f"Integration {namespace}/broken" in out
    assert "spec.pagerDuty.apiToken: Secret pd-keys has no key no-such-key" in out
    assert f"kubectl describe pdi -n {namespace} broken" in out
    good = out.split(f"Integration {namespace}/good\n", 1)[1]
    assert "  [ok] Ready\n" in good
    assert "[FAIL]" not in good
    assert "no public URL" in out  # neither sets relay.publicUrl nor relay.expose
    for secret in (DEFAULT_ROUTING_KEY, DEFAULT_API_TOKEN):
        assert secret not in out  # key names only, never values
    token = get_json(cluster, namespace, "secret", "good-relay-token")
    assert token is not None
    for value in token["data"].values():
        assert value not in out

    cluster.kubectl("delete", "-n", namespace, "pdi", "broken", "--wait=true")
    fixed = doctor(cluster, namespace, "-o", "json")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    findings = json.loads(fixed.stdout)
    assert not [f for f in findings if f["level"] == "FAIL"]
    assert any(f["section"] == f"Integration {namespace}/good" for f in findings)

    # Without namespaces: the Lease and the integration are found across the cluster.
    everywhere = subprocess.run(
        [
            sys.executable, "-m", "pagerbridge", "doctor", "-A", "-v",
            "--kubeconfig", str(cluster.kubeconfig),
        ],
        capture_output=True, text=True, timeout=120, check=False, env=cluster.env,
    ).stdout  # fmt: skip
    assert f"Lease {namespace}/pagerbridge-operator: leader" in everywhere
    assert f"Integration {namespace}/good\n" in everywhere

    operator.stop()  # releases its Lease
    gone = doctor(cluster, namespace)
    assert gone.returncode == 1
    assert "no running operator found" in gone.stdout
