"""What the Deployment controller would write into a relay Deployment's status (pure).

The harness kubelet runs one local process per relay Deployment and reports it here: the
replica counts and the ``Available`` / ``Progressing`` conditions, with
``spec.progressDeadlineSeconds`` honoured, so the operator reads the same status it would
read on a real cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Rollout:
    """The tracked rollout of one pod template."""

    started: float  # wall clock
    completed: bool  # its pod was ready at least once


def deployment_status(
    deployment: dict[str, Any],
    *,
    ready: bool,
    rollout: Rollout | None,
    now: float,
    ready_replicas: int | None = None,
) -> dict[str, Any]:
    """The status of a relay Deployment: ``ready`` whether any replica is ready,
    ``ready_replicas`` how many are (default: one when ready; status-only mode and
    single-replica Deployments).

    ``rollout`` None means status-only mode: no process runs and every relay counts as
    rolled out when ready.
    """
    replicas = int(deployment["spec"].get("replicas", 1))
    count = (1 if ready else 0) if ready_replicas is None else ready_replicas
    shown = replicas if ready_replicas is not None else min(replicas, 1)
    return {
        "observedGeneration": int(deployment["metadata"].get("generation", 1)),
        "replicas": shown,
        "updatedReplicas": shown,
        "readyReplicas": count,
        "availableReplicas": count,
        "unavailableReplicas": max(replicas - count, 0),
        "conditions": conditions(deployment, ready=ready, rollout=rollout, now=now),
    }


def conditions(
    deployment: dict[str, Any], *, ready: bool, rollout: Rollout | None, now: float
) -> list[dict[str, Any]]:
    """``Available`` and ``Progressing`` as the Deployment controller writes them.

    A rollout (new pod template) is ``Progressing=True`` (``ReplicaSetUpdated``) until its
    pod is ready once (``NewReplicaSetAvailable``, kept when the pod fails later), or
    ``False`` (``ProgressDeadlineExceeded``) after ``spec.progressDeadlineSeconds``.
    """
    deadline = int(deployment["spec"].get("progressDeadlineSeconds", 600))
    if rollout is None:
        since = str(deployment["metadata"].get("creationTimestamp", ""))
        rolled_out, overdue = ready, False
    else:
        since = _rfc3339(rollout.started)
        rolled_out = rollout.completed
        overdue = now - rollout.started > deadline
    if rolled_out:
        progressing = ("True", "NewReplicaSetAvailable", "the relay pod has become ready")
    elif overdue:
        progressing = ("False", "ProgressDeadlineExceeded", f"no ready relay after {deadline}s")
    else:
        progressing = ("True", "ReplicaSetUpdated", "the relay pod is starting")
    available = (
        ("True", "MinimumReplicasAvailable", "the relay is ready")
        if ready
        else ("False", "MinimumReplicasUnavailable", "the relay is not ready")
    )
    return [
        {
            "type": type_,
            "status": status,
            "reason": reason,
            "message": message,
            "lastUpdateTime": since,
            "lastTransitionTime": since,
        }
        for type_, (status, reason, message) in (
            ("Available", available),
            ("Progressing", progressing),
        )
    ]


def differs(current: dict[str, Any], desired: dict[str, Any]) -> bool:
    """True when writing ``desired`` would change ``current`` (the status as read)."""
    return any(current.get(key, 0) != value for key, value in desired.items())


def _rfc3339(at: float) -> str:
    return datetime.fromtimestamp(int(at), UTC).isoformat().replace("+00:00", "Z")
