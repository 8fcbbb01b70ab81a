"""What the real-pod tests share: examples filled in for the simulators, applying them,
and waiting for an integration and its relay pod to be Ready.

A support module, not a test module: the test modules of this folder import from here,
never from each other.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

from pagerbridge_devkit.demo.manifests import Sandbox
from pagerbridge_devkit.waiting import wait_for as _wait_for

from .bed import Bed

# The dev kit's wait_for, polled every half second: the predicates here run kubectl
# against a real node, and the waits are minutes long.
wait_for = functools.partial(_wait_for, interval=0.5)


def sandboxed(path: Path, sandbox: Sandbox) -> list[dict[str, Any]]:
    """An example with its placeholders filled the way a user fills them, for the simulators."""
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for doc in docs:
        if doc["kind"] == "Secret":
            for key in doc["stringData"]:
                if key == "routing-key":
                    doc["stringData"][key] = sandbox.routing_key
                elif doc["metadata"]["name"].startswith("bigpanda"):
                    doc["stringData"][key] = sandbox.bigpanda_api_token
                else:
                    doc["stringData"][key] = sandbox.pagerduty_api_token
        if doc["kind"] == "PagerDutyIntegration":
            spec = doc["spec"]
            spec["pagerDuty"].update(eventsUrl=sandbox.pagerduty_url, apiUrl=sandbox.pagerduty_url)
            if "serviceId" in spec["pagerDuty"]:
                spec["pagerDuty"]["serviceId"] = sandbox.service_id
            spec.setdefault("bigPanda", {})["apiUrl"] = sandbox.bigpanda_url
            spec.setdefault("relay", {})["publicUrl"] = sandbox.public_url
    return docs


def apply(bed: Bed, namespace: str, docs: list[dict[str, Any]]) -> None:
    bed.kubectl(
        "apply", "--server-side", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(docs)
    )


def wait_ready(bed: Bed, namespace: str, integration: str) -> dict[str, Any]:
    """The integration Ready (reconciled by the operator pod) and its relay pod Ready."""
    waited = bed.kubectl(
        "wait", "-n", namespace, "--for=condition=Ready", f"pdi/{integration}",
        "--timeout=180s", timeout=190, check=False,
    )  # fmt: skip
    if waited.returncode != 0:
        pdi = bed.get(namespace, "pdi", integration) or {}
        conditions = (pdi.get("status") or {}).get("conditions")
        pods = bed.relay_pods(namespace, integration)
        phases = [(p["metadata"]["name"], p["status"].get("phase")) for p in pods]
        raise AssertionError(
            f"{integration} not Ready: conditions {conditions}; relay pods {phases}"
        )
    pod: dict[str, Any] = wait_for(
        lambda: bed.ready_relay_pod(namespace, integration), 180, f"{integration}'s relay pod"
    )
    return pod
