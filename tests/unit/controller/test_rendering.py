"""Rendering and compilation: pure functions, no cluster."""

from __future__ import annotations

import json

import pytest

from pagerbridge.api import TAG_MAPPING, RelayConfig, TagMapping
from pagerbridge.api.links import MAX_RULES, ImageRule, LinkRule
from pagerbridge.controller import names as n
from pagerbridge.controller.errors import InvalidKey, SecretNotFound
from pagerbridge.controller.ownership import OwnerStamp
from pagerbridge.controller.reconcile.assemble import reference_condition
from pagerbridge.controller.render.children import (
    bigpanda_webhook_status,
    render_children,
    render_token_secret,
)
from pagerbridge.controller.render.compile import (
    MappingInput,
    OverrideInput,
)
from pagerbridge.controller.state.observed import RefInfo

from .builders import OWNER, SETTINGS, compiled_for, spec

ROUTING_KEY_VALUE = "R0UT1NGK3Y0123456789ABCDEFGHIJKL"


def test_relay_config_points_at_mounted_files_and_round_trips() -> None:
    compiled = compiled_for(spec())
    config = compiled.config
    assert config.pager_duty.routing_key_file == "/etc/pagerbridge/secrets/pd/routing-key"
    assert (
        config.big_panda.webhook_token_file
        == f"/etc/pagerbridge/secrets/{n.ChildNames('payments').token_secret}/token"
    )
    assert config.pager_duty.webhook_secret_file is None
    assert RelayConfig.model_validate_json(config.to_json()) == config


def test_missing_secret_and_key_are_named() -> None:
    s = spec(bigPanda={"apiToken": {"name": "nope", "key": "k"}})
    with pytest.raises(SecretNotFound, match=r"Secret team-a/nope \(for spec.bigPanda.apiToken\)"):
        compiled_for(s)
    s = spec(pagerDuty={"routingKey": {"name": "pd", "key": "missing"}})
    with pytest.raises(SecretNotFound, match="has no key 'missing'"):
        compiled_for(s)


def test_routing_key_of_wrong_shape_is_invalid_key() -> None:
    s = spec(pagerDuty={"routingKey": {"name": "pd", "key": "api-token"}})
    with pytest.raises(InvalidKey, match="32 letters and digits"):
        compiled_for(s)


def test_overrides_and_mappings_precedence_is_deterministic() -> None:
    overrides = [OverrideInput("b", "tag_b"), OverrideInput("a", "tag_a")]
    mappings = [
        MappingInput(
            "m2", (TagMapping(tag="svc", field="source"), TagMapping(tag="team", field="group"))
        ),
        MappingInput("m1", (TagMapping(tag="host", field="source"),)),
    ]
    compiled = compiled_for(spec(), overrides, mappings)
    assert compiled.config.key_override_tag == "tag_a"
    assert compiled.ignored_overrides == ("b",)
    assert [(m.tag, m.field) for m in compiled.config.tag_mappings] == [
        ("host", "source"),
        ("team", "group"),
    ]
    assert compiled.ignored_mappings == {"m2": ("source",)}


def test_mapping_change_changes_configmap_but_not_pod_template() -> None:
    before = render_children(OWNER, spec(), compiled_for(spec()), SETTINGS)
    mapped = compiled_for(
        spec(), mappings=[MappingInput("m", (TagMapping(tag="host", field="source"),))]
    )
    after = render_children(OWNER, spec(), mapped, SETTINGS)
    assert before.config_map["data"] != after.config_map["data"]
    assert before.deployment == after.deployment


def test_link_rules_are_merged_by_object_name_and_bounded_without_rolling_pods() -> None:
    def rules(prefix: str, count: int) -> tuple[LinkRule, ...]:
        return tuple(LinkRule(tag=f"{prefix}{i}") for i in range(count))

    image = ImageRule(template="https://charts.example/{{host}}.png")
    mappings = [
        MappingInput("b", (), rules("b", 10), (image,)),
        MappingInput("a", (), rules("a", 10)),
        MappingInput("d", (), rules("d", 10)),
        MappingInput("c", (), rules("c", 10)),
    ]
    compiled = compiled_for(spec(), mappings=mappings)
    tags = [rule.tag for rule in compiled.config.links]
    assert len(tags) == MAX_RULES == 32
    assert tags[:11] == [f"a{i}" for i in range(10)] + ["b0"]
    assert tags[-2:] == ["d0", "d1"]  # d's first two fill the config; its other 8 are out
    assert compiled.config.images == [image]
    assert compiled.ignored_link_rules == {"d": 8}
    assert RelayConfig.model_validate_json(compiled.config.to_json()) == compiled.config
    # The mapping left out says so in its own status.
    ready = reference_condition(
        RefInfo(TAG_MAPPING.kind, "team-a", "d", "uid", 1, "payments", {}, {}),
        [{"type": "Ready", "status": "True", "reason": "Ready", "message": ""}],
        compiled,
    )
    assert ready.message is not None
    assert "8 link/image rule(s) over the 32" in ready.message
    # Links are applied on reload: the ConfigMap changes, the pods do not roll.
    before = render_children(OWNER, spec(), compiled_for(spec()), SETTINGS)
    after = render_children(OWNER, spec(), compiled, SETTINGS)
    assert before.config_map["data"] != after.config_map["data"]
    assert before.deployment == after.deployment


def test_restart_relevant_change_rolls_pods() -> None:
    before = render_children(OWNER, spec(), compiled_for(spec()), SETTINGS)
    moved = spec(
        pagerDuty={
            "routingKey": {"name": "pd", "key": "routing-key"},
            "eventsUrl": "http://127.0.0.1:9/",
        }
    )
    after = render_children(OWNER, moved, compiled_for(moved), SETTINGS)
    key = n.ANNOTATION_CONFIG_HASH
    assert (
        before.deployment["spec"]["template"]["metadata"]["annotations"][key]
        != after.deployment["spec"]["template"]["metadata"]["annotations"][key]
    )


def test_deployment_is_hardened_and_mounts_secrets_as_files() -> None:
    s = spec(
        pagerDuty={
            "routingKey": {"name": "pd", "key": "routing-key"},
            "apiToken": {"name": "pd", "key": "api-token"},
        },
        bigPanda={"apiToken": {"name": "bp", "key": "api-token"}},
    )
    deployment = render_children(OWNER, s, compiled_for(s), SETTINGS).deployment
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert "env" not in container
    mounted = {m["mountPath"] for m in container["volumeMounts"]}
    names = n.ChildNames("payments")
    assert {
        "/etc/pagerbridge/secrets/pd",
        "/etc/pagerbridge/secrets/bp",
        f"/etc/pagerbridge/secrets/{names.token_secret}",
    } <= mounted
    assert deployment["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert (
        deployment["spec"]["selector"]["matchLabels"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )


def test_outbox_is_persistent_by_default_with_one_writer() -> None:
    children = render_children(OWNER, spec(), compiled_for(spec()), SETTINGS)
    assert children.outbox_claim is not None
    assert children.outbox_claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert children.outbox_claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert children.deployment["spec"]["strategy"] == {"type": "Recreate"}
    volumes = {v["name"]: v for v in children.deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["outbox"] == {
        "name": "outbox",
        "persistentVolumeClaim": {"claimName": children.outbox_claim["metadata"]["name"]},
    }


def test_persistence_settings_shape_the_claim() -> None:
    s = spec(relay={"persistence": {"size": "2Gi", "storageClassName": "fast"}})
    claim = render_children(OWNER, s, compiled_for(s), SETTINGS).outbox_claim
    assert claim is not None
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert claim["spec"]["storageClassName"] == "fast"


@pytest.mark.parametrize(
    "relay",
    [{"storage": "Ephemeral"}, {"persistence": {"enabled": False}}],
    ids=["storage-ephemeral", "deprecated-persistence-disabled"],
)
def test_ephemeral_outbox_is_an_explicit_choice(relay: dict[str, object]) -> None:
    s = spec(relay=relay)
    children = render_children(OWNER, s, compiled_for(s), SETTINGS)
    assert children.outbox_claim is None
    volumes = {v["name"]: v for v in children.deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["outbox"] == {"name": "outbox", "emptyDir": {}}
    # Still one writer: a surge would serve one incident from two outboxes.
    assert children.deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_webhook_status_has_headers_and_only_a_token_reference() -> None:
    compiled = compiled_for(
        spec(relay={"publicUrl": "https://relay.example.com/"}),
        [OverrideInput("o", "pd_routing_key")],
        [MappingInput("m", (TagMapping(tag="host", field="source"),))],
    )
    status = bigpanda_webhook_status(
        OWNER, spec(relay={"publicUrl": "https://relay.example.com/"}), compiled
    )
    assert status["url"] == "https://relay.example.com/v1/bigpanda/webhook"
    headers = {h["name"]: h for h in status["headers"]}
    assert headers["x-bp-config-pdfield"]["value"] == "pd_routing_key"
    assert headers["x-bp-config-tag-host"]["value"] == "source"
    assert headers["Authorization"]["valueFrom"] == {
        "name": n.ChildNames("payments").token_secret,
        "key": "token",
    }
    default = bigpanda_webhook_status(OWNER, spec(), compiled_for(spec()))
    assert default["url"] == "http://payments-relay.team-a.svc/v1/bigpanda/webhook"


def test_no_secret_value_in_configmap_or_status() -> None:
    token_secret = render_token_secret(OWNER, "s3cr3t-token-value")
    compiled = compiled_for(spec())
    children = render_children(OWNER, spec(), compiled, SETTINGS)
    rendered = json.dumps(
        [
            children.config_map,
            children.deployment,
            children.service,
            bigpanda_webhook_status(OWNER, spec(), compiled),
        ]
    )
    assert "s3cr3t-token-value" not in rendered
    assert ROUTING_KEY_VALUE not in rendered
    assert token_secret["stringData"]["token"] == "s3cr3t-token-value"


def test_long_integration_names_give_valid_child_names() -> None:
    names = n.ChildNames("x" * 120)
    for name in (
        names.relay,
        names.token_secret,
        names.webhook_secret,
        names.outbox_claim,
        names.instance_label,
    ):
        assert len(name) <= 63
    assert names.relay != n.ChildNames("x" * 121).relay


STAMP = OwnerStamp("cluster-uid", "integration-uid")


def test_managed_bigpanda_workflow_mirrors_the_crs() -> None:
    from pagerbridge.controller.external.bigpanda_integration import (
        TRIGGER_FIELD,
        desired_workflow,
        digest,
    )

    compiled = compiled_for(
        spec(),
        [OverrideInput("o", "pd_routing_key")],
        [MappingInput("m", (TagMapping(tag="host", field="source"),))],
    )
    workflow = desired_workflow(
        "https://relay.example.com/v1/bigpanda/webhook", "tok", compiled, ["new", "closed"], STAMP
    )
    assert workflow["config"]["base_url"] == "https://relay.example.com/v1/bigpanda/webhook"
    assert [e[TRIGGER_FIELD] for e in workflow["events"]] == ["incident#new", "incident#closed"]
    event = workflow["events"][0]
    assert event["authorization"] == "Bearer tok"
    assert (
        event["headers"]
        == '"x-bp-config-pdfield" : "pd_routing_key", "x-bp-config-tag-host" : "source", '
        '"x-pagerbridge-owner" : "cluster-uid/integration-uid"'
    )
    same = desired_workflow(
        "https://relay.example.com/v1/bigpanda/webhook", "tok", compiled, ["new", "closed"], STAMP
    )
    assert digest(same) == digest(workflow)
    rotated = desired_workflow(
        "https://relay.example.com/v1/bigpanda/webhook", "tok2", compiled, ["new", "closed"], STAMP
    )
    assert digest(rotated) != digest(workflow)


def test_bigpanda_drift_ignores_masked_secret_fields() -> None:
    """What BigPanda may mask is never compared; its digest changes with the token only."""
    import copy

    from pagerbridge.controller.external.bigpanda_integration import (
        desired_workflow,
        in_sync,
        secret_digest,
    )

    compiled = compiled_for(spec(), [OverrideInput("o", "pd_routing_key")], [])
    url = "https://relay.example.com/v1/bigpanda/webhook"
    workflow = desired_workflow(url, "tok", compiled, ["new", "closed"], STAMP)
    masked = copy.deepcopy(workflow)
    for event in masked["events"]:
        event["authorization"] = "********"
    assert in_sync(masked, workflow)
    omitted = copy.deepcopy(masked)
    for event in omitted["events"]:
        del event["authorization"]
        event["created_by_server"] = "x"  # fields BigPanda adds are not ours to compare
    assert in_sync(omitted, workflow)

    moved = copy.deepcopy(masked)
    moved["config"]["base_url"] = "https://elsewhere.example.com/"
    assert not in_sync(moved, workflow)
    disabled = copy.deepcopy(masked)
    disabled["events"][0]["enabled"] = False
    assert not in_sync(disabled, workflow)
    fewer = copy.deepcopy(masked)
    fewer["events"].pop()
    assert not in_sync(fewer, workflow)
    extra = copy.deepcopy(masked)
    extra["events"].append({**masked["events"][0], "trigger": "incident#reopen"})
    assert not in_sync(extra, workflow)
    no_headers = desired_workflow(
        url, "tok", compiled_for(spec(), [], []), ["new", "closed"], STAMP
    )
    assert not in_sync(masked, no_headers)

    same_token = desired_workflow(
        url, "tok", compiled_for(spec(), [], []), ["new", "closed"], STAMP
    )
    assert secret_digest(same_token) == secret_digest(workflow)
    rotated = desired_workflow(url, "tok2", compiled, ["new", "closed"], STAMP)
    assert secret_digest(rotated) != secret_digest(workflow)
    assert "tok" not in secret_digest(workflow).removeprefix("sha256:")
