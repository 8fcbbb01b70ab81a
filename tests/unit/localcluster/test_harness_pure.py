"""The harness kubelet's pure parts: the Deployment status it writes, path rewriting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pagerbridge_devkit.localcluster.deployment_status import (
    Rollout,
    deployment_status,
    differs,
)
from pagerbridge_devkit.localcluster.pod_volumes import mounts, rewrite


def deployment(replicas: int = 1, deadline: int = 60) -> dict[str, Any]:
    return {
        "metadata": {"generation": 3, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"replicas": replicas, "progressDeadlineSeconds": deadline},
    }


def by_type(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_ready_pod_is_available_and_its_rollout_complete() -> None:
    status = deployment_status(
        deployment(), ready=True, rollout=Rollout(started=100.0, completed=True), now=110.0
    )
    assert status["readyReplicas"] == status["availableReplicas"] == 1
    assert status["unavailableReplicas"] == 0
    assert status["observedGeneration"] == 3
    assert by_type(status) == {
        "Available": ("True", "MinimumReplicasAvailable"),
        "Progressing": ("True", "NewReplicaSetAvailable"),
    }


def test_starting_pod_progresses_until_the_deadline_then_fails() -> None:
    rollout = Rollout(started=100.0, completed=False)
    before = deployment_status(deployment(deadline=60), ready=False, rollout=rollout, now=159.0)
    after = deployment_status(deployment(deadline=60), ready=False, rollout=rollout, now=161.0)
    assert by_type(before)["Progressing"] == ("True", "ReplicaSetUpdated")
    assert by_type(after)["Progressing"] == ("False", "ProgressDeadlineExceeded")
    assert by_type(after)["Available"] == ("False", "MinimumReplicasUnavailable")
    assert after["unavailableReplicas"] == 1


def test_a_completed_rollout_stays_complete_when_the_pod_fails_later() -> None:
    status = deployment_status(
        deployment(), ready=False, rollout=Rollout(started=0.0, completed=True), now=10_000.0
    )
    assert by_type(status)["Progressing"] == ("True", "NewReplicaSetAvailable")
    assert by_type(status)["Available"][0] == "False"


def test_scaled_to_zero_has_nothing_unavailable() -> None:
    status = deployment_status(deployment(replicas=0), ready=False, rollout=None, now=0.0)
    assert status["replicas"] == status["unavailableReplicas"] == 0


def test_status_is_rewritten_only_when_it_changes() -> None:
    status = deployment_status(deployment(), ready=True, rollout=None, now=0.0)
    assert not differs(dict(status), status)
    assert differs({**status, "readyReplicas": 0}, status)
    assert differs({}, status)


def test_rewrite_replaces_whole_mount_paths_longest_first(tmp_path: Path) -> None:
    spec = {
        "containers": [
            {
                "volumeMounts": [
                    {"name": "secrets", "mountPath": "/etc/pagerbridge/secrets"},
                    {"name": "secret-key", "mountPath": "/etc/pagerbridge/secrets/key"},
                    {"name": "config", "mountPath": "/etc/pagerbridge/config"},
                ]
            }
        ]
    }
    mount_map = mounts(tmp_path, spec)
    volumes = tmp_path / "volumes"
    text = (
        '{"a": "/etc/pagerbridge/secrets/key/routing", "b": "/etc/pagerbridge/secrets/x", '
        '"c": "/etc/pagerbridge/configuration", "d": "/etc/pagerbridge/config"}'
    )
    assert rewrite(text, mount_map) == (
        f'{{"a": "{volumes}/secret-key/routing", "b": "{volumes}/secrets/x", '
        f'"c": "/etc/pagerbridge/configuration", "d": "{volumes}/config"}}'
    )
