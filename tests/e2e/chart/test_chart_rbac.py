"""The Helm chart on a real API server (RBAC on): install, schema, and least privilege.

The chart is installed with the real ``helm install``. The operator then runs as a local
process with the chart's Deployment arguments and a token of the chart's ServiceAccount
instead of admin credentials, so a reconcile only works if the chart's Role/ClusterRole
grants enough. Each namespaced rule is then removed in turn and the same reconcile must
visibly fail, so no rule is dead weight. (The operator's own Deployment never gets a pod:
the control plane has no kubelet, and the harness kubelet only runs relay Deployments.)

The default install is namespace-scoped: it serves its own namespace, grants nothing
cluster-wide, and leaves an integration in any other namespace alone. Its Secret grants
are ``get`` (by name) plus ``list``/``watch`` that the operator only ever uses with a label
selector for its own Secrets: RBAC cannot enforce a selector, so the local API server's
audit log is read to prove it. A rotated referenced Secret is still noticed, by name.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from pagerbridge_devkit.localcluster.kubelet import HarnessKubelet

from ..conftest import EXTERNAL_KUBECONFIG_ENV, Cluster
from ..kube import condition, get_json, merge_patch, wait_for
from .release import (
    CHART,
    ChartOperator,
    Release,
    can_i,
    minimal_example,
    permission_errors,
    rule_keys,
    rules_of,
    run_operator,
    wait_ready,
)

pytestmark = pytest.mark.e2e


def test_helm_install_rejects_bad_values_with_the_schema_message(cluster: Cluster) -> None:
    name = f"pb-bad-{uuid.uuid4().hex[:6]}"
    result = cluster.helm(
        "install", name, str(CHART), "--namespace", "default", "--set", "replicaCount=-1",
        check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert "- at '/replicaCount': minimum: got -1, want 0" in result.stderr
    listed = cluster.helm("list", "--all-namespaces", "--all", "-o", "json").stdout
    assert name not in {release["name"] for release in json.loads(listed)}


def test_namespaced_chart_operator_reconciles_with_its_service_account(
    cluster: Cluster,
    namespace: str,
    namespaced_release: Release,
    kubelet: HarnessKubelet,
    pd_url: str,
    chart_operator: list[ChartOperator],
    tmp_path: Path,
) -> None:
    release = namespaced_release
    assert release.role_kind == "Role"
    assert release.role_namespace == namespace
    assert f"--namespace={namespace}" in release.operator_args
    # The ServiceAccount reaches Secrets only where it was pointed.
    assert can_i(cluster, release, "get", "secrets", "-n", namespace)
    assert not can_i(cluster, release, "get", "secrets", "-n", "default")
    assert not can_i(cluster, release, "get", "secrets", "-n", release.namespace)
    assert not can_i(cluster, release, "list", "secrets", "--all-namespaces")
    denied = cluster.kubectl(
        "--kubeconfig", str(release.kubeconfig), "get", "secrets", "-n", "default", check=False
    )
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr

    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=minimal_example(pd_url))
    operator = run_operator(chart_operator, release, tmp_path / "operator.log")
    body = wait_ready(cluster, namespace, operator)
    assert body["status"]["observedGeneration"] == body["metadata"]["generation"]
    assert get_json(cluster, namespace, "deployment", "minimal-relay") is not None
    unexpected = permission_errors(operator.log())
    assert not unexpected, "\n".join(unexpected[:5])


def test_cluster_chart_operator_reconciles_without_permission_errors(
    cluster: Cluster,
    namespace: str,
    cluster_release: Release,
    kubelet: HarnessKubelet,
    pd_url: str,
    chart_operator: list[ChartOperator],
    tmp_path: Path,
) -> None:
    release = cluster_release
    assert release.role_kind == "ClusterRole"
    assert "--all-namespaces" in release.operator_args
    assert can_i(cluster, release, "list", "secrets", "--all-namespaces")
    # Nothing cluster-scoped: kopf's CRD and namespace scanning is off.
    assert not can_i(cluster, release, "list", "customresourcedefinitions.apiextensions.k8s.io")
    assert not can_i(cluster, release, "list", "namespaces")
    assert not can_i(cluster, release, "create", "clusterroles.rbac.authorization.k8s.io")
    assert not can_i(cluster, release, "list", "nodes")

    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=minimal_example(pd_url))
    operator = run_operator(chart_operator, release, tmp_path / "operator.log")
    wait_ready(cluster, namespace, operator)
    unexpected = permission_errors(operator.log())
    assert not unexpected, "\n".join(unexpected[:5])


# What a namespaced Role of the operator must never grant: write on workloads or Secrets.
WRITES = ("create", "update", "patch", "delete")
WORKLOADS = (
    "deployments.apps",
    "services",
    "configmaps",
    "secrets",
    "persistentvolumeclaims",
    "poddisruptionbudgets.policy",
)
SECRET_NAME = "pagerduty-minimal"  # the Secret examples/01-minimal.yaml references


def _grants_elsewhere(cluster: Cluster, release: Release, namespace: str) -> list[str]:
    """Every workload write or Secret read the ServiceAccount has in ``namespace``."""
    checks = [(verb, resource) for resource in WORKLOADS for verb in WRITES]
    checks += [("get", "secrets"), ("list", "secrets"), ("watch", "secrets")]
    return [
        f"{verb} {resource}"
        for verb, resource in checks
        if can_i(cluster, release, verb, resource, "-n", namespace)
    ]


def test_default_install_serves_its_namespace_only_and_notices_rotated_secrets(
    cluster: Cluster,
    namespace: str,
    default_release: Release,
    unwatched: str,
    kubelet: HarnessKubelet,
    pd_url: str,
    chart_operator: list[ChartOperator],
    tmp_path: Path,
) -> None:
    """`helm install` with no values: one Role in the release namespace, nothing
    cluster-wide; an integration elsewhere is left alone; a rotated Secret is noticed by
    name (no Secret watch, no resync: only the periodic secret check)."""
    release = default_release
    assert (release.role_kind, release.role_namespace) == ("Role", namespace)
    assert f"--namespace={namespace}" in release.operator_args
    assert "--all-namespaces" not in release.operator_args
    manifest = cluster.helm("get", "manifest", release.name, "-n", namespace).stdout
    kinds = {doc["kind"] for doc in yaml.safe_load_all(manifest) if doc}
    assert "ClusterRoleBinding" not in kinds
    # No write on workloads and no Secret read anywhere but the watched namespace.
    assert _grants_elsewhere(cluster, release, unwatched) == []
    assert _grants_elsewhere(cluster, release, "kube-system") == []
    for verb, resource in (("create", "deployments.apps"), ("list", "secrets")):
        assert not can_i(cluster, release, verb, resource, "--all-namespaces")
    for resource in ("customresourcedefinitions.apiextensions.k8s.io", "namespaces", "nodes"):
        assert not can_i(cluster, release, "list", resource)
    # In the watched namespace: Secrets by name; never `update` (nothing PUTs a Secret).
    assert can_i(cluster, release, "get", "secrets", "-n", namespace)
    assert not can_i(cluster, release, "update", "secrets", "-n", namespace)

    # An integration in an unwatched namespace first, then one in the watched one.
    cluster.kubectl("apply", "-n", unwatched, "-f", "-", input=minimal_example(pd_url))
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=minimal_example(pd_url))
    operator = run_operator(
        chart_operator,
        release,
        tmp_path / "operator.log",
        PAGERBRIDGE_RESYNC_SECONDS="3600",  # a rotation must be noticed without a resync
        PAGERBRIDGE_SECRET_CHECK_SECONDS="1",
    )
    wait_ready(cluster, namespace, operator)
    # By now the operator has listed its namespace: the other integration stays untouched.
    other = get_json(cluster, unwatched, "pdi", "minimal")
    assert "status" not in other
    assert not other["metadata"].get("finalizers")
    assert not [a for a in other["metadata"].get("annotations", {}) if "pagerbridge.io" in a]
    assert get_json(cluster, unwatched, "deployment", "minimal-relay") is None
    assert get_json(cluster, unwatched, "secret", "minimal-relay-token") is None

    # The routing key rotated to a bad value, then to a good one: both are noticed.
    merge_patch(
        cluster, namespace, "secret", SECRET_NAME, {"stringData": {"routing-key": "not-a-key"}}
    )
    wait_for(
        lambda: (
            condition(get_json(cluster, namespace, "pdi", "minimal"), "SecretsResolved").get(
                "reason"
            )
            == "InvalidKey"
        ),
        30,
        "InvalidKey after the routing key was rotated to a bad value",
    )
    rotated = "0123456789abcdef0123456789abcdef"
    merge_patch(cluster, namespace, "secret", SECRET_NAME, {"stringData": {"routing-key": rotated}})
    wait_ready(cluster, namespace, operator)
    log = operator.log()
    assert "not-a-key" not in log
    assert rotated not in log
    unexpected = permission_errors(log)
    assert not unexpected, "\n".join(unexpected[:5])


MANAGED_SELECTOR = "app.kubernetes.io/managed-by=pagerbridge"


def _secret_reads(audit_log: Path, user: str) -> list[dict[str, Any]]:
    """The audit events of ``user`` listing or watching Secrets (the local API server
    logs only those: localcluster.controlplane.AUDIT_POLICY)."""
    events = []
    for line in audit_log.read_text().splitlines():
        event = json.loads(line)
        if event.get("user", {}).get("username") == user and event.get("stage") in (
            "ResponseStarted",
            "ResponseComplete",
        ):
            events.append(event)
    return events


@pytest.mark.skipif(
    bool(os.environ.get(EXTERNAL_KUBECONFIG_ENV)),
    reason="reads the audit log of the local kube-apiserver",
)
def test_the_operator_lists_and_watches_only_its_own_secrets(
    cluster: Cluster,
    namespace: str,
    default_release: Release,
    kubelet: HarnessKubelet,
    pd_url: str,
    chart_operator: list[ChartOperator],
    tmp_path: Path,
) -> None:
    """RBAC grants list/watch on Secrets but cannot enforce a label selector: the API
    server's audit log shows every list and watch of the operator carries ours."""
    assert cluster.local is not None
    release = default_release
    user = f"system:serviceaccount:{release.namespace}:{release.service_account}"
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=minimal_example(pd_url))
    operator = run_operator(chart_operator, release, tmp_path / "operator.log")
    wait_ready(cluster, namespace, operator)
    reads = wait_for(
        lambda: _secret_reads(cluster.local.audit_log, user) if cluster.local else None,
        30,
        "the operator's Secret watch in the audit log",
    )
    verbs = {event["verb"] for event in reads}
    assert "watch" in verbs or "list" in verbs
    for event in reads:
        query = parse_qs(urlsplit(event["requestURI"]).query)
        assert query.get("labelSelector") == [MANAGED_SELECTOR], event["requestURI"]
        assert event["objectRef"]["namespace"] == namespace, event["requestURI"]


# rule (see rule_keys) -> a `kubectl auth can-i` check it alone grants
NAMESPACED_RULES: dict[str, tuple[str, ...]] = {
    "pagerbridge.io/pagerdutyintegrations": ("list", "pagerdutyintegrations.pagerbridge.io"),
    "pagerbridge.io/pagerdutyintegrations/status": (
        "patch",
        "pagerdutyintegrations.pagerbridge.io",
        "--subresource=status",
    ),
    # The referenced Secrets are read by name at each reconcile.
    "/secrets:get": ("get", "secrets"),
    # The watch of the operator's own (labelled) Secrets.
    "/secrets:list,watch": ("watch", "secrets"),
    # The generated webhook token is created on the first reconcile.
    "/secrets:create,patch,delete": ("create", "secrets"),
    "/configmaps": ("create", "configmaps"),
    "apps/deployments": ("create", "deployments.apps"),
    # Watched (an index of our children) even when no integration needs one.
    "policy/poddisruptionbudgets": ("list", "poddisruptionbudgets.policy"),
    "/events": ("create", "events"),
}
# Not provable on this control plane: `pagerdutyintegrations/finalizers` (update) is what
# lets the operator set blockOwnerDeletion on its children's ownerReferences when the
# OwnerReferencesPermissionEnforcement admission plugin is on (OpenShift, hardened
# clusters); the local control plane runs without that plugin.
# Nor are `pods` (list) and `pods/proxy` (get): the operator reads an unready PostgreSQL
# relay's /readyz through the pod proxy (steps/relay_readiness.py), but the harness kubelet
# runs relays as local processes without Pod objects, so nothing is there to list or
# proxy to; the reconciler test with the in-memory API covers the step
# (tests/unit/controller/test_reconciler.py), the real node would prove the rules.
NOT_PROVABLE_HERE = {"pagerbridge.io/pagerdutyintegrations/finalizers", "/pods", "/pods/proxy"}


def test_every_rule_of_the_chart_is_proven_or_explained(
    cluster: Cluster, namespaced_release: Release
) -> None:
    """A rule added to the chart needs an entry in NAMESPACED_RULES (and so a proof)."""
    keys = rule_keys(rules_of(cluster, namespaced_release))
    assert sorted(keys) == sorted(set(NAMESPACED_RULES) | NOT_PROVABLE_HERE)


def _remove_rule(cluster: Cluster, release: Release, rule: str, check: tuple[str, ...]) -> None:
    keys = rule_keys(rules_of(cluster, release))
    assert rule in keys, f"{rule} not in the chart's rules {keys}"
    where = ["-n", release.role_namespace] if release.role_namespace else []
    patch = [{"op": "remove", "path": f"/rules/{keys.index(rule)}"}]
    cluster.kubectl(
        "patch", release.role_kind, release.role_name, *where, "--type=json",
        "-p", json.dumps(patch),
    )  # fmt: skip
    scope = where or ["--all-namespaces"]
    wait_for(
        lambda: not can_i(cluster, release, *check, *scope),
        10,
        f"RBAC to stop granting {check}",
    )


def _permission_error(operator: ChartOperator) -> str | None:
    errors = permission_errors(operator.log())
    return errors[0] if errors else None


@pytest.mark.parametrize("rule", sorted(NAMESPACED_RULES))
def test_every_namespaced_rule_is_needed(
    cluster: Cluster,
    namespace: str,
    namespaced_release: Release,
    kubelet: HarnessKubelet,
    pd_url: str,
    chart_operator: list[ChartOperator],
    tmp_path: Path,
    rule: str,
) -> None:
    """Without the rule, the reconcile above hits a permission error (and so fails)."""
    check = NAMESPACED_RULES[rule]
    assert can_i(cluster, namespaced_release, *check, "-n", namespace)
    _remove_rule(cluster, namespaced_release, rule, check)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=minimal_example(pd_url))
    operator = run_operator(chart_operator, namespaced_release, tmp_path / "operator.log")
    line = wait_for(lambda: _permission_error(operator), 45, f"a permission error without {rule}")
    assert line


# The leader election's Role (in the release namespace): index of the rule -> its check.
LEASE_RULES: dict[int, tuple[str, ...]] = {
    0: ("get", "leases.coordination.k8s.io"),  # get + update, on the release's Lease only
    1: ("create", "leases.coordination.k8s.io"),
}


@pytest.mark.parametrize("index", sorted(LEASE_RULES), ids=["get-update", "create"])
def test_every_leader_election_rule_is_needed(
    cluster: Cluster,
    namespace: str,
    namespaced_release: Release,
    pd_url: str,
    chart_operator: list[ChartOperator],
    tmp_path: Path,
    index: int,
) -> None:
    """Without the rule the operator cannot lead: it says so and reconciles nothing."""
    release = namespaced_release
    role = f"{release.name}-pagerbridge-leader-election"
    check = LEASE_RULES[index]
    lease_name = f"{release.name}-pagerbridge"
    name_check = (f"{check[0]}", f"{check[1]}/{lease_name}") if index == 0 else check
    assert can_i(cluster, release, *name_check, "-n", release.namespace)
    patch = [{"op": "remove", "path": f"/rules/{index}"}]
    cluster.kubectl(
        "patch", "role", role, "-n", release.namespace, "--type=json", "-p", json.dumps(patch)
    )
    wait_for(
        lambda: not can_i(cluster, release, *name_check, "-n", release.namespace),
        10,
        f"RBAC to stop granting {check}",
    )
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=minimal_example(pd_url))
    operator = run_operator(chart_operator, release, tmp_path / "operator.log")
    line = wait_for(lambda: _permission_error(operator), 45, "a permission error on the Lease")
    assert "leases" in line
    assert "became the leader" not in operator.log()
    assert condition(get_json(cluster, namespace, "pdi", "minimal")) == {}
