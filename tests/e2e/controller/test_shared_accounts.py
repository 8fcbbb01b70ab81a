"""Shared accounts on a real API server: two tenant namespaces use one
ClusterPagerDutyAccount, a third outside its selector is refused, and the account's
credentials never reach a place a tenant can read.

The operator watches the admin (account) namespace and the three tenants'; the harness
kubelet runs the relays, which are all in the admin namespace. Each relay is sent one
BigPanda incident directly and must page PagerDuty with the account's routing key.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from pagerbridge.controller import names as n
from pagerbridge_devkit.localcluster.kubelet import ANNOTATION_URL, HarnessKubelet
from pagerbridge_devkit.ports import free_port
from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_API_TOKEN, PagerDutySimulator

from ..conftest import Cluster
from .conftest import OperatorProcess, burst_incident, condition, get_json, wait_for

pytestmark = pytest.mark.e2e

ACCOUNT_KEY = "acc0unt0ab0cd0ef0000000000000001"  # the account's default routing key
CREDENTIALS = (ACCOUNT_KEY, DEFAULT_API_TOKEN)


def _yaml(*docs: dict[str, Any]) -> str:
    return yaml.safe_dump_all(docs)


@pytest.fixture
def tenants(cluster: Cluster) -> Iterator[tuple[str, list[str]]]:
    """(the selector label value, three namespaces: the first two carry it)."""
    value = uuid.uuid4().hex[:8]
    names = [f"pb-tenant-{value}-{i}" for i in range(3)]
    for index, name in enumerate(names):
        labels = {"pb-e2e-accounts": value} if index < 2 else {"pb-e2e-accounts": "other"}
        cluster.kubectl(
            "apply",
            "-f",
            "-",
            input=_yaml(
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": name, "labels": labels},
                }
            ),
        )
    yield value, names
    for name in names:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _account(name: str, namespace_label: str, pd_url: str) -> dict[str, Any]:
    return {
        "apiVersion": "pagerbridge.io/v1alpha1",
        "kind": "ClusterPagerDutyAccount",
        "metadata": {"name": name},
        "spec": {
            "routingKey": {"name": "pd-account", "key": "routing-key"},
            "apiToken": {"name": "pd-account", "key": "api-token"},
            "eventsUrl": pd_url,
            "apiUrl": pd_url,
            "namespaceSelector": {"matchLabels": {"pb-e2e-accounts": namespace_label}},
        },
    }


def _integration(account: str) -> str:
    return _yaml(
        {
            "apiVersion": "pagerbridge.io/v1alpha1",
            "kind": "PagerDutyIntegration",
            "metadata": {"name": "shared"},
            "spec": {"pagerDuty": {"accountRef": {"name": account}}, "sync": {"notes": False}},
        }
    )


def _relay(cluster: Cluster, admin: str, tenant: str) -> dict[str, Any] | None:
    listing = get_json(
        cluster, admin, "deployments", "-l", f"{n.LABEL_TENANT_NAMESPACE}={tenant}"
    ) or {"items": []}
    items = listing["items"]
    return items[0] if items else None


def _decoded(secret: dict[str, Any]) -> list[str]:
    return [
        base64.b64decode(v).decode(errors="replace") for v in (secret.get("data") or {}).values()
    ]


def test_two_namespaces_share_one_account_and_a_third_is_refused(
    cluster: Cluster,
    namespace: str,
    tenants: tuple[str, list[str]],
    kubelet: HarnessKubelet,
    pagerduty: tuple[PagerDutySimulator, str],
    tmp_path: Path,
) -> None:
    admin = namespace
    label, (first, second, outside) = tenants
    pd, pd_url = pagerduty
    account = f"shared-{label}"
    cluster.kubectl(
        "apply",
        "-n",
        admin,
        "-f",
        "-",
        input=_yaml(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "pd-account"},
                "stringData": {"routing-key": ACCOUNT_KEY, "api-token": DEFAULT_API_TOKEN},
            }
        ),
    )
    cluster.kubectl("apply", "-f", "-", input=_yaml(_account(account, label, pd_url)))
    operator = OperatorProcess(
        cluster,
        admin,
        tmp_path / "operator.log",
        free_port(),
        free_port(),
        extra_env={"PAGERBRIDGE_ACCOUNT_NAMESPACE": admin},
        extra_namespaces=[first, second, outside],
    )
    operator.start()
    try:
        _shared_account_flow(cluster, admin, account, first, second, outside, pd, operator)
    finally:
        operator.stop()
        cluster.kubectl("delete", "clusterpagerdutyaccount", account, "--wait=false", check=False)


def _shared_account_flow(
    cluster: Cluster,
    admin: str,
    account: str,
    first: str,
    second: str,
    outside: str,
    pd: PagerDutySimulator,
    operator: OperatorProcess,
) -> None:
    for tenant in (first, second, outside):
        cluster.kubectl("apply", "-n", tenant, "-f", "-", input=_integration(account))
    for tenant in (first, second):
        cluster.kubectl(
            "wait", "-n", tenant, "--for=condition=Ready", "pdi/shared", "--timeout=90s",
            timeout=100,
        )  # fmt: skip
    refused = wait_for(
        lambda: (
            c
            if (c := condition(get_json(cluster, outside, "pdi", "shared")))
            and c.get("reason") == "AccountNotAllowed"
            else None
        ),
        30,
        "the namespace outside the selector refused",
    )
    assert refused["status"] == "False"
    assert _relay(cluster, admin, outside) is None  # no relay for the refused namespace
    missing = _integration(f"{account}-missing").replace("name: shared\n", "name: missing\n")
    cluster.kubectl("apply", "-n", first, "-f", "-", input=missing)
    wait_for(
        lambda: (
            condition(get_json(cluster, first, "pdi", "missing")).get("reason") == "AccountNotFound"
        ),
        30,
        "an account that does not exist named",
    )

    # One relay per tenant, in the admin namespace, and each pages with the account's key.
    for index, tenant in enumerate((first, second)):
        pdi = get_json(cluster, tenant, "pdi", "shared")
        relay = _relay(cluster, admin, tenant)
        assert relay is not None
        labels = relay["metadata"]["labels"]
        assert labels[n.LABEL_TENANT_UID] == pdi["metadata"]["uid"]
        assert "ownerReferences" not in relay["metadata"]
        service = pdi["status"]["relay"]["serviceUrl"]
        assert service.startswith(f"http://{relay['metadata']['name']}.{admin}.svc")
        assert pdi["status"]["bigPandaWebhook"]["url"].startswith(service)
        headers = {h["name"]: h for h in pdi["status"]["bigPandaWebhook"]["headers"]}
        ref = headers["Authorization"]["valueFrom"]
        # The inbound token as the tenant finds it: a copy in its own namespace (the relay
        # mounts the one in the admin namespace).
        token_secret = wait_for(
            lambda t=tenant, r=ref: get_json(cluster, t, "secret", r["name"]), 30, "the copy"
        )
        assert token_secret["metadata"]["ownerReferences"][0]["uid"] == pdi["metadata"]["uid"]
        token = base64.b64decode(token_secret["data"][ref["key"]]).decode()
        url = wait_for(
            lambda t=tenant: (
                (_relay(cluster, admin, t) or {})
                .get("metadata", {})
                .get("annotations", {})
                .get(ANNOTATION_URL)
            ),
            60,
            "the relay running",
        )
        incident = burst_incident(f"shared{index}", 1, "critical")
        response = httpx.post(
            f"{url}/v1/bigpanda/webhook",
            json=incident,
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert response.status_code == 202, response.text
        paged = wait_for(lambda i=incident: pd.incident_by_key(i["id"]), 30, "PagerDuty paged")
        assert paged.routing_key == ACCOUNT_KEY

    # The account counts its users and is Ready.
    body = wait_for(
        lambda: (
            b
            if (b := get_json(cluster, "default", "clusterpagerdutyaccount", account))
            and (b.get("status") or {}).get("integrations") == 2
            else None
        ),
        30,
        "the account's status",
    )
    assert condition(body)["status"] == "True"

    # No Secret of a tenant namespace holds a credential of the account...
    for tenant in (first, second, outside):
        for secret in get_json(cluster, tenant, "secrets")["items"]:
            assert not set(_decoded(secret)) & set(CREDENTIALS), secret["metadata"]["name"]
    # ...and a user with the built-in (aggregated) edit role in a tenant namespace may read
    # that namespace's Secrets but not the admin namespace's, where the credentials are.
    user = f"alice-{first}"
    cluster.kubectl(
        "create", "rolebinding", "tenant-edit", "-n", first, "--clusterrole=edit",
        f"--user={user}",
    )  # fmt: skip

    def can_i(*args: str) -> bool:
        result = cluster.kubectl("auth", "can-i", *args, f"--as={user}", check=False)
        return result.stdout.strip() == "yes"

    wait_for(lambda: can_i("get", "secrets", "-n", first), 30, "edit to grant Secrets")
    assert not can_i("get", "secrets", "-n", admin)
    assert not can_i("list", "secrets", "-n", admin)
    assert not can_i("get", "secrets/pd-account", "-n", admin)
    assert not can_i("create", "pods", "-n", admin)  # no pod to mount them either
    assert not can_i("get", "clusterpagerdutyaccounts")

    # Relabelled out of the selector: refused, and its relay in the admin namespace stops.
    cluster.kubectl("label", "namespace", second, "pb-e2e-accounts=gone", "--overwrite")
    wait_for(
        lambda: (
            condition(get_json(cluster, second, "pdi", "shared")).get("reason")
            == "AccountNotAllowed"
        ),
        30,
        "the relabelled namespace refused",
    )
    wait_for(lambda: _relay(cluster, admin, second) is None, 30, "its relay stopped")
    assert _relay(cluster, admin, first) is not None  # the other tenant's keeps running

    # Deleting an integration deletes its children in the admin namespace (finalizer).
    cluster.kubectl("delete", "pdi", "shared", "-n", first, "--timeout=60s", timeout=70)
    wait_for(lambda: _relay(cluster, admin, first) is None, 30, "its relay deleted")
    leftover = get_json(
        cluster, admin, "configmaps,services,secrets", "-l", f"{n.LABEL_TENANT_NAMESPACE}={first}"
    )
    assert leftover["items"] == []
    assert not [line for line in operator.log().splitlines() if ACCOUNT_KEY in line]
