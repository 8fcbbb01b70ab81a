"""Every field of every generated CRD, status included, has a description, so
`kubectl explain` documents the whole API (and a default, where the field has one)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pagerbridge.api import ALL_KINDS, ResourceKind
from pagerbridge.api.crdgen import crd

# The Kubernetes object envelope, documented by the API server itself.
ENVELOPE = {"apiVersion", "kind", "metadata"}


def properties(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, child in (node.get("properties") or {}).items():
        child_path = f"{path}.{name}"
        if child_path.count(".") == 1 and name in ENVELOPE:
            continue
        yield child_path, child
        yield from properties(child, child_path)
    items = node.get("items")
    if isinstance(items, dict):
        yield from properties(items, f"{path}[]")
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        yield from properties(extra, f"{path}{{}}")


def _schema(kind: ResourceKind) -> dict[str, Any]:
    schema: dict[str, Any] = crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.kind)
def test_every_property_has_a_description(kind: ResourceKind) -> None:
    missing = [
        path for path, node in properties(_schema(kind), kind.kind) if not node.get("description")
    ]
    assert not missing, f"fields without a description (kubectl explain shows nothing): {missing}"


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.kind)
def test_defaults_are_stated(kind: ResourceKind) -> None:
    """A scalar default the API server fills in is also named in the description."""
    unstated = [
        path
        for path, node in properties(_schema(kind), kind.kind)
        if "default" in node
        and not isinstance(node["default"], (dict, list))
        and "default" not in node.get("description", "").lower()
    ]
    assert not unstated, f"defaults not stated in the description: {unstated}"


def test_walk_finds_status_fields() -> None:
    paths = {path for path, _ in properties(_schema(ALL_KINDS[0]), "X")}
    assert {"X.status.conditions", "X.status.observedGeneration", "X.status.relay"} <= paths
