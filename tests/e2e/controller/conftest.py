"""Operator e2e fixtures: the simulators, the harness kubelet and the operator process.

The operator runs as the real CLI (``python -m pagerbridge operator -n NS``) in its own
process, watching only the test's namespace, so tests stay independent and a restart is a
real restart. Its log is kept for the "no secret in logs" checks.
"""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from pagerbridge.api.contract import PAGERDUTY_WEBHOOK_PATH
from pagerbridge.relay.inbound.signatures import sign
from pagerbridge_devkit.ports import free_port
from pagerbridge_devkit.sandbox.bigpanda import BigPandaSimulator
from pagerbridge_devkit.sandbox.pagerduty import (
    DEFAULT_API_TOKEN,
    DEFAULT_ROUTING_KEY,
    PagerDutySimulator,
)
from pagerbridge_devkit.sandbox.server import BackgroundServer, loopback_egress_env

from ..conftest import Cluster
from ..kube import (  # noqa: F401 - this folder's tests import them from here too
    condition,
    get_json,
    merge_patch,
    start_operator,
    stop_operator,
    wait_for,
)


def inbound_token(cluster: Cluster, namespace: str, name: str) -> str:
    """The relay's inbound webhook token, found the way a user finds it: through the
    Secret reference in ``status.bigPandaWebhook``."""
    pdi = get_json(cluster, namespace, "pdi", name)
    headers = {h["name"]: h for h in pdi["status"]["bigPandaWebhook"]["headers"]}
    ref = headers["Authorization"]["valueFrom"]
    secret = get_json(cluster, namespace, "secret", ref["name"])
    return base64.b64decode(secret["data"][ref["key"]]).decode()


def burst_incident(prefix: str, n: int, status: str) -> dict[str, Any]:
    """Incident ``n`` of a burst as BigPanda shares it (``ok``: its resolve, one tick later)."""
    return {
        "id": f"{prefix}{n:0{25 - len(prefix)}d}",
        "status": status,
        "active": status != "ok",
        "updatedOn": 1764140000 + n * 10 + (1 if status == "ok" else 0),
        "alerts": [
            {
                "status": status,
                "description": "disk full",
                "primary_property": "host",
                "host": f"db-{n}",
            }
        ],
    }


def integration(
    name: str, pd_url: str, relay: dict[str, Any] | None = None, **pager_duty: object
) -> str:
    """The e2e tests' PagerDutyIntegration: routing key from :func:`pd_secret`, events to
    ``pd_url``, notes off; ``relay`` and ``pagerDuty`` fields as given."""
    spec: dict[str, object] = {
        "pagerDuty": {
            "routingKey": {"name": "pd-keys", "key": "routing-key"},
            "eventsUrl": pd_url,
            **pager_duty,
        },
        "sync": {"notes": False},
    }
    if relay is not None:
        spec["relay"] = relay
    return yaml.safe_dump(
        {
            "apiVersion": "pagerbridge.io/v1alpha1",
            "kind": "PagerDutyIntegration",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


def pd_secret() -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "pd-keys"},
            "stringData": {"routing-key": DEFAULT_ROUTING_KEY, "api-token": DEFAULT_API_TOKEN},
        }
    )


@dataclass
class OperatorProcess:
    cluster: Cluster
    namespace: str
    log_path: Path
    liveness_port: int
    metrics_port: int
    process: subprocess.Popen[bytes] | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)
    extra_namespaces: list[str] = field(default_factory=list)

    def start(self) -> None:
        env = {
            **self.cluster.env,
            "PAGERBRIDGE_RESYNC_SECONDS": "3",
            "PAGERBRIDGE_SUBSCRIPTION_VERIFY_SECONDS": "3",
            "PAGERBRIDGE_WATCH_SERVER_TIMEOUT": "30",
            "PAGERBRIDGE_TOKEN_ROTATION_GRACE_SECONDS": "2",
            "PAGERBRIDGE_WATCH_CLIENT_TIMEOUT": "45",
            **loopback_egress_env(),
            **self.extra_env,
        }
        self.process = start_operator(
            [
                "operator",
                "-n",
                self.namespace,
                *(arg for ns in self.extra_namespaces for arg in ("-n", ns)),
                "--liveness",
                f"http://127.0.0.1:{self.liveness_port}/healthz",
                "--metrics-port",
                str(self.metrics_port),
                # One Lease per test: operators of different tests never wait for each other.
                "--leader-election-namespace",
                self.namespace,
                *self.extra_args,
            ],
            env,
            self.log_path,
        )

    def stop(self) -> None:
        if self.process is not None:
            stop_operator(self.process)
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def pagerduty() -> Iterator[tuple[PagerDutySimulator, str]]:
    sim = PagerDutySimulator()
    with BackgroundServer(sim.app) as server:
        yield sim, server.url
    sim.close()


@pytest.fixture
def bigpanda() -> Iterator[tuple[BigPandaSimulator, str]]:
    sim = BigPandaSimulator()
    with BackgroundServer(sim.app) as server:
        yield sim, server.url
    sim.close()


@pytest.fixture
def operator(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(cluster, namespace, tmp_path / "operator.log", free_port(), free_port())
    proc.start()
    yield proc
    proc.stop()


def signed_probe(
    cluster: Cluster, namespace: str, secret_name: str, relay_url: str, event_type: str
) -> httpx.Response | None:
    """A PagerDuty webhook about no incident of ours, signed with the subscription's secret
    as the operator stored it (None: not stored yet). The relay answers it 200 once its
    mounted file holds that secret: a new subscription's secret reaches the file some time
    after PagerDuty already signs with it, and a delivery before then is refused (401),
    which PagerDuty drops for good."""
    secret = get_json(cluster, namespace, "secret", secret_name)
    if secret is None:
        return None
    signing = base64.b64decode(secret["data"]["secret"]).decode()
    body = json.dumps(
        {
            "event": {
                "id": uuid.uuid4().hex,
                "event_type": event_type,
                "occurred_at": "2099-01-01T00:00:00Z",
                "data": {"id": "PPROBE1", "type": "incident", "incident_key": "probe"},
            }
        }
    ).encode()
    return httpx.post(
        relay_url + PAGERDUTY_WEBHOOK_PATH,
        content=body,
        headers={"Content-Type": "application/json", "X-PagerDuty-Signature": sign(signing, body)},
    )
