"""kstatus while the relay starts: in progress (Reconciling), not failed (issue 7, GitOps).

No harness kubelet at first, so the relay Deployment gets no status, as in a cluster whose
pods are still being scheduled: the integration must read ``Ready=Unknown`` /
``RelayStarting`` with ``Reconciling=True`` (Argo CD: Progressing, Flux: in progress), not
a failure. A Deployment whose rollout exceeded its progress deadline is a failure
(``RelayUnavailable``, ``Reconciling=False``). Once a relay runs, ``kubectl wait
--for=condition=Ready`` returns.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pagerbridge_devkit.localcluster.kubelet import HarnessKubelet
from pagerbridge_devkit.sandbox.pagerduty import PagerDutySimulator

from ..conftest import Cluster
from .conftest import (
    OperatorProcess,
    condition,
    get_json,
    integration,
    merge_patch,
    pd_secret,
    wait_for,
)

pytestmark = pytest.mark.e2e


def _conditions(cluster: Cluster, namespace: str) -> tuple[dict[str, object], dict[str, object]]:
    body = get_json(cluster, namespace, "pdi", "slow")
    return condition(body), condition(body, "Reconciling")


def _shape(cond: dict[str, object]) -> tuple[object, object]:
    return cond.get("status"), cond.get("reason")


def test_relay_starting_is_progress_and_a_missed_deadline_is_a_failure(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    pagerduty: tuple[PagerDutySimulator, str],
    tmp_path: Path,
) -> None:
    _, pd_url = pagerduty
    manifest = f"{pd_secret()}---\n{integration('slow', pd_url)}"
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=manifest)

    starting = wait_for(
        lambda: (c := _conditions(cluster, namespace))[0].get("reason") == "RelayStarting" and c,
        30,
        "Ready reason RelayStarting",
    )
    ready, reconciling = starting
    assert _shape(ready) == ("Unknown", "RelayStarting")
    assert _shape(reconciling) == ("True", "RelayStarting")
    assert "slow-relay" in str(ready["message"])
    waited = cluster.kubectl(
        "wait", "-n", namespace, "--for=condition=Ready", "pdi/slow", "--timeout=2s", check=False
    )
    assert waited.returncode != 0  # kubectl wait keeps waiting while the relay starts
    events = get_json(cluster, namespace, "events", "--field-selector", "type=Warning")
    assert not [e for e in events["items"] if e["involvedObject"]["name"] == "slow"]

    # What the Deployment controller writes when a rollout misses progressDeadlineSeconds.
    deadline_missed = {
        "status": {
            "observedGeneration": 1,
            "replicas": 1,
            "unavailableReplicas": 1,
            "conditions": [
                {
                    "type": "Progressing",
                    "status": "False",
                    "reason": "ProgressDeadlineExceeded",
                    "message": 'ReplicaSet "slow-relay-1" has timed out progressing.',
                }
            ],
        }
    }
    merge_patch(
        cluster, namespace, "deployment", "slow-relay", deadline_missed, "--subresource=status"
    )
    failed = wait_for(
        lambda: (c := _conditions(cluster, namespace))[0].get("reason") == "RelayUnavailable" and c,
        30,
        "Ready reason RelayUnavailable after the progress deadline",
    )
    assert _shape(failed[0]) == ("False", "RelayUnavailable")
    assert _shape(failed[1])[0] == "False"
    assert "progress deadline" in str(failed[0]["message"])

    with HarnessKubelet(cluster.kubeconfig, tmp_path / "kubelet", namespace):
        cluster.kubectl(
            "wait", "-n", namespace, "--for=condition=Ready", "pdi/slow", "--timeout=60s",
            timeout=70,
        )  # fmt: skip
        ready, reconciling = _conditions(cluster, namespace)
        assert _shape(ready) == ("True", "Ready")
        assert _shape(reconciling) == ("False", "Idle")
