"""GitOps readiness of examples/: server-side apply twice shows no diff, the operator never
takes over `spec`, and every object reaches Ready (what docs/gitops.md promises Argo CD
and Flux users).

The examples are applied the way a GitOps controller applies them (server-side, one field
manager), with sandbox values in place of the placeholders: routing keys and tokens the
simulators accept, and the simulators' URLs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pagerbridge_devkit.localcluster.kubelet import HarnessKubelet
from pagerbridge_devkit.sandbox import bigpanda as bp_sandbox
from pagerbridge_devkit.sandbox.bigpanda import BigPandaSimulator
from pagerbridge_devkit.sandbox.pagerduty import (
    DEFAULT_API_TOKEN,
    DEFAULT_ROUTING_KEY,
    DEFAULT_SERVICE_ID,
    PagerDutySimulator,
)

from ..conftest import REPO, Cluster
from .conftest import OperatorProcess, condition, get_json, wait_for

pytestmark = pytest.mark.e2e

MANAGER = "gitops"
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
CUSTOM_KINDS = {"PagerDutyIntegration", "PagerDutyKeyOverride", "PagerDutyTagMapping"}


def sandboxed(path: Path, pd_url: str, bp_url: str) -> list[dict[str, Any]]:
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for doc in docs:
        if doc["kind"] == "Secret":
            for key in doc["stringData"]:
                if key == "routing-key":
                    doc["stringData"][key] = DEFAULT_ROUTING_KEY
                elif doc["metadata"]["name"].startswith("bigpanda"):
                    doc["stringData"][key] = bp_sandbox.DEFAULT_API_TOKEN
                else:
                    doc["stringData"][key] = DEFAULT_API_TOKEN
        if doc["kind"] == "PagerDutyIntegration":
            pd = doc["spec"]["pagerDuty"]
            pd["eventsUrl"] = pd_url
            pd["apiUrl"] = pd_url
            if "serviceId" in pd:
                pd["serviceId"] = DEFAULT_SERVICE_ID
            doc["spec"].setdefault("bigPanda", {})["apiUrl"] = bp_url
    return docs


def apply(cluster: Cluster, namespace: str, directory: Path) -> str:
    return cluster.kubectl(
        "apply", "--server-side", f"--field-manager={MANAGER}", "-n", namespace,
        "-f", str(directory),
    ).stdout  # fmt: skip


def snapshot(cluster: Cluster, namespace: str, docs: list[dict[str, Any]]) -> dict[str, Any]:
    """kind/name -> (generation, spec or data) of every applied object."""
    state: dict[str, Any] = {}
    for doc in docs:
        body = get_json(cluster, namespace, doc["kind"], doc["metadata"]["name"])
        assert body is not None, f"{doc['kind']}/{doc['metadata']['name']} missing"
        content = body.get("spec", body.get("data"))
        state[f"{doc['kind']}/{doc['metadata']['name']}"] = (
            body["metadata"].get("generation"),
            content,
        )
    return state


def foreign_spec_owners(body: dict[str, Any]) -> list[str]:
    """Field managers other than the GitOps one that own anything in `spec`."""
    owners = []
    for entry in body["metadata"].get("managedFields", []):
        if entry["manager"] == MANAGER or entry.get("subresource") == "status":
            continue
        if "f:spec" in (entry.get("fieldsV1") or {}):
            owners.append(f"{entry['manager']} ({entry['operation']})")
    return owners


def test_examples_apply_twice_without_diff_and_reach_ready(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    kubelet: HarnessKubelet,
    pagerduty: tuple[PagerDutySimulator, str],
    bigpanda: tuple[BigPandaSimulator, str],
    tmp_path: Path,
) -> None:
    _, pd_url = pagerduty
    _, bp_url = bigpanda
    assert len(EXAMPLES) >= 3
    directory = tmp_path / "examples"
    directory.mkdir()
    docs: list[dict[str, Any]] = []
    for path in EXAMPLES:
        example = sandboxed(path, pd_url, bp_url)
        (directory / path.name).write_text(yaml.safe_dump_all(example))
        docs += example

    apply(cluster, namespace, directory)
    custom = [doc for doc in docs if doc["kind"] in CUSTOM_KINDS]
    assert {doc["kind"] for doc in custom} == CUSTOM_KINDS

    def all_ready() -> bool:
        return all(
            condition(get_json(cluster, namespace, doc["kind"], doc["metadata"]["name"])).get(
                "status"
            )
            == "True"
            for doc in custom
        )

    try:
        wait_for(all_ready, 120, "every example object Ready")
    except AssertionError as exc:
        states = {
            doc["metadata"]["name"]: condition(
                get_json(cluster, namespace, doc["kind"], doc["metadata"]["name"])
            )
            for doc in custom
        }
        raise AssertionError(f"{exc}\n{json.dumps(states, indent=1)}") from None
    before = snapshot(cluster, namespace, docs)

    # kstatus: Ready is about the current generation.
    for doc in custom:
        body = get_json(cluster, namespace, doc["kind"], doc["metadata"]["name"])
        assert body["status"]["observedGeneration"] == body["metadata"]["generation"]
        assert condition(body)["observedGeneration"] == body["metadata"]["generation"]
        assert not foreign_spec_owners(body), foreign_spec_owners(body)

    # A GitOps controller's next sync: no diff, and applying again changes nothing.
    diff = cluster.kubectl(
        "diff", "--server-side", f"--field-manager={MANAGER}", "-n", namespace,
        "-f", str(directory), check=False,
    )  # fmt: skip
    assert diff.returncode == 0, f"diff after the operator reconciled:\n{diff.stdout}{diff.stderr}"
    assert diff.stdout == ""
    apply(cluster, namespace, directory)
    assert snapshot(cluster, namespace, docs) == before
    assert all_ready()
