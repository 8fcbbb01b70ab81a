"""The generated CRDs on a real API server: they install, accept the examples, and make the
API server itself refuse bad manifests with a message a user can act on."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from pagerbridge.api import ALL_KINDS
from pagerbridge.api.fields import MAPPING_FIELD_MESSAGE, TAG_NAME_MESSAGE

from .conftest import REPO, Cluster

pytestmark = pytest.mark.e2e

EXAMPLES = REPO / "examples"
SECRET_PLACEHOLDERS = ("REPLACE-WITH-YOUR-INTEGRATION-KEY", "REPLACE-WITH-YOUR-PAGERDUTY-API-KEY")


def _integration(spec: dict[str, object], name: str = "bad") -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "pagerbridge.io/v1alpha1",
            "kind": "PagerDutyIntegration",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


def _tag_mapping(mappings: list[dict[str, str]], name: str = "bad") -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "pagerbridge.io/v1alpha1",
            "kind": "PagerDutyTagMapping",
            "metadata": {"name": name},
            "spec": {"integrationRef": {"name": "minimal"}, "mappings": mappings},
        }
    )


ROUTING_KEY = {"name": "pagerduty", "key": "routing-key"}


def _apply_rejected(cluster: Cluster, namespace: str, manifest: str) -> str:
    result = cluster.kubectl(
        "apply", "--server-side", "-n", namespace, "-f", "-", input=manifest, check=False
    )
    assert result.returncode != 0, f"accepted:\n{manifest}\n{result.stdout}"
    return result.stderr


def test_crds_are_established(cluster: Cluster) -> None:
    for kind in ALL_KINDS:
        out = cluster.kubectl("get", "crd", kind.crd_name, "-o", "json").stdout
        crd = json.loads(out)
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions["Established"] == "True", kind.kind
        assert conditions["NamesAccepted"] == "True", kind.kind
        assert crd["status"]["acceptedNames"]["shortNames"] == list(kind.short_names)
    resources = cluster.kubectl("api-resources", "--api-group=pagerbridge.io", "-o", "name")
    assert sorted(resources.stdout.split()) == sorted(k.crd_name for k in ALL_KINDS)


@pytest.mark.parametrize(
    ("field", "words"),
    [
        ("pdi.status.conditions", "Ready (True when the integration works end to end"),
        ("pdi.status.observedGeneration", "metadata.generation the operator last reconciled"),
        ("pdi.status.relay.publicUrl", "Base URL BigPanda and PagerDuty use"),
        ("pdi.spec.relay.persistence.size", "default 1Gi"),
        ("pdi.spec.relay.expose.ingress.host", "Fully qualified host name"),
        ("pdko.status.conditions", "Ready: True (Applied)"),
        (
            "pdi.spec.pagerDuty.routingKey.managed",
            "the operator creates an Events API v2 integration on pagerDuty.serviceId",
        ),
        ("pdi.status.pagerDutyRoutingKey.secretName", "whose key routing-key holds"),
        ("pdi.spec.sync.snooze", "A snoozed BigPanda incident (snooze.snoozed true)"),
        ("pdi.spec.sync.flapping.severity", "PagerDuty severity of a flapping incident"),
        ("pdi.spec.sync.flapping.customDetail.key", "Name of the custom detail"),
        ("pdi.spec.pagerDuty.accountRef", "A ClusterPagerDutyAccount whose credentials"),
        ("pdi.spec.bigPanda.accountRef", "A ClusterBigPandaAccount whose API token"),
        ("cpda.spec.namespaceSelector", "An empty selector {} selects every namespace"),
        ("cpda.spec.namespaceSelector.matchExpressions.operator", "In, NotIn, Exists"),
        ("cpda.spec.namespaces", "in addition to those namespaceSelector selects"),
        ("cpda.spec.routingKey", "account namespace (Helm value accounts.namespace)"),
        ("cpda.spec.apiToken", "never a tenant's"),
        ("cpda.spec.fromEmail", "an integration's own pagerDuty.fromEmail wins"),
        ("cpda.status.integrations", "How many PagerDutyIntegrations use the account"),
        ("cpda.status.conditions", "Ready: True when every Secret key"),
        ("cbpa.spec.apiToken", "Managed webhook integrations of every integration"),
        ("cbpa.spec.environmentId", "Default BigPanda environment"),
        ("cbpa.spec.namespaceSelector", "relabelled out of it loses the account"),
        ("pdi.spec.sync.pagerDutyEvents", "subscribes PagerDuty's webhook to exactly"),
        ("pdi.spec.sync.pagerDutyEvents.priorityUpdated", "carries only the new priority"),
        ("pdi.spec.sync.acknowledge", "Deprecated: use pagerDutyEvents.acknowledged"),
    ],
)
def test_kubectl_explain_documents_status_and_spec(
    cluster: Cluster, field: str, words: str
) -> None:
    """The API server publishes the descriptions (tests/unit/api/test_crd_descriptions.py
    checks that every field has one)."""
    crds = [f"crd/{kind.crd_name}" for kind in ALL_KINDS]
    cluster.kubectl("wait", "--for=condition=Established", *crds)
    # The OpenAPI document the API server publishes for a new CRD follows it by a moment.
    deadline = time.monotonic() + 30
    result = cluster.kubectl("explain", field, check=False)
    while result.returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.5)
        result = cluster.kubectl("explain", field, check=False)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert words in text, text


def test_examples_apply_and_get_defaulted(cluster: Cluster, namespace: str) -> None:
    result = cluster.kubectl("apply", "--server-side", "-n", namespace, "-f", str(EXAMPLES))
    for kind_name in ("minimal", "routed", "routed-by-tag", "routed-fields", "bidirectional"):
        assert f"/{kind_name} serverside-applied" in result.stdout

    minimal = json.loads(
        cluster.kubectl("get", "pdi", "minimal", "-n", namespace, "-o", "json").stdout
    )
    spec = minimal["spec"]
    # Defaults come from the models, applied by the API server itself.
    # notes: auto (off here); flapping: unset
    assert spec["sync"] == {"resolve": True, "acknowledge": False, "snooze": False}
    assert spec["bigPanda"]["webhook"]["mode"] == "Manual"
    assert spec["severityMap"]["unknown"] == "error"
    assert spec["relay"]["replicas"] == 1
    assert spec["pagerDuty"]["region"] == "us"

    mapping = json.loads(
        cluster.kubectl("get", "pdtm", "routed-fields", "-n", namespace, "-o", "json").stdout
    )
    assert [m["field"] for m in mapping["spec"]["mappings"]] == [
        "source",
        "component",
        "custom_details.team",
    ]
    # The category groups every PagerBridge kind.
    every = cluster.kubectl("get", "pagerbridge", "-n", namespace, "-o", "name").stdout.split()
    assert len(every) == 5


def test_printer_columns(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl(
        "apply", "--server-side", "-n", namespace, "-f", str(EXAMPLES / "01-minimal.yaml")
    )
    header = cluster.kubectl("get", "pdi", "-n", namespace).stdout.splitlines()[0].split()
    assert header == ["NAME", "READY", "REASON", "URL", "AGE"]
    cluster.kubectl(
        "apply",
        "--server-side",
        "-n",
        namespace,
        "-f",
        str(EXAMPLES / "02-override-and-mappings.yaml"),
    )
    for short_name in ("pdko", "pdtm"):
        lines = cluster.kubectl("get", short_name, "-n", namespace).stdout.splitlines()
        assert lines[0].split() == ["NAME", "INTEGRATION", "READY", "REASON", "AGE"]
        assert lines[1].split()[1] == "routed"


def test_secret_values_stay_out_of_the_custom_resources(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("apply", "--server-side", "-n", namespace, "-f", str(EXAMPLES))
    shown = cluster.kubectl("get", "pagerbridge", "-n", namespace, "-o", "yaml").stdout
    shown += cluster.kubectl("get", "pdi", "-n", namespace, "-o", "wide").stdout
    for placeholder in SECRET_PLACEHOLDERS:
        assert placeholder not in shown


def test_missing_routing_key_is_rejected(cluster: Cluster, namespace: str) -> None:
    err = _apply_rejected(
        cluster, namespace, _integration({"pagerDuty": {"region": "us"}, "sync": {"notes": False}})
    )
    # Required unless pagerDuty.accountRef is set: a CEL rule, with its own message.
    assert "pagerDuty.routingKey is required unless pagerDuty.accountRef is set" in err


@pytest.mark.parametrize(
    ("pager_duty", "big_panda", "relay", "message"),
    [
        ({"routingKey": {"name": "mine", "key": "k"}}, {}, {},
         "pagerDuty.accountRef and per-integration Secrets"),
        ({"apiToken": {"name": "mine", "key": "k"}}, {}, {},
         "pagerDuty.accountRef and per-integration Secrets"),
        ({}, {"apiToken": {"name": "mine", "key": "k"}}, {},
         "pagerDuty.accountRef and per-integration Secrets"),
        ({"apiUrl": "https://elsewhere.example.com"}, {}, {},
         "the URLs and region come from the accounts"),
        ({}, {}, {"image": "example.com/relay:1"}, "the relay runs in the account namespace"),
        ({}, {}, {"podLabels": {"app": "x"}}, "the relay runs in the account namespace"),
    ],
)  # fmt: skip
def test_an_account_excludes_the_integrations_own_secrets_urls_and_relay_image(
    cluster: Cluster,
    namespace: str,
    pager_duty: dict[str, object],
    big_panda: dict[str, object],
    relay: dict[str, object],
    message: str,
) -> None:
    spec = {
        "pagerDuty": {"accountRef": {"name": "shared"}, **pager_duty},
        "bigPanda": big_panda,
        "relay": relay,
        "sync": {"notes": False},
    }
    assert message in _apply_rejected(cluster, namespace, _integration(spec))


def test_a_bigpanda_account_needs_a_pagerduty_account(cluster: Cluster, namespace: str) -> None:
    spec = {
        "pagerDuty": {"routingKey": {"name": "pd", "key": "k"}},
        "bigPanda": {"accountRef": {"name": "shared"}},
        "sync": {"notes": False},
    }
    assert "bigPanda.accountRef needs pagerDuty.accountRef" in _apply_rejected(
        cluster, namespace, _integration(spec)
    )


def test_an_account_reference_alone_is_accepted(cluster: Cluster, namespace: str) -> None:
    spec = {"pagerDuty": {"accountRef": {"name": "shared"}}, "sync": {"notes": True}}
    cluster.kubectl("apply", "--server-side", "-n", namespace, "-f", "-", input=_integration(spec))


def test_an_account_selector_requirement_needs_its_values(cluster: Cluster) -> None:
    account = {
        "apiVersion": "pagerbridge.io/v1alpha1",
        "kind": "ClusterPagerDutyAccount",
        "metadata": {"name": "bad-selector"},
        "spec": {"namespaceSelector": {"matchExpressions": [{"key": "t", "operator": "In"}]}},
    }
    result = cluster.kubectl(
        "apply", "--server-side", "-f", "-", input=json.dumps(account), check=False
    )
    assert result.returncode != 0
    assert "operator In and NotIn need values" in result.stderr


def test_missing_secret_key_name_is_rejected(cluster: Cluster, namespace: str) -> None:
    spec = {"pagerDuty": {"routingKey": {"name": "pagerduty"}}, "sync": {"notes": False}}
    err = _apply_rejected(cluster, namespace, _integration(spec))
    assert "spec.pagerDuty.routingKey.key: Required value" in err


def test_bad_severity_is_rejected(cluster: Cluster, namespace: str) -> None:
    spec = {
        "pagerDuty": {"routingKey": ROUTING_KEY},
        "sync": {"notes": False},
        "severityMap": {"critical": "urgent"},
    }
    err = _apply_rejected(cluster, namespace, _integration(spec))
    assert 'spec.severityMap.critical: Unsupported value: "urgent"' in err
    assert '"critical", "error", "warning", "info"' in err


@pytest.mark.parametrize(
    ("detail", "message"),
    [
        ({"key": "bigpanda_incident_id"}, "names a custom detail the relay sets itself"),
        ({"key": "has space"}, "spec.sync.flapping.customDetail.key: Invalid value"),
        ({"key": "k", "value": "v" * 257}, "spec.sync.flapping.customDetail.value: Too long"),
    ],
)
def test_bad_flapping_detail_is_rejected(
    cluster: Cluster, namespace: str, detail: dict[str, str], message: str
) -> None:
    spec = {
        "pagerDuty": {"routingKey": ROUTING_KEY},
        "sync": {"notes": False, "flapping": {"severity": "warning", "customDetail": detail}},
    }
    err = _apply_rejected(cluster, namespace, _integration(spec))
    assert message in err


def test_notes_without_from_email_is_rejected(cluster: Cluster, namespace: str) -> None:
    spec = {
        "pagerDuty": {
            "routingKey": ROUTING_KEY,
            "apiToken": {"name": "pagerduty", "key": "api-token"},
        },
        "sync": {"notes": True},
    }
    err = _apply_rejected(cluster, namespace, _integration(spec))
    assert "sync.notes: true needs pagerDuty.apiToken and pagerDuty.fromEmail" in err


def test_the_smallest_manifest_a_routing_key_alone_is_accepted(
    cluster: Cluster, namespace: str
) -> None:
    """No sync settings at all: notes are off because their credentials are not given."""
    for name, pager_duty in (
        ("smallest", {"routingKey": ROUTING_KEY}),
        ("token-only", {"routingKey": ROUTING_KEY, "apiToken": ROUTING_KEY}),
    ):
        manifest = _integration({"pagerDuty": pager_duty}, name=name)
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=manifest)
        body = json.loads(cluster.kubectl("get", "pdi", name, "-n", namespace, "-o", "json").stdout)
        assert "notes" not in body["spec"]["sync"]


def test_service_id_without_bigpanda_credentials_is_rejected(
    cluster: Cluster, namespace: str
) -> None:
    spec = {
        "pagerDuty": {"routingKey": ROUTING_KEY, "serviceId": "PABC123"},
        "sync": {"notes": False},
    }
    err = _apply_rejected(cluster, namespace, _integration(spec))
    assert "pagerDuty.serviceId (PagerDuty → BigPanda sync) needs" in err


def test_managed_webhook_without_public_url_is_rejected(cluster: Cluster, namespace: str) -> None:
    spec = {
        "pagerDuty": {"routingKey": ROUTING_KEY},
        "sync": {"notes": False},
        "bigPanda": {
            "apiToken": {"name": "bigpanda", "key": "api-token"},
            "webhook": {"mode": "Managed"},
        },
    }
    err = _apply_rejected(cluster, namespace, _integration(spec))
    assert (
        "bigPanda.webhook.mode Managed needs relay.publicUrl or relay.expose: BigPanda shares "
        "from the internet and cannot reach the relay's cluster-internal Service address"
    ) in err
    assert "Managed needs bigPanda.apiToken" not in err
    del spec["bigPanda"]["apiToken"]  # type: ignore[attr-defined]
    spec["relay"] = {"publicUrl": "https://relay.example.com"}
    err = _apply_rejected(cluster, namespace, _integration(spec))
    assert "bigPanda.webhook.mode Managed needs bigPanda.apiToken" in err
    assert "relay.publicUrl" not in err


def test_service_id_without_public_url_is_rejected(cluster: Cluster, namespace: str) -> None:
    """PagerDuty delivers webhooks from the internet: a Service address cannot receive them."""
    spec: dict[str, object] = {
        "pagerDuty": {
            "routingKey": ROUTING_KEY,
            "serviceId": "PABC123",
            "apiToken": {"name": "pagerduty", "key": "api-token"},
        },
        "bigPanda": {
            "apiToken": {"name": "bigpanda", "key": "api-token"},
            "environmentId": "env1",
        },
    }
    err = _apply_rejected(cluster, namespace, _integration(spec))
    assert (
        "pagerDuty.serviceId needs relay.publicUrl or relay.expose: PagerDuty delivers its "
        "webhooks from the internet and cannot reach the relay's cluster-internal Service address"
    ) in err
    spec["relay"] = {"publicUrl": "https://relay.example.com"}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=_integration(spec, name="public"))
    spec["relay"] = {"expose": {"ingress": {"host": "relay.example.com"}}}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=_integration(spec, name="exposed"))
    spec["relay"] = {"expose": {}}  # neither ingress nor httpRoute
    err = _apply_rejected(cluster, namespace, _integration(spec, name="nowhere"))
    assert "relay.expose needs exactly one of ingress or httpRoute" in err


def test_bad_tag_mapping_field_is_rejected(cluster: Cluster, namespace: str) -> None:
    err = _apply_rejected(
        cluster, namespace, _tag_mapping([{"tag": "host", "field": "payload.source"}])
    )
    assert "spec.mappings[0].field" in err
    assert MAPPING_FIELD_MESSAGE in err


def test_bad_tag_name_is_rejected(cluster: Cluster, namespace: str) -> None:
    err = _apply_rejected(
        cluster, namespace, _tag_mapping([{"tag": "has space", "field": "source"}])
    )
    assert TAG_NAME_MESSAGE in err


def test_duplicated_mapping_field_is_rejected(cluster: Cluster, namespace: str) -> None:
    mappings = [{"tag": "host", "field": "source"}, {"tag": "node", "field": "source"}]
    err = _apply_rejected(cluster, namespace, _tag_mapping(mappings))
    assert 'duplicate entries for key [field="source"]' in err
    # Client-side create goes through validation instead of the apply machinery.
    result = cluster.kubectl(
        "create", "-n", namespace, "-f", "-", input=_tag_mapping(mappings), check=False
    )
    assert result.returncode != 0
    assert "spec.mappings[1]: Duplicate value" in result.stderr


def _link_mapping(spec: dict[str, Any]) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "pagerbridge.io/v1alpha1",
            "kind": "PagerDutyTagMapping",
            "metadata": {"name": "links"},
            "spec": {"integrationRef": {"name": "minimal"}, **spec},
        }
    )


def test_links_alone_are_accepted_and_defaulted(cluster: Cluster, namespace: str) -> None:
    link = {"template": "https://grafana.example/d/x?var-host={{host}}", "text": "Dashboard"}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=_link_mapping({"links": [link]}))
    spec = json.loads(
        cluster.kubectl("get", "pdtm", "links", "-n", namespace, "-o", "json").stdout
    )["spec"]
    assert spec["links"] == [link]
    assert spec["mappings"] == []
    assert spec["images"] == []


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param({}, "set at least one of mappings, links or images", id="empty"),
        pytest.param(
            {"links": [{"tag": "a", "template": "https://x.example/"}]},
            "set exactly one of tag or template",
            id="both",
        ),
        pytest.param(
            {"links": [{"template": "javascript:alert(1)"}]},
            "spec.links[0].template in body should match",
            id="scheme",
        ),
        pytest.param(
            {"links": [{"template": "https://x.example/{{no space}}"}]},
            "spec.links[0].template in body should match",
            id="placeholder",
        ),
        pytest.param(
            {"images": [{"template": "http://charts.example/{{id}}.png"}]},
            "spec.images[0].template in body should match",
            id="image-http",
        ),
        pytest.param(
            {"links": [{"tag": "t"}] * 11}, "spec.links: Too many: 11: must have at most 10", id="n"
        ),
        pytest.param(
            {"links": [{"tag": "t", "text": "x" * 257}]},
            "spec.links[0].text: Too long: may not be",
            id="text",
        ),
    ],
)
def test_malformed_links_are_rejected_by_the_api_server(
    cluster: Cluster, namespace: str, spec: dict[str, Any], expected: str
) -> None:
    err = _apply_rejected(cluster, namespace, _link_mapping(spec))
    assert expected in err, err


def test_unknown_field_is_reported(cluster: Cluster, namespace: str) -> None:
    spec = {"pagerDuty": {"routingKey": ROUTING_KEY, "routingkey": "x"}, "sync": {"notes": False}}
    err = _apply_rejected(cluster, namespace, _integration(spec))
    assert ".spec.pagerDuty.routingkey: field not declared in schema" in err


def test_example_files_hold_placeholders_only() -> None:
    for path in sorted(Path(EXAMPLES).glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == "Secret":
                for value in doc["stringData"].values():
                    assert value.startswith("REPLACE-WITH-"), (path.name, doc["metadata"]["name"])
