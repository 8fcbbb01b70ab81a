"""accounts.enabled: the account namespace reaches the operator, the -accounts ClusterRole
grants only the account and Namespace reads (and the accounts' status), and a namespaced
install refuses an account namespace it does not watch."""

from __future__ import annotations

from chart.helm_tools import Helm, of_kind, one
from pagerbridge.controller.settings import ENV_ACCOUNT_NAMESPACE


def _env(objects: list[dict[str, object]]) -> dict[str, str]:
    deployment = one(objects, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]  # type: ignore[index]
    return {e["name"]: e.get("value", "") for e in container["env"]}


def _accounts_roles(objects: list[dict[str, object]]) -> list[dict[str, object]]:
    return [
        role
        for role in of_kind(objects, "ClusterRole")
        if str(role["metadata"]["name"]).endswith("-accounts")  # type: ignore[index]
    ]


def test_accounts_are_off_by_default(helm: Helm) -> None:
    objects = helm.render()
    assert ENV_ACCOUNT_NAMESPACE not in _env(objects)
    assert _accounts_roles(objects) == []


def test_accounts_on_default_to_the_release_namespace_with_three_read_rules(helm: Helm) -> None:
    objects = helm.render("--set", "accounts.enabled=true")
    assert _env(objects)[ENV_ACCOUNT_NAMESPACE] == "pagerbridge-system"
    (role,) = _accounts_roles(objects)
    rules = [(r["resources"], r["verbs"]) for r in role["rules"]]  # type: ignore[attr-defined]
    assert rules == [
        (["clusterpagerdutyaccounts", "clusterbigpandaaccounts"], ["list", "watch"]),
        (["clusterpagerdutyaccounts/status", "clusterbigpandaaccounts/status"], ["patch"]),
        (["namespaces"], ["list", "watch"]),
    ]
    (binding,) = [
        b
        for b in of_kind(objects, "ClusterRoleBinding")
        if b["roleRef"]["name"] == role["metadata"]["name"]  # type: ignore[index]
    ]
    assert binding["subjects"][0]["kind"] == "ServiceAccount"  # type: ignore[index]
    # In the account namespace only: delete the children no garbage collector reaches.
    (local,) = [
        r
        for r in of_kind(objects, "Role")
        if str(r["metadata"]["name"]).endswith("-accounts")  # type: ignore[index]
    ]
    assert local["metadata"]["namespace"] == "pagerbridge-system"  # type: ignore[index]
    assert [r["verbs"] for r in local["rules"]] == [["delete"]]  # type: ignore[attr-defined]


def test_a_namespaced_install_must_watch_the_account_namespace(helm: Helm) -> None:
    result = helm.template("--set", "accounts.enabled=true", "--set", "accounts.namespace=admin")
    assert result.returncode != 0
    assert "accounts.namespace admin must be one of watchNamespaces" in result.stderr
    objects = helm.render(
        "--set", "accounts.enabled=true", "--set", "accounts.namespace=admin",
        "--set", "watchNamespaces={admin,team-a}",
    )  # fmt: skip
    assert _env(objects)[ENV_ACCOUNT_NAMESPACE] == "admin"
    cluster_wide = helm.render(
        "--set", "accounts.enabled=true", "--set", "accounts.namespace=admin",
        "--set", "rbac.scope=cluster",
    )  # fmt: skip
    assert _env(cluster_wide)[ENV_ACCOUNT_NAMESPACE] == "admin"
