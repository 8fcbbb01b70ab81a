"""Issue 18 against the real API server and the real operator process: a tenant's CR
cannot make the operator contact a host the admin did not allow, and a hostile upstream
the admin did allow cannot exhaust the operator's workers or block other tenants."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pagerbridge.api.integration import BASE_URL_MESSAGE
from pagerbridge.clients.egress import DEFAULT_ALLOWED_HOSTS
from pagerbridge_devkit.localcluster.kubelet import HarnessKubelet
from pagerbridge_devkit.ports import free_port
from pagerbridge_devkit.sandbox.hostile import PAGE_ITEMS, HostileUpstream, Mode
from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_SERVICE_ID, PagerDutySimulator
from pagerbridge_devkit.sandbox.server import BackgroundServer

from ..conftest import Cluster
from .conftest import OperatorProcess, condition, get_json, integration, pd_secret, wait_for

pytestmark = pytest.mark.e2e


def subscribed(name: str, events_url: str, api_url: str) -> str:
    """An integration whose webhook subscription makes the operator call ``api_url``."""
    manifest = yaml.safe_load(
        integration(
            name,
            events_url,
            apiToken={"name": "pd-keys", "key": "api-token"},
            serviceId=DEFAULT_SERVICE_ID,
            apiUrl=api_url,
        )
    )
    manifest["spec"]["bigPanda"] = {
        "apiToken": {"name": "pd-keys", "key": "api-token"},
        "environmentId": "env1",
    }
    manifest["spec"]["relay"] = {"publicUrl": "https://relay.example.com"}
    return str(yaml.safe_dump(manifest))


def apply(cluster: Cluster, namespace: str, manifest: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=manifest)


def ready(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return condition(get_json(cluster, namespace, "pdi", name))


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@pytest.fixture
def recorder() -> Iterator[tuple[HostileUpstream, str]]:
    """A server a tenant would like the operator to call (e.g. a metadata endpoint)."""
    app = HostileUpstream(Mode.MALFORMED)
    with BackgroundServer(app) as server:
        yield app, server.url


def test_query_fragment_and_userinfo_refused_by_the_api_server(
    cluster: Cluster, namespace: str
) -> None:
    for url in (
        "http://127.0.0.1:18999/latest/meta-data/iam/security-credentials/node-role?x=",
        "https://api.pagerduty.com#x",
        "https://user:pw@api.pagerduty.com",
    ):
        manifest = integration("ssrf", "https://events.pagerduty.com", apiUrl=url)
        result = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=manifest, check=False)
        assert result.returncode != 0, url
        assert BASE_URL_MESSAGE in result.stderr, result.stderr
    assert get_json(cluster, namespace, "pdi", "ssrf") is None


def test_disallowed_host_is_never_contacted(
    cluster: Cluster,
    namespace: str,
    tmp_path: Path,
    pagerduty: tuple[PagerDutySimulator, str],
    recorder: tuple[HostileUpstream, str],
) -> None:
    _, pd_url = pagerduty
    app, hostile_url = recorder
    operator = OperatorProcess(
        cluster, namespace, tmp_path / "operator.log", free_port(), free_port()
    )
    # The admin allows the PagerDuty simulator's port only (plus the public defaults).
    operator.extra_env = {
        "PAGERBRIDGE_EGRESS_ALLOWED_HOSTS": ",".join(
            (*DEFAULT_ALLOWED_HOSTS, f"127.0.0.1:{port_of(pd_url)}")
        ),
    }
    operator.start()
    try:
        apply(cluster, namespace, pd_secret())
        closed_url = f"http://127.0.0.1:{free_port()}"
        apply(cluster, namespace, subscribed("to-open", pd_url, hostile_url))
        apply(cluster, namespace, subscribed("to-closed", pd_url, closed_url))
        refused = {}
        for name in ("to-open", "to-closed"):
            refused[name] = wait_for(
                lambda n=name: (
                    (c := ready(cluster, namespace, n)).get("reason")  # type: ignore[misc]
                    == "URLNotAllowed"
                    and c
                ),
                60,
                f"URLNotAllowed on {name}",
            )
            assert refused[name]["status"] == "False"
        # Nothing tells an open port from a closed one.
        open_msg = refused["to-open"]["message"].replace(str(port_of(hostile_url)), "P")
        closed_msg = refused["to-closed"]["message"].replace(str(port_of(closed_url)), "P")
        assert open_msg == closed_msg
        assert "spec.pagerDuty.apiUrl" in open_msg
        # Not contacted, no subscription made, and no RelayConfig compiled with the URL.
        assert app.seen == []
        for name in ("to-open", "to-closed"):
            assert get_json(cluster, namespace, "configmap", f"{name}-relay") is None
        events = cluster.kubectl("get", "events", "-n", namespace, "-o", "yaml").stdout
        assert "ConnectError" not in events
        assert "HTTP 4" not in events
    finally:
        operator.stop()
    assert "pd-api-token" not in operator.log()


def test_hostile_upstream_cannot_starve_other_tenants(
    cluster: Cluster,
    namespace: str,
    tmp_path: Path,
    pagerduty: tuple[PagerDutySimulator, str],
) -> None:
    """Namespace ``namespace`` points four integrations at an allowlisted server that
    dribbles one byte at a time (call deadline set high, so only fairness can help), a
    third namespace at an endless listing and a malformed answer. With 4 workers and 2
    per namespace, the good tenant's integration still becomes Ready, and the endless
    and malformed answers end as conditions."""
    _, pd_url = pagerduty
    good, other = (f"pb-e2e-{uuid.uuid4().hex[:8]}" for _ in range(2))
    dribble, endless, malformed = (
        HostileUpstream(m) for m in (Mode.DRIBBLE, Mode.ENDLESS, Mode.MALFORMED)
    )
    with (
        BackgroundServer(dribble) as dribble_server,
        BackgroundServer(endless) as endless_server,
        BackgroundServer(malformed) as malformed_server,
    ):
        for ns in (good, other):
            cluster.kubectl("create", "namespace", ns)
        operator = OperatorProcess(
            cluster, namespace, tmp_path / "operator.log", free_port(), free_port()
        )
        operator.extra_namespaces = [good, other]
        operator.extra_env = {
            "PAGERBRIDGE_WORKERS": "4",
            "PAGERBRIDGE_NAMESPACE_CONCURRENCY": "2",
            "PAGERBRIDGE_CALL_DEADLINE_SECONDS": "600",
            "PAGERBRIDGE_RECONCILE_DEADLINE_SECONDS": "600",
            "PAGERBRIDGE_CALL_MAX_PAGES": "5",
        }
        kubelet = HarnessKubelet(cluster.kubeconfig, tmp_path / "kubelet", good)
        kubelet.start()
        operator.start()
        try:
            for ns in (namespace, good, other):
                apply(cluster, ns, pd_secret())
            for i in range(4):
                apply(cluster, namespace, subscribed(f"slow-{i}", pd_url, dribble_server.url))
            wait_for(lambda: len(dribble.seen) >= 2, 60, "two dribbling calls in flight")
            apply(cluster, other, subscribed("endless", pd_url, endless_server.url))
            apply(cluster, other, subscribed("malformed", pd_url, malformed_server.url))
            apply(cluster, good, subscribed("good", pd_url, pd_url))
            cluster.kubectl(
                "wait", "-n", good, "--for=condition=Ready", "pdi/good", "--timeout=120s",
                timeout=130,
            )  # fmt: skip
            for name in ("endless", "malformed"):
                wait_for(
                    lambda n=name: (
                        ready(cluster, other, n).get("reason")  # type: ignore[misc]
                        == "UpstreamMalformed"
                    ),
                    60,
                    f"UpstreamMalformed on {name}",
                )
            sub = condition(get_json(cluster, other, "pdi", "endless"), "SubscriptionReady")
            assert "still more after 5 pages" in sub["message"]
            # The hostile namespace never held more than its share of workers.
            assert len(dribble.seen) == 2
            # The endless listing was read page by page, never past the cap per attempt.
            offsets = [int(dict(q.split("=") for q in seen.query.split("&"))["offset"])
                       for seen in endless.seen]  # fmt: skip
            assert offsets
            assert max(offsets) < 5 * PAGE_ITEMS
            assert "Traceback" not in operator.log()
        finally:
            operator.stop()
            kubelet.stop()
            for ns in (good, other):
                cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_relay_image_and_service_type_follow_the_admin_policy(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    pagerduty: tuple[PagerDutySimulator, str],
) -> None:
    """Default policy: only the operator's own relay image, only ClusterIP."""
    _, pd_url = pagerduty
    apply(cluster, namespace, pd_secret())
    for name, relay, reason in (
        ("foreign-image", {"image": "docker.io/attacker/relay:1"}, "ImageNotAllowed"),
        ("exposed", {"service": {"type": "LoadBalancer"}}, "ServiceTypeNotAllowed"),
    ):
        manifest = yaml.safe_load(integration(name, pd_url))
        manifest["spec"]["relay"] = relay
        apply(cluster, namespace, yaml.safe_dump(manifest))
        found = wait_for(
            lambda n=name, r=reason: (
                (c := ready(cluster, namespace, n)).get("reason") == r  # type: ignore[misc]
                and c
            ),
            60,
            f"{reason} on {name}",
        )
        assert found["status"] == "False"
        assert get_json(cluster, namespace, "deployment", f"{name}-relay") is None
        assert get_json(cluster, namespace, "service", f"{name}-relay") is None
