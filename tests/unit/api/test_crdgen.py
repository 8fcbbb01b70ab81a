"""CRD generation: structural schemas, Kubernetes defaults, and the checked-in crds/ files."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from pagerbridge import cli
from pagerbridge.api import ALL_KINDS, GROUP, INTEGRATION, TAG_MAPPING, VERSION, crdgen
from pagerbridge.api.fields import MAPPING_FIELD_MESSAGE

REPO = Path(__file__).resolve().parents[3]
CRDS = REPO / "crds"


def _nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _nodes(sub, f"{path}.{name}")
    if "items" in schema:
        yield from _nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _nodes(schema["additionalProperties"], f"{path}{{}}")


def _root(kind_crd: dict[str, Any]) -> dict[str, Any]:
    root: dict[str, Any] = kind_crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return root


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.kind)
def test_schema_is_structural(kind: Any) -> None:
    root = _root(crdgen.crd(kind))
    text = yaml.safe_dump(root)
    for banned in ("$ref", "anyOf", "allOf", "oneOf", "title:", "$defs"):
        assert banned not in text, banned
    for path, node in _nodes(root):
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path
        assert node.get("additionalProperties") is not False, path
        assert node.get("default", "unset") is not None, path


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.kind)
def test_crd_metadata(kind: Any) -> None:
    doc = crdgen.crd(kind)
    spec = doc["spec"]
    assert doc["metadata"]["name"] == f"{kind.plural}.{GROUP}"
    assert spec["scope"] == ("Namespaced" if kind.namespaced else "Cluster")
    assert spec["names"]["shortNames"] == list(kind.short_names)
    assert spec["names"]["categories"] == ["pagerbridge"]
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == (VERSION, True, True)
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]][-1] == "Age"
    assert _root(doc)["required"] == ["spec"]


def test_nested_objects_default_to_empty_so_cel_rules_see_their_defaults() -> None:
    spec = _root(crdgen.crd(INTEGRATION))["properties"]["spec"]
    props = spec["properties"]
    for name in ("bigPanda", "sync", "severityMap", "relay"):
        assert props[name]["default"] == {}, name
    assert props["bigPanda"]["properties"]["webhook"]["default"] == {}
    assert "default" not in props["sync"]["properties"]["notes"]  # unset: auto (see model)
    assert props["bigPanda"]["properties"]["webhook"]["properties"]["mode"]["default"] == "Manual"
    assert props["severityMap"]["properties"]["unknown"]["default"] == "error"
    assert "pagerDuty" in spec["required"]
    assert "default" not in props["pagerDuty"]
    # Optional fields are plain schemas, not required.
    pd = props["pagerDuty"]
    # routingKey: required unless pagerDuty.accountRef is set (a CEL rule, not "required")
    assert "required" not in pd
    rules = [r["rule"] for r in spec["x-kubernetes-validations"]]
    assert "has(self.pagerDuty.routingKey) || has(self.pagerDuty.accountRef)" in rules
    assert pd["properties"]["apiToken"]["type"] == "object"


def test_cel_rules_and_list_map_keys_survive() -> None:
    spec = _root(crdgen.crd(INTEGRATION))["properties"]["spec"]
    messages = [rule["message"] for rule in spec["x-kubernetes-validations"]]
    assert any(
        "sync.notes: true needs pagerDuty.apiToken and pagerDuty.fromEmail" in m for m in messages
    )
    mappings = _root(crdgen.crd(TAG_MAPPING))["properties"]["spec"]["properties"]["mappings"]
    assert mappings["x-kubernetes-list-type"] == "map"
    assert mappings["x-kubernetes-list-map-keys"] == ["field"]
    field = mappings["items"]["properties"]["field"]
    assert field["x-kubernetes-validations"][0]["message"] == MAPPING_FIELD_MESSAGE
    # CEL string literals: a regex with backslashes must be a raw string to compile.
    assert field["x-kubernetes-validations"][0]["rule"].startswith("self.matches(r'")


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.kind)
def test_every_string_and_list_under_a_cel_rule_is_bounded(kind: Any) -> None:
    """The API server rejects CEL rules whose estimated cost is unbounded."""
    spec = _root(crdgen.crd(kind))["properties"]["spec"]

    def check(node: dict[str, Any], path: str, under_rule: bool) -> None:
        under_rule = under_rule or "x-kubernetes-validations" in node
        if under_rule and node.get("type") == "string" and "enum" not in node:
            assert "maxLength" in node, path
        if under_rule and node.get("type") == "array":
            assert "maxItems" in node, path
        for name, sub in node.get("properties", {}).items():
            check(sub, f"{path}.{name}", under_rule)
        if "items" in node:
            check(node["items"], f"{path}[]", under_rule)

    check(spec, "spec", False)


def test_descriptions_are_kept() -> None:
    spec = _root(crdgen.crd(INTEGRATION))["properties"]["spec"]
    routing = spec["properties"]["pagerDuty"]["properties"]["routingKey"]
    assert "routing" in routing["description"]
    assert "``" not in yaml.safe_dump(spec)


def test_union_fields_are_refused() -> None:
    class Bad(BaseModel):
        value: int | str

    with pytest.raises(crdgen.SchemaConversionError, match="unions are not structural"):
        crdgen.model_schema(Bad)


def test_output_is_deterministic() -> None:
    assert crdgen.render_all() == crdgen.render_all()
    for text in crdgen.render_all().values():
        assert text.startswith("# Generated by `pagerbridge crds`")
        assert "&id" not in text  # no YAML anchors


def test_checked_in_crds_are_up_to_date() -> None:
    drift = crdgen.check(CRDS)
    assert not drift.stale, (
        "crds/ is stale; run `make crds` (or `pagerbridge crds`)\n" + drift.diff[:4000]
    )


def test_check_cli_reports_stale_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "crds"
    assert cli.main(["crds", "--output-dir", str(out), "--check"]) == 1
    assert "missing:" in capsys.readouterr().err

    assert cli.main(["crds", "--output-dir", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(crdgen.render_all())
    assert cli.main(["crds", "--output-dir", str(out), "--check"]) == 0

    victim = out / crdgen.file_name(INTEGRATION)
    victim.write_text(victim.read_text().replace("maxLength: 254", "maxLength: 999"))
    (out / f"{GROUP}_leftovers.yaml").write_text("kind: Leftover\n")
    capsys.readouterr()
    assert cli.main(["crds", "--output-dir", str(out), "--check"]) == 1
    err = capsys.readouterr().err
    assert f"changed: {victim}" in err
    assert "-                    maxLength: 999" in err
    assert "not generated by the models" in err

    assert cli.main(["crds", "--output-dir", str(out)]) == 0
    assert not (out / f"{GROUP}_leftovers.yaml").exists()
    assert not crdgen.check(out).stale


def test_written_files_parse_as_crds(tmp_path: Path) -> None:
    shutil.copytree(CRDS, tmp_path / "crds")
    for path in sorted((tmp_path / "crds").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        assert doc["kind"] == "CustomResourceDefinition"
        assert path.name == f"{GROUP}_{doc['spec']['names']['plural']}.yaml"
