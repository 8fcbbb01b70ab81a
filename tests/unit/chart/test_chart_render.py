"""What the chart renders: a hardened operator Deployment, its ServiceAccount, and RBAC."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from chart.helm_tools import CHART, Helm, of_kind, one
from pagerbridge.controller.errors import DatabaseNotConfigured
from pagerbridge.controller.reconcile.converge import _default_database
from pagerbridge.controller.settings import (
    RELAY_DATABASE_KEY_ENV,
    RELAY_DATABASE_SECRET_ENV,
    relay_database_default,
)

NAMESPACE = "pagerbridge-system"
APP_VERSION = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]


def _container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return dict(container)


AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


def operator_cluster_roles(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The operator's own ClusterRole(s), not the view/edit roles aggregated for users."""
    return [
        role
        for role in of_kind(objects, "ClusterRole")
        if not any(label.startswith(AGGREGATE) for label in role["metadata"]["labels"])
    ]


def test_default_render_kinds_and_names(helm: Helm) -> None:
    objects = helm.render()
    assert sorted(obj["kind"] for obj in objects) == [
        "ClusterRole",  # aggregated into edit (for users, not bound to the operator)
        "ClusterRole",  # aggregated into view (likewise)
        "CustomResourceDefinition",
        "CustomResourceDefinition",
        "CustomResourceDefinition",
        "CustomResourceDefinition",
        "CustomResourceDefinition",
        "Deployment",
        "Role",  # the operator's, in the watched (release) namespace
        "Role",  # the leader election's
        "RoleBinding",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ]
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "pagerbridge"
        assert labels["app.kubernetes.io/instance"] == "pb"
        assert labels["app.kubernetes.io/version"] == APP_VERSION
        if obj["kind"] not in CLUSTER_SCOPED:
            assert obj["metadata"]["namespace"] == NAMESPACE


def test_operator_deployment(helm: Helm) -> None:
    objects = helm.render()
    deployment = one(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = _container(objects)
    assert deployment["spec"]["replicas"] == 1
    # The Lease keeps the new pod standing by during a rollout.
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate"}
    assert f"--leader-election-namespace={NAMESPACE}" in container["args"]
    assert "--leader-election-id=pb-pagerbridge" in container["args"]
    account = one(objects, "ServiceAccount")
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    # Only the operator pod opts in to the token.
    assert account["automountServiceAccountToken"] is False
    assert pod["automountServiceAccountToken"] is True
    assert container["image"] == f"ghcr.io/pagerbridge/pagerbridge:{APP_VERSION}"
    assert "command" not in container, "the image's ENTRYPOINT (pagerbridge) must run"
    assert container["args"][0] == "operator"
    assert f"--namespace={NAMESPACE}" in container["args"]  # the default scope
    assert "--all-namespaces" not in container["args"]
    env = {item["name"]: item for item in container["env"]}
    assert env["PAGERBRIDGE_RELAY_IMAGE"]["value"] == container["image"]
    assert env["PAGERBRIDGE_IMAGE_PULL_POLICY"]["value"] == container["imagePullPolicy"]
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert container["resources"]["requests"]["memory"]
    assert container["resources"]["limits"]["memory"]


def test_probes_and_metrics_ports(helm: Helm) -> None:
    container = _container(
        helm.render("--set", "operator.healthPort=9443", "--set", "operator.metricsPort=9090")
    )
    assert container["ports"] == [
        {"name": "health", "containerPort": 9443, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
    ]
    assert "--liveness=http://0.0.0.0:9443/healthz" in container["args"]
    assert "--metrics-port=9090" in container["args"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
        assert container[probe]["periodSeconds"] > 0
    same = helm.template("--set", "operator.healthPort=8080")
    assert same.returncode != 0
    assert "must differ" in same.stderr


def test_security_context_is_hardened(helm: Helm) -> None:
    objects = helm.render()
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    context = _container(objects)["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not context.get("privileged", False)
    # A read-only root needs a writable /tmp volume.
    mounts = {m["mountPath"]: m["name"] for m in _container(objects)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_image_tag_and_digest(helm: Helm) -> None:
    tagged = _container(
        helm.render("--set", "image.repository=r.example/pb", "--set", "image.tag=v9")
    )
    assert tagged["image"] == "r.example/pb:v9"
    digest = "sha256:" + "a" * 64
    pinned = _container(helm.render("--set", f"image.digest={digest}"))
    assert pinned["image"] == f"ghcr.io/pagerbridge/pagerbridge@{digest}"


def _rules(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    """(apiGroup, resource) -> verbs."""
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    return granted


WRITE = {"create", "update", "patch", "delete", "deletecollection"}
CHILDREN = {"get", "list", "watch", "create", "patch"}  # created once, then applied
NAMESPACED_RULES: dict[tuple[str, str], set[str]] = {
    ("pagerbridge.io", "pagerdutyintegrations"): {"get", "list", "watch", "patch", "update"},
    ("pagerbridge.io", "pagerdutykeyoverrides"): {"get", "list", "watch", "patch", "update"},
    ("pagerbridge.io", "pagerdutytagmappings"): {"get", "list", "watch", "patch", "update"},
    ("pagerbridge.io", "pagerdutyintegrations/status"): {"get", "patch", "update"},
    ("pagerbridge.io", "pagerdutykeyoverrides/status"): {"get", "patch", "update"},
    ("pagerbridge.io", "pagerdutytagmappings/status"): {"get", "patch", "update"},
    ("pagerbridge.io", "pagerdutyintegrations/finalizers"): {"update"},
    ("", "configmaps"): CHILDREN,
    ("", "secrets"): {"get", "list", "watch", "create", "patch", "delete"},
    ("", "services"): CHILDREN,
    ("", "persistentvolumeclaims"): CHILDREN,
    ("apps", "deployments"): CHILDREN,
    ("policy", "poddisruptionbudgets"): CHILDREN | {"delete"},  # removed when not needed
    ("", "events"): {"create", "patch"},
    # An unready PostgreSQL relay's /readyz, read through the pod proxy (GET only).
    ("", "pods"): {"list"},
    ("", "pods/proxy"): {"get"},
}


def _assert_least_privilege(role: dict[str, Any]) -> None:
    for rule in role["rules"]:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], f"wildcard in {rule}"
        assert "resourceNames" not in rule
        assert "nonResourceURLs" not in rule


def test_cluster_scope_rbac(helm: Helm) -> None:
    objects = helm.render("--set", "rbac.scope=cluster")
    (role,) = operator_cluster_roles(objects)
    _assert_least_privilege(role)
    assert _rules(role) == NAMESPACED_RULES
    binding = one(objects, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    account = one(objects, "ServiceAccount")["metadata"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": NAMESPACE}
    ]
    # The only Role: the leader election's, in the release namespace.
    assert [r["metadata"]["name"] for r in of_kind(objects, "Role")] == [
        "pb-pagerbridge-leader-election"
    ]
    assert len(of_kind(objects, "RoleBinding")) == 1


def _bound_to_operator(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every Role and ClusterRole a binding grants the operator's ServiceAccount."""
    account = one(objects, "ServiceAccount")["metadata"]["name"]
    granted = []
    for binding in of_kind(objects, "RoleBinding") + of_kind(objects, "ClusterRoleBinding"):
        if {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE} in binding[
            "subjects"
        ]:
            ref = binding["roleRef"]
            where = binding["metadata"].get("namespace")
            (role,) = [
                r
                for r in of_kind(objects, ref["kind"])
                if r["metadata"]["name"] == ref["name"] and r["metadata"].get("namespace") == where
            ]
            granted.append(role)
    return granted


def test_default_install_grants_nothing_cluster_wide_and_reads_secrets_by_name(
    helm: Helm,
) -> None:
    """The security review's finding: the default install was close to cluster-admin."""
    objects = helm.render()
    granted = _bound_to_operator(objects)
    assert granted, "the operator is bound to its Roles"
    assert not of_kind(objects, "ClusterRoleBinding")
    assert {role["kind"] for role in granted} == {"Role"}
    assert {role["metadata"]["namespace"] for role in granted} == {NAMESPACE}
    (watch_role,) = _watch_rbac(objects, "Role")
    secret_rules = [r for r in watch_role["rules"] if "secrets" in r["resources"]]
    # Each Secret grant is a rule of its own, so each is proven needed on its own (e2e).
    assert [(r["resources"], r["verbs"]) for r in secret_rules] == [
        (["secrets"], ["get"]),
        (["secrets"], ["list", "watch"]),  # our labelled Secrets only (selector, not RBAC)
        (["secrets"], ["create", "patch", "delete"]),
    ]
    for rule in watch_role["rules"]:
        assert "update" not in rule["verbs"] or rule["apiGroups"] == ["pagerbridge.io"]
    # rbac.create=false: nothing is granted by the chart at all.
    assert not _bound_to_operator(helm.render("--set", "rbac.create=false"))


def test_cluster_scope_is_an_explicit_choice_with_the_same_rules(helm: Helm) -> None:
    namespaced = _watch_rbac(helm.render(), "Role")[0]["rules"]
    (cluster_role,) = operator_cluster_roles(helm.render("--set", "rbac.scope=cluster"))
    assert cluster_role["rules"] == namespaced
    writes = {
        resource
        for rule in cluster_role["rules"]
        if set(rule["verbs"]) & WRITE
        for resource in rule["resources"]
    }
    assert {"secrets", "configmaps", "services", "persistentvolumeclaims", "deployments"} <= (
        writes
    )


def _watch_rbac(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The Roles (RoleBindings) of watched namespaces: all but the leader election's."""
    return [
        obj
        for obj in of_kind(objects, kind)
        if not obj["metadata"]["name"].endswith("-leader-election")
    ]


@pytest.mark.parametrize(
    ("extra", "watched"),
    [
        ([], [NAMESPACE]),
        (["--set", "rbac.scope=namespace"], [NAMESPACE]),
        (["--set", "watchNamespaces={team-a,team-b}"], ["team-a", "team-b"]),
    ],
    ids=["default", "release-namespace", "listed-namespaces"],
)
def test_namespace_scope_renders_roles_not_cluster_roles(
    helm: Helm, extra: list[str], watched: list[str]
) -> None:
    objects = helm.render(*extra)
    assert not operator_cluster_roles(objects)
    assert not of_kind(objects, "ClusterRoleBinding")
    roles = _watch_rbac(objects, "Role")
    bindings = _watch_rbac(objects, "RoleBinding")
    assert sorted(r["metadata"]["namespace"] for r in roles) == sorted(watched)
    assert sorted(b["metadata"]["namespace"] for b in bindings) == sorted(watched)
    account = one(objects, "ServiceAccount")["metadata"]["name"]
    for role in roles:
        _assert_least_privilege(role)
        assert _rules(role) == NAMESPACED_RULES
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
        ]
    args = _container(objects)["args"]
    assert "--all-namespaces" not in args
    assert [a for a in args if a.startswith("--namespace=")] == [
        f"--namespace={ns}" for ns in watched
    ]


def test_existing_service_account(helm: Helm) -> None:
    objects = helm.render(
        "--set", "serviceAccount.create=false", "--set", "serviceAccount.name=ops-robot"
    )
    assert not of_kind(objects, "ServiceAccount")
    assert one(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == (
        "ops-robot"
    )
    for binding in of_kind(objects, "RoleBinding"):
        assert binding["subjects"][0]["name"] == "ops-robot"
    missing = helm.template("--set", "serviceAccount.create=false")
    assert missing.returncode != 0
    assert "serviceAccount.name is required" in missing.stderr


def test_rbac_can_be_left_to_the_cluster_admin(helm: Helm) -> None:
    objects = helm.render("--set", "rbac.create=false")
    kinds = {obj["kind"] for obj in objects}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


def test_metrics_service_and_optional_servicemonitor(helm: Helm) -> None:
    objects = helm.render()
    assert not of_kind(objects, "ServiceMonitor")
    service = one(objects, "Service")
    deployment = one(objects, "Deployment")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}
    ]
    monitored = helm.render(
        "--set",
        "serviceMonitor.enabled=true",
        "--set",
        "serviceMonitor.labels.release=prom",
        "--api-versions",
        "monitoring.coreos.com/v1/ServiceMonitor",
    )
    monitor = one(monitored, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert not of_kind(helm.render("--set", "service.enabled=false"), "Service")


def test_scheduling_values_reach_the_pod(helm: Helm) -> None:
    objects = helm.render(
        "--set", "nodeSelector.kubernetes\\.io/os=linux",
        "--set", "tolerations[0].key=dedicated",
        "--set", "tolerations[0].operator=Exists",
        "--set", "priorityClassName=system-cluster-critical",
        "--set", "podAnnotations.team=sre",
        "--set", "imagePullSecrets[0].name=regcred",
    )  # fmt: skip
    pod = one(objects, "Deployment")["spec"]["template"]
    assert pod["metadata"]["annotations"] == {"team": "sre"}
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["spec"]["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]
    assert pod["spec"]["priorityClassName"] == "system-cluster-critical"
    assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]


def test_leader_election_role_reaches_only_its_lease(helm: Helm) -> None:
    objects = helm.render("--set", "replicaCount=2")
    assert one(objects, "Deployment")["spec"]["replicas"] == 2
    (role,) = [r for r in of_kind(objects, "Role") if r not in _watch_rbac(objects, "Role")]
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["pb-pagerbridge"],
            "verbs": ["get", "update"],
        },
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
    ]
    (binding,) = [
        b for b in of_kind(objects, "RoleBinding") if b not in _watch_rbac(objects, "RoleBinding")
    ]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"][0]["name"] == one(objects, "ServiceAccount")["metadata"]["name"]


def test_without_leader_election_one_replica_at_most(helm: Helm) -> None:
    objects = helm.render("--set", "operator.leaderElection=false")
    assert of_kind(objects, "Role") == _watch_rbac(objects, "Role")
    assert one(objects, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}
    assert "--no-leader-election" in _container(objects)["args"]
    result = helm.template("--set", "operator.leaderElection=false", "--set", "replicaCount=2")
    assert result.returncode != 0
    assert "replicaCount > 1 needs operator.leaderElection" in result.stderr


def test_a_cluster_read_rule_gets_a_cluster_role_of_its_own(helm: Helm, tmp_path: Path) -> None:
    """The place for an unavoidable cluster-scoped read (e.g. the kube-system Namespace
    as cluster identity): empty by default (no ClusterRole, see above); filled, it is
    bound in both scopes, apart from the namespaced rules."""
    copy = tmp_path / "pagerbridge"
    shutil.copytree(CHART, copy)
    rbac = copy / "templates" / "rbac.yaml"
    rule = (
        '- apiGroups: [""]\n  resources: ["namespaces"]\n'
        '  resourceNames: ["kube-system"]\n  verbs: ["get"]\n'
    )
    text = rbac.read_text()
    empty = '{{- define "pagerbridge.clusterReadRules" -}}\n{{- end }}'
    assert empty in text
    rbac.write_text(text.replace(empty, empty.replace("-}}\n", "-}}\n" + rule)))
    for scope in ("namespace", "cluster"):
        objects = helm.render("--set", f"rbac.scope={scope}", chart=copy)
        (role,) = [
            r for r in of_kind(objects, "ClusterRole") if r["metadata"]["name"].endswith("-read")
        ]
        assert role["rules"] == [
            {
                "apiGroups": [""],
                "resources": ["namespaces"],
                "resourceNames": ["kube-system"],
                "verbs": ["get"],
            }
        ]
        assert role in _bound_to_operator(objects)


def test_cluster_id_and_default_database_reach_the_operator_only_when_set(helm: Helm) -> None:
    env = {item["name"] for item in _container(helm.render())["env"]}
    assert not {"PAGERBRIDGE_CLUSTER_ID", "PAGERBRIDGE_RELAY_DATABASE_SECRET"} & env
    objects = helm.render(
        "--set", "clusterId=prod-eu-1", "--set", "relay.database.secretName=pagerbridge-db"
    )  # fmt: skip
    container = _container(objects)
    values = {item["name"]: item.get("value") for item in container["env"]}
    assert values["PAGERBRIDGE_CLUSTER_ID"] == "prod-eu-1"
    assert values["PAGERBRIDGE_RELAY_DATABASE_SECRET"] == "pagerbridge-db"
    assert values["PAGERBRIDGE_RELAY_DATABASE_SECRET_KEY"] == "uri"
    # The database default is the operator's, not a relay pod setting.
    assert "database" not in values["PAGERBRIDGE_RELAY_DEFAULTS"]


def test_the_default_database_secret_is_per_integration(helm: Helm) -> None:
    """relay.database.secretName "{name}-outbox-db": each integration its own Secret (so
    its own PostgreSQL role); the operator fills the integration's name in."""
    env = {
        item["name"]: item.get("value")
        for item in _container(
            helm.render("--set-json", 'relay.database.secretName="{name}-outbox-db"')
        )["env"]
    }
    default = relay_database_default(env[RELAY_DATABASE_SECRET_ENV], env[RELAY_DATABASE_KEY_ENV])
    assert default is not None
    assert default.per_integration
    assert default.for_integration("payments").name == "payments-outbox-db"
    assert default.for_integration("billing").name == "billing-outbox-db"
    assert _default_database(default, "payments") == default.for_integration("payments")
    with pytest.raises(DatabaseNotConfigured, match="uriSecretRef"):
        _default_database(default, "x" * 250)  # too long a Secret name once filled in
    for bad in ("{name", "UPPER-{name}", "-{name}", "{namespace}-db"):
        result = helm.template("--set-json", f'relay.database.secretName="{bad}"')
        assert result.returncode != 0, bad
