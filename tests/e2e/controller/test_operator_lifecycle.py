"""Operator lifecycle on the real API server: missing Secret, self-healing, restart,
PagerDuty subscription through the finalizer, garbage collection of children."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import yaml

from pagerbridge_devkit.localcluster.kubelet import HarnessKubelet
from pagerbridge_devkit.sandbox.pagerduty import (
    DEFAULT_API_TOKEN,
    DEFAULT_SERVICE_ID,
    PagerDutySimulator,
)

from ..conftest import Cluster
from .conftest import OperatorProcess, condition, get_json, integration, pd_secret, wait_for

pytestmark = pytest.mark.e2e


def subscribed_integration(name: str, pd_url: str, bigpanda_secret: str) -> dict[str, Any]:
    """An integration with a PagerDuty webhook subscription and BigPanda write-backs."""
    manifest: dict[str, Any] = yaml.safe_load(
        integration(
            name,
            pd_url,
            apiToken={"name": "pd-keys", "key": "api-token"},
            serviceId=DEFAULT_SERVICE_ID,
            apiUrl=pd_url,
        )
    )
    manifest["spec"]["bigPanda"] = {
        "apiToken": {"name": bigpanda_secret, "key": "api-token"},
        "environmentId": "env1",
    }
    manifest["spec"]["relay"] = {"publicUrl": "https://relay.example.com"}
    return manifest


def ready(cluster: Cluster, namespace: str, name: str) -> dict[str, object]:
    return condition(get_json(cluster, namespace, "pdi", name))


def test_missing_secret_then_created_and_children_heal(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    kubelet: HarnessKubelet,
    pagerduty: tuple[PagerDutySimulator, str],
) -> None:
    _, pd_url = pagerduty
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=integration("heal", pd_url))
    missing = wait_for(
        lambda: (c := ready(cluster, namespace, "heal")).get("reason") == "SecretNotFound" and c,
        60,
        "SecretNotFound",
    )
    assert missing["status"] == "False"
    assert f"Secret {namespace}/pd-keys" in str(missing["message"])
    events = cluster.kubectl("get", "events", "-n", namespace, "-o", "yaml").stdout
    assert "SecretNotFound" in events

    # An override pointing at no integration says so on its own status.
    ghost = {
        "apiVersion": "pagerbridge.io/v1alpha1",
        "kind": "PagerDutyKeyOverride",
        "metadata": {"name": "ghost-override"},
        "spec": {"integrationRef": {"name": "ghost"}, "tag": "pd_key"},
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(ghost))
    orphan = wait_for(
        lambda: (
            condition(get_json(cluster, namespace, "pdko", "ghost-override")).get("reason")
            == "IntegrationNotFound"
        ),
        30,
        "IntegrationNotFound on the override",
    )
    assert orphan

    # An override of the failing integration says so, naming it and its failing condition.
    waiting_override = {
        "apiVersion": "pagerbridge.io/v1alpha1",
        "kind": "PagerDutyKeyOverride",
        "metadata": {"name": "heal-override"},
        "spec": {"integrationRef": {"name": "heal"}, "tag": "pd_key"},
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(waiting_override))
    not_ready = wait_for(
        lambda: (
            (c := condition(get_json(cluster, namespace, "pdko", "heal-override"))).get("reason")
            == "IntegrationNotReady"
            and c
        ),
        30,
        "IntegrationNotReady on the override",
    )
    assert not_ready["status"] == "False"
    assert str(not_ready["message"]).startswith(
        f"PagerDutyIntegration {namespace}/heal is not Ready: SecretsResolved=False "
        "(SecretNotFound: "
    )

    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=pd_secret())
    cluster.kubectl(
        "wait", "-n", namespace, "--for=condition=Ready", "pdi/heal", "--timeout=60s", timeout=70
    )
    wait_for(
        lambda: (
            condition(get_json(cluster, namespace, "pdko", "heal-override")).get("reason")
            == "Applied"
        ),
        30,
        "the override Applied once the integration is Ready",
    )
    # Manual mode without relay.publicUrl: Ready (the relay works), with a warning condition.
    body = get_json(cluster, namespace, "pdi", "heal")
    internal = condition(body, "RelayPubliclyReachable")
    assert (internal["status"], internal["reason"]) == ("False", "ClusterInternalUrl")
    url = body["status"]["bigPandaWebhook"]["url"]
    assert f"BigPanda cannot reach {url}" in internal["message"]
    assert internal["message"] in condition(body)["message"]
    token_before = get_json(cluster, namespace, "secret", "heal-relay-token")["data"]["token"]

    # A deleted child comes back; a hand-edited one is put back.
    cluster.kubectl("delete", "-n", namespace, "configmap", "heal-relay")
    wait_for(lambda: get_json(cluster, namespace, "configmap", "heal-relay"), 30, "ConfigMap back")
    cluster.kubectl(
        "set", "image", "-n", namespace, "deployment/heal-relay", "relay=example.com/hand-edited:1"
    )
    wait_for(
        lambda: (
            get_json(cluster, namespace, "deployment", "heal-relay")["spec"]["template"]["spec"][
                "containers"
            ][0]["image"]
            != "example.com/hand-edited:1"
        ),
        30,
        "Deployment image restored",
    )

    # Operator restart: a child deleted while it is down is back after it starts.
    operator.stop()
    cluster.kubectl("delete", "-n", namespace, "service", "heal-relay")
    operator.start()
    wait_for(lambda: get_json(cluster, namespace, "service", "heal-relay"), 60, "Service back")
    token_after = get_json(cluster, namespace, "secret", "heal-relay-token")["data"]["token"]
    assert token_after == token_before, "the inbound token must never be regenerated"
    # (the restored image rolls the relay out again: Ready once that rollout is done)
    cluster.kubectl(
        "wait", "-n", namespace, "--for=condition=Ready", "pdi/heal", "--timeout=60s", timeout=70
    )

    # A token Secret deleted by hand comes back with a new token, and says so.
    cluster.kubectl("delete", "-n", namespace, "secret", "heal-relay-token")
    regenerated = wait_for(
        lambda: (get_json(cluster, namespace, "secret", "heal-relay-token") or {}).get("data"),
        30,
        "token Secret back",
    )
    assert regenerated["token"] != token_before
    wait_for(
        lambda: "TokenRegenerated" in cluster.kubectl("get", "events", "-n", namespace).stdout,
        30,
        "TokenRegenerated event",
    )


def test_subscription_finalizer_and_garbage_collection(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    kubelet: HarnessKubelet,
    pagerduty: tuple[PagerDutySimulator, str],
) -> None:
    pd, pd_url = pagerduty
    rest = httpx.Client(
        base_url=pd_url,
        headers={
            "Authorization": f"Token token={DEFAULT_API_TOKEN}",
            "Accept": "application/vnd.pagerduty+json;version=2",
        },
    )

    def subscriptions() -> list[dict[str, object]]:
        items: list[dict[str, object]] = rest.get("/webhook_subscriptions").json()[
            "webhook_subscriptions"
        ]
        return items

    bigpanda_secret = yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "bp"},
            "stringData": {"api-token": "bp-token"},
        }
    )
    manifest = subscribed_integration("sub", pd_url, bigpanda_secret="bp")
    manifest["spec"]["relay"] = {"publicUrl": "https://relay.example.com"}
    docs = yaml.safe_dump_all(
        [yaml.safe_load(pd_secret()), yaml.safe_load(bigpanda_secret), manifest]
    )
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=docs)
    cluster.kubectl(
        "wait", "-n", namespace, "--for=condition=Ready", "pdi/sub", "--timeout=60s", timeout=70
    )
    subs = subscriptions()
    assert len(subs) == 1
    assert subs[0]["delivery_method"]["url"] == "https://relay.example.com/v1/pagerduty/webhook"  # type: ignore[index]
    stored = get_json(cluster, namespace, "secret", "sub-pd-webhook")
    assert stored["metadata"]["annotations"]["pagerbridge.io/subscription-id"] == subs[0]["id"]
    status = get_json(cluster, namespace, "pdi", "sub")["status"]
    assert status["pagerDutySubscription"]["id"] == subs[0]["id"]

    # Deleted in PagerDuty: the periodic check recreates it.
    rest.delete(f"/webhook_subscriptions/{subs[0]['id']}")
    recreated = wait_for(lambda: subscriptions(), 30, "subscription recreated")
    assert recreated[0]["id"] != subs[0]["id"]

    # PagerDuty down at deletion: the finalizer holds and says how to let go.
    pd.faults.fail_next(None, 503, path_prefix="/webhook_subscriptions")  # type: ignore[arg-type]
    cluster.kubectl("delete", "-n", namespace, "pdi", "sub", "--wait=false")
    wait_for(
        lambda: "skip-cleanup" in cluster.kubectl("get", "events", "-n", namespace).stdout,
        60,
        "a CleanupRetrying event naming the escape hatch",
    )
    assert get_json(cluster, namespace, "pdi", "sub") is not None
    pd.faults.clear()
    wait_for(lambda: get_json(cluster, namespace, "pdi", "sub") is None, 90, "integration deleted")
    assert subscriptions() == []

    # The controller-manager's garbage collector removes the owned children.
    for kind, name in (
        ("deployment", "sub-relay"),
        ("configmap", "sub-relay"),
        ("service", "sub-relay"),
        ("secret", "sub-relay-token"),
        ("secret", "sub-pd-webhook"),
    ):
        wait_for(
            lambda kind=kind, name=name: get_json(cluster, namespace, kind, name) is None,
            60,
            f"{kind}/{name} collected",
        )


def test_skip_cleanup_annotation_releases_a_stuck_integration(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    pagerduty: tuple[PagerDutySimulator, str],
) -> None:
    """The annotation itself releases the finalizer (not its next retry, 30 s+ away)."""
    pd, pd_url = pagerduty
    manifest = subscribed_integration("stuck", pd_url, bigpanda_secret="pd-keys")
    cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=yaml.safe_dump_all([yaml.safe_load(pd_secret()), manifest]),
    )
    wait_for(
        lambda: get_json(cluster, namespace, "secret", "stuck-pd-webhook"),
        60,
        "subscription secret",
    )
    pd.faults.fail_next(None, 503, path_prefix="/webhook_subscriptions")  # type: ignore[arg-type]
    cluster.kubectl("delete", "-n", namespace, "pdi", "stuck", "--wait=false")
    wait_for(lambda: "CleanupRetrying" in reasons(cluster, namespace, "stuck"), 60, "retrying")
    cluster.kubectl("annotate", "-n", namespace, "pdi", "stuck", "pagerbridge.io/skip-cleanup=true")
    wait_for(
        lambda: get_json(cluster, namespace, "pdi", "stuck") is None,
        10,
        "released within seconds of the annotation",
    )
    # Released by the annotation, not by a retry: one attempt, then the skip.
    assert reasons(cluster, namespace, "stuck") == ["CleanupRetrying", "CleanupSkipped"]
    pd.faults.clear()
    left = httpx.get(
        f"{pd_url}/webhook_subscriptions",
        headers={
            "Authorization": f"Token token={DEFAULT_API_TOKEN}",
            "Accept": "application/vnd.pagerduty+json;version=2",
        },
    ).json()["webhook_subscriptions"]
    assert len(left) == 1  # left in place, as the annotation asks


def reasons(cluster: Cluster, namespace: str, name: str) -> list[str]:
    """Reasons of the cleanup Events of one integration, oldest first."""
    events = get_json(cluster, namespace, "events") or {"items": []}
    mine = [
        e
        for e in events["items"]
        if e["involvedObject"].get("name") == name and e["reason"].startswith("Cleanup")
    ]
    mine.sort(key=lambda e: int(e["metadata"]["resourceVersion"]))  # etcd's write order
    return [str(e["reason"]) for e in mine]


VERIFY_SECONDS = 3.0  # PAGERBRIDGE_SUBSCRIPTION_VERIFY_SECONDS of the operator fixture


def test_a_subscription_set_inactive_is_active_again_within_one_resync(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    kubelet: HarnessKubelet,
    pagerduty: tuple[PagerDutySimulator, str],
) -> None:
    """Issue 27: PagerDuty (after failed deliveries) or a person disables the subscription;
    the next verification re-enables it and condition SubscriptionActive says so."""
    _, pd_url = pagerduty
    rest = httpx.Client(
        base_url=pd_url,
        headers={
            "Authorization": f"Token token={DEFAULT_API_TOKEN}",
            "Accept": "application/vnd.pagerduty+json;version=2",
        },
    )
    bigpanda_secret = yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "bp"},
            "stringData": {"api-token": "bp-token"},
        }
    )
    manifest = subscribed_integration("act", pd_url, bigpanda_secret="bp")
    docs = yaml.safe_dump_all(
        [yaml.safe_load(pd_secret()), yaml.safe_load(bigpanda_secret), manifest]
    )
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=docs)
    cluster.kubectl(
        "wait", "-n", namespace, "--for=condition=Ready", "pdi/act", "--timeout=60s", timeout=70
    )
    (sub,) = rest.get("/webhook_subscriptions").json()["webhook_subscriptions"]
    answer = rest.put(
        f"/webhook_subscriptions/{sub['id']}",
        json={"webhook_subscription": {"active": False}},
    )
    assert answer.status_code == 200
    assert answer.json()["webhook_subscription"]["active"] is False

    def reenabled() -> dict[str, Any] | None:
        found = condition(get_json(cluster, namespace, "pdi", "act"), "SubscriptionActive")
        return found if found.get("reason") == "Reenabled" else None

    # One verification period, plus a reconcile on a loaded machine.
    shown = wait_for(reenabled, VERIFY_SECONDS * 2 + 30, "SubscriptionActive Reenabled")
    assert shown["status"] == "True"
    assert "was inactive" in shown["message"]
    current = rest.get(f"/webhook_subscriptions/{sub['id']}").json()["webhook_subscription"]
    assert current["active"] is True
    assert [
        s["id"] for s in rest.get("/webhook_subscriptions").json()["webhook_subscriptions"]
    ] == [sub["id"]]
    events = cluster.kubectl("get", "events", "-n", namespace).stdout
    assert "SubscriptionRepaired" in events
