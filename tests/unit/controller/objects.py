"""Cluster objects the reconciler tests put into the in-memory API (:mod:`.fake_kube`):
Secrets, integrations and overrides as a user applies them, the relay made available as
the Deployment controller would, and a condition read back from a status.

A support module, not a test module: the reconciler and never-adopt tests import from here.
"""

from __future__ import annotations

import base64
from typing import Any

from pagerbridge.controller.render import conditions as c
from pagerbridge.controller.settings import OperatorSettings
from pagerbridge_devkit.sandbox.server import loopback_egress_policy

from .fake_kube import FakeKube

NS = "team-a"
ROUTING_KEY = "0123456789abcdef0123456789abcdef"


def secret(name: str, **values: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
    }


def integration(name: str = "pay", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pagerbridge.io/v1alpha1",
        "kind": "PagerDutyIntegration",
        "metadata": {"name": name},
        "spec": {"pagerDuty": {"routingKey": {"name": "pd", "key": "routing-key"}}, **spec},
    }


def override(name: str, target: str = "pay") -> dict[str, Any]:
    return {
        "apiVersion": "pagerbridge.io/v1alpha1",
        "kind": "PagerDutyKeyOverride",
        "metadata": {"name": name},
        "spec": {"integrationRef": {"name": target}, "tag": "pd_key"},
    }


def ready_relay(kube: FakeKube, name: str = "pay") -> None:
    """What the Deployment controller and kubelet would do: the relay is available."""
    deployment = kube.find("Deployment", NS, f"{name}-relay")
    assert deployment is not None
    deployment["status"] = {
        "observedGeneration": deployment["metadata"]["generation"],
        "replicas": 1,
        "readyReplicas": 1,
        "availableReplicas": 1,
        "updatedReplicas": 1,
        "conditions": [
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}
        ],
    }


def condition(obj: dict[str, Any] | None, type_: str = c.READY) -> dict[str, Any]:
    found = c.find(list(((obj or {}).get("status") or {}).get("conditions") or []), type_)
    return dict(found or {})


CLUSTER = "cluster-1"


def settings() -> OperatorSettings:
    """The operator's settings for tests against the simulators on loopback."""
    return OperatorSettings(egress=loopback_egress_policy(), cluster_id=CLUSTER)
