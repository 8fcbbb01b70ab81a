"""The manifests the demo applies: the repository's examples, with sandbox values.

``examples/03-bidirectional.yaml`` (both directions: events, notes, resolves) plus the
key override and tag mapping of ``examples/02-override-and-mappings.yaml``, pointed at
that integration. Placeholders are replaced the way a user would fill them in: each
Secret key gets the credential its referencing field asks for (routing key, PagerDuty API
key, BigPanda API key), and the integration gets the simulators' URLs, the sandbox
service and environment, and the loopback ingress as ``relay.publicUrl``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pagerbridge_devkit.demo.steps import StepFailed

EXAMPLES_DIR = Path(__file__).resolve().parents[3] / "examples"
INTEGRATION_EXAMPLE = "03-bidirectional.yaml"
ROUTING_EXAMPLE = "02-override-and-mappings.yaml"


@dataclass(frozen=True)
class Sandbox:
    """Where the simulators are and what they accept."""

    pagerduty_url: str
    bigpanda_url: str
    public_url: str  # the relay's, as BigPanda and PagerDuty reach it
    routing_key: str
    pagerduty_api_token: str
    bigpanda_api_token: str
    service_id: str
    environment_id: str


@dataclass(frozen=True)
class DemoManifests:
    documents: list[dict[str, Any]]
    integration: str
    key_override: str
    tag_mapping: str
    override_tag: str
    mappings: list[dict[str, str]]

    def yaml(self) -> str:
        return yaml.safe_dump_all(self.documents, sort_keys=False)


def _load(name: str, examples: Path) -> list[dict[str, Any]]:
    path = examples / name
    if not path.is_file():
        raise StepFailed(f"{path} not found (the demo applies the repository's examples)")
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _only(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [doc for doc in docs if doc["kind"] == kind]
    if len(found) != 1:
        raise StepFailed(f"expected one {kind} in the example, found {len(found)}")
    return found[0]


def demo_manifests(sandbox: Sandbox, examples: Path = EXAMPLES_DIR) -> DemoManifests:
    docs = _load(INTEGRATION_EXAMPLE, examples)
    routing = _load(ROUTING_EXAMPLE, examples)
    integration = _only(docs, "PagerDutyIntegration")
    override = _only(routing, "PagerDutyKeyOverride")
    mapping = _only(routing, "PagerDutyTagMapping")
    name = integration["metadata"]["name"]
    for doc in (override, mapping):
        doc["spec"]["integrationRef"]["name"] = name

    spec = integration["spec"]
    pd, bp = spec["pagerDuty"], spec.setdefault("bigPanda", {})
    values: dict[tuple[str, str], str] = {}
    for ref, value in (
        (pd.get("routingKey"), sandbox.routing_key),
        (pd.get("apiToken"), sandbox.pagerduty_api_token),
        (bp.get("apiToken"), sandbox.bigpanda_api_token),
    ):
        if ref is not None:
            values[(ref["name"], ref["key"])] = value
    for secret in (doc for doc in docs if doc["kind"] == "Secret"):
        data = secret.get("stringData") or {}
        for key in data:
            ref_key = (secret["metadata"]["name"], key)
            if ref_key not in values:
                raise StepFailed(f"Secret key {ref_key} is not referenced by the integration")
            data[key] = values[ref_key]
    pd.update(
        eventsUrl=sandbox.pagerduty_url,
        apiUrl=sandbox.pagerduty_url,
        serviceId=sandbox.service_id,
    )
    bp.update(apiUrl=sandbox.bigpanda_url, environmentId=sandbox.environment_id)
    spec.setdefault("relay", {})["publicUrl"] = sandbox.public_url
    return DemoManifests(
        documents=[*docs, override, mapping],
        integration=name,
        key_override=override["metadata"]["name"],
        tag_mapping=mapping["metadata"]["name"],
        override_tag=override["spec"]["tag"],
        mappings=list(mapping["spec"]["mappings"]),
    )
