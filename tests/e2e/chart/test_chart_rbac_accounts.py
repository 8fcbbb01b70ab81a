"""The chart's RBAC for shared accounts (accounts.enabled), proven on a real API server:
with the switch on, the operator (as the chart's ServiceAccount, with the chart's
environment) serves an integration of a tenant namespace from a ClusterPagerDutyAccount
whose Secret and relay are in the account namespace, without a permission error; then
each rule of the chart's ``-accounts`` ClusterRole is removed in turn, and the operator,
restarted, hits a permission error naming what the rule granted. (Apart from
test_chart_rbac.py: the default install grants nothing for accounts or Namespaces.)

The install is rbac.scope=namespace with the account namespace and the tenant's watched:
the "explicit grant" path, with nothing cluster-wide but the three account rules.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pagerbridge.controller.settings import ENV_ACCOUNT_NAMESPACE
from pagerbridge_devkit.localcluster.kubelet import HarnessKubelet
from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_ROUTING_KEY

from ..conftest import Cluster
from ..kube import condition, get_json, merge_patch, wait_for
from .release import (
    ChartOperator,
    Release,
    can_i,
    install,
    permission_errors,
    run_operator,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def tenant(cluster: Cluster) -> Iterator[str]:
    name = f"pb-tenant-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("label", "namespace", name, f"pb-e2e-accounts={name}")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def accounts_release(
    cluster: Cluster, namespace: str, tenant: str, tmp_path: Path
) -> Iterator[Release]:
    yield from install(
        cluster, tmp_path,
        "--set", "rbac.scope=namespace",
        "--set", f"watchNamespaces={{{namespace},{tenant}}}",
        "--set", "accounts.enabled=true",
        "--set", f"accounts.namespace={namespace}",
        roles_expected=2,
    )  # fmt: skip


def _docs(*docs: dict[str, Any]) -> str:
    return yaml.safe_dump_all(docs)


def _accounts_role(cluster: Cluster, release: Release) -> dict[str, Any]:
    manifest = cluster.helm("get", "manifest", release.name, "-n", release.namespace).stdout
    (role,) = [
        doc
        for doc in yaml.safe_load_all(manifest)
        if doc and doc["kind"] == "ClusterRole" and doc["metadata"]["name"].endswith("-accounts")
    ]
    out = cluster.kubectl("get", "clusterrole", role["metadata"]["name"], "-o", "json").stdout
    live: dict[str, Any] = json.loads(out)
    return live


def _ready(cluster: Cluster, tenant: str, operator: ChartOperator) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        assert operator.process is not None
        assert operator.process.poll() is None, operator.log()[-3000:]
        body = get_json(cluster, tenant, "pdi", "shared")
        return body if condition(body).get("status") == "True" else None

    try:
        body: dict[str, Any] = wait_for(ready, 90, "pdi/shared Ready")
    except AssertionError as exc:
        status = (get_json(cluster, tenant, "pdi", "shared") or {}).get("status")
        raise AssertionError(f"{exc}\nstatus: {status}\nlog:\n{operator.log()[-4000:]}") from None
    return body


def test_account_rules_are_enough_and_each_is_needed(
    cluster: Cluster,
    namespace: str,
    tenant: str,
    accounts_release: Release,
    kubelet: HarnessKubelet,
    pd_url: str,
    chart_operator: list[ChartOperator],
    tmp_path: Path,
) -> None:
    release, admin = accounts_release, namespace
    account = f"shared-{tenant}"
    # What the switch grants, cluster-wide: the accounts and Namespaces, read-only.
    assert can_i(cluster, release, "list", "namespaces")
    assert can_i(cluster, release, "watch", "clusterpagerdutyaccounts.pagerbridge.io")
    assert not can_i(cluster, release, "get", "namespaces")
    assert not can_i(cluster, release, "patch", "namespaces")
    assert not can_i(cluster, release, "create", "clusterpagerdutyaccounts.pagerbridge.io")
    assert not can_i(cluster, release, "list", "secrets", "--all-namespaces")
    assert not can_i(cluster, release, "get", "secrets", "-n", "default")

    cluster.kubectl(
        "apply", "-n", admin, "-f", "-",
        input=_docs({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pd-account"},
            "stringData": {"routing-key": DEFAULT_ROUTING_KEY},
        }),
    )  # fmt: skip
    cluster.kubectl(
        "apply", "-f", "-",
        input=_docs({
            "apiVersion": "pagerbridge.io/v1alpha1", "kind": "ClusterPagerDutyAccount",
            "metadata": {"name": account},
            "spec": {
                "routingKey": {"name": "pd-account", "key": "routing-key"},
                "eventsUrl": pd_url,
                "namespaceSelector": {"matchLabels": {"pb-e2e-accounts": tenant}},
            },
        }),
    )  # fmt: skip
    try:
        _prove(cluster, release, admin, tenant, account, chart_operator, tmp_path)
    finally:
        cluster.kubectl("delete", "clusterpagerdutyaccount", account, "--wait=false", check=False)


def _prove(
    cluster: Cluster,
    release: Release,
    admin: str,
    tenant: str,
    account: str,
    chart_operator: list[ChartOperator],
    tmp_path: Path,
) -> None:
    cluster.kubectl(
        "apply", "-n", tenant, "-f", "-",
        input=_docs({
            "apiVersion": "pagerbridge.io/v1alpha1", "kind": "PagerDutyIntegration",
            "metadata": {"name": "shared"},
            "spec": {"pagerDuty": {"accountRef": {"name": account}}, "sync": {"notes": False}},
        }),
    )  # fmt: skip
    deployment = get_json(cluster, release.namespace, "deployments")["items"][0]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"] if e["name"] == ENV_ACCOUNT_NAMESPACE}
    assert env == {ENV_ACCOUNT_NAMESPACE: admin}
    operator = run_operator(chart_operator, release, tmp_path / "operator.log", **env)
    body = _ready(cluster, tenant, operator)
    assert f".{admin}.svc" in body["status"]["relay"]["serviceUrl"]
    wait_for(
        lambda: (
            (get_json(cluster, "default", "cpda", account) or {})
            .get("status", {})
            .get("integrations")
            == 1
        ),
        30,
        "the account's status written",
    )
    unexpected = permission_errors(operator.log())
    assert not unexpected, "\n".join(unexpected[:5])
    operator.stop()

    # Each rule removed: the operator, restarted, is refused what the rule granted.
    role = _accounts_role(cluster, release)
    name, original = role["metadata"]["name"], role["rules"]
    for index, rule in enumerate(original):
        rules = [r for i, r in enumerate(original) if i != index]
        merge_patch(cluster, "default", "clusterrole", name, {"rules": rules})
        resource, verb = rule["resources"][0], rule["verbs"][0]
        wait_for(
            lambda r=resource, v=verb: not can_i(cluster, release, v, _qualified(r)),
            10,
            f"RBAC to stop granting {verb} {resource}",
        )
        # A spec change: the account's status must be written again (its generation).
        generation = f"{index}-{uuid.uuid4().hex[:4]}"
        merge_patch(cluster, "default", "cpda", account, {"spec": {"namespaces": [generation]}})
        log = tmp_path / f"operator-{index}.log"
        operator = run_operator(chart_operator, release, log, **env)
        errors = wait_for(
            lambda o=operator: permission_errors(o.log()), 45, f"a permission error ({resource})"
        )
        assert any(resource.split("/")[0] in line for line in errors), errors[:3]
        operator.stop()
        merge_patch(cluster, "default", "clusterrole", name, {"rules": original})

    # Deleting the integration deletes its relay in the account namespace: the finalizer
    # needs the account namespace's Role (delete on the children no garbage collector
    # reaches). Without its rule: refused; with it back: the children are gone.
    operator = run_operator(chart_operator, release, tmp_path / "operator-delete.log", **env)
    _ready(cluster, tenant, operator)
    role_rules = json.loads(cluster.kubectl("get", "role", name, "-n", admin, "-o", "json").stdout)[
        "rules"
    ]
    merge_patch(cluster, admin, "role", name, {"rules": []})
    wait_for(
        lambda: not can_i(cluster, release, "delete", "deployments.apps", "-n", admin),
        10,
        "RBAC to stop granting delete in the account namespace",
    )
    cluster.kubectl("delete", "pdi", "shared", "-n", tenant, "--wait=false")
    errors = wait_for(lambda: permission_errors(operator.log()), 45, "the finalizer refused")
    assert any("configmaps" in line or "deployments" in line for line in errors), errors[:3]
    assert _children(cluster, admin, tenant)  # nothing deleted, nothing lost
    merge_patch(cluster, admin, "role", name, {"rules": role_rules})
    wait_for(lambda: get_json(cluster, tenant, "pdi", "shared") is None, 60, "the deletion")
    assert _children(cluster, admin, tenant) == []


def _children(cluster: Cluster, admin: str, tenant: str) -> list[str]:
    """The tenant's children in the account namespace, not being deleted."""
    listing = get_json(
        cluster, admin, "deployments,configmaps,services,secrets,persistentvolumeclaims",
        "-l", f"pagerbridge.io/tenant-namespace={tenant}",
    )  # fmt: skip
    # (a deleted claim may wait on kubernetes.io/pvc-protection: deleted all the same)
    return [
        item["metadata"]["name"]
        for item in listing["items"]
        if not item["metadata"].get("deletionTimestamp")
    ]


def _qualified(resource: str) -> str:
    base, _, sub = resource.partition("/")
    name = base if base == "namespaces" else f"{base}.pagerbridge.io"
    return f"{name}/{sub}" if sub else name
