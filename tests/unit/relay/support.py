"""Builders the relay's tests share: BigPanda incident bodies and samples, a relay wired to
the PagerDuty simulator (:func:`relay_for`) or to both simulators (:class:`Wired`), and a
signed PagerDuty webhook. Test modules import these from here, never from each other."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from pagerbridge.api.relay_config import RelayConfig
from pagerbridge.relay.inbound.signatures import sign
from pagerbridge_devkit.sandbox.bigpanda import DEFAULT_API_TOKEN as BP_TOKEN
from pagerbridge_devkit.sandbox.bigpanda import DEFAULT_ENVIRONMENT_ID, BigPandaSimulator
from pagerbridge_devkit.sandbox.pagerduty import (
    DEFAULT_API_TOKEN,
    DEFAULT_ROUTING_KEY,
    PagerDutySimulator,
)
from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_API_TOKEN as PD_TOKEN
from pagerbridge_devkit.waiting import wait_for

from .conftest import start_relay
from .relayproc import WEBHOOK_TOKEN, RelayProcess, write_config

SAMPLES = Path("/work/shared/specs/bigpanda/samples")


if not SAMPLES.exists():  # the specs also live next to the repository in CI checkouts
    SAMPLES = Path(__file__).resolve().parents[3] / "specs" / "bigpanda" / "samples"


CONFIG = RelayConfig.model_validate(
    {
        "pagerDuty": {"routingKeyFile": "/x"},
        "bigPanda": {"webhookTokenFile": "/y", "environmentId": "env1"},
    }
)


def sample(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text())


OVERRIDE_KEY = "0123456789abcdef0123456789abcdef"


def incident(n: int = 1, status: str = "critical", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": f"inc{n:021d}",
        "status": status,
        "active": status != "ok",
        "updatedOn": 1764140000 + n,
        "alerts": [
            {
                "status": status,
                "description": "CPU load above 95%",
                "primary_property": "host",
                "secondary_property": "check",
                "host": f"db-{n}",
                "check": "cpu",
                "team": "dba",
            }
        ],
    }
    body.update(extra)
    return body


def relay_for(tmp_path: Path, relays: list[RelayProcess], pd_url: str, **kw: Any) -> RelayProcess:
    args = kw.pop("args", None)
    config = write_config(
        tmp_path,
        pd_url=pd_url,
        routing_key=DEFAULT_ROUTING_KEY,
        pd_api_token=DEFAULT_API_TOKEN,
        **kw,
    )
    return start_relay(relays, config, args)


def enqueues(sim: Any, at_least: int = 1) -> list[dict[str, Any]]:
    """Events PagerDuty accepted (waits until ``at_least`` are recorded)."""

    def accepted() -> list[dict[str, Any]]:
        return [r.json() for r in sim.requests.matching("POST", "/v2/enqueue") if r.status == 202]

    wait_for(lambda: len(accepted()) >= at_least, what=f"{at_least} accepted events")
    return accepted()


ALERT = {
    "status": "critical",
    "description": "Disk full",
    "primary_property": "host",
    "secondary_property": "check",
    "host": "web-1",
    "check": "disk",
}


class Wired:
    """Both simulators and one relay, connected both ways."""

    def __init__(
        self,
        tmp: Path,
        relays: list[RelayProcess],
        pd: tuple[PagerDutySimulator, str],
        bp: tuple[BigPandaSimulator, str],
        *,
        extra: dict[str, Any] | None = None,
        secrets: list[str] | None = None,
        bp_token: str = BP_TOKEN,
        args: list[str] | None = None,
        pd_service_id: str | None = None,
        subscription_service: str | None = None,
        admin_token: str | None = None,
    ) -> None:
        self.pd, self.pd_url = pd
        self.bp, self.bp_url = bp
        self.bp.set_rate_limit(None)
        config = tmp / "relay-config.json"
        self.relay = RelayProcess(config, tmp / "relay.log", args)
        relays.append(self.relay)
        self.hook = self.relay.url + "/v1/pagerduty/webhook"
        _, self.secret = self.pd.create_subscription(self.hook, service_id=subscription_service)
        write_config(
            tmp,
            pd_url=self.pd_url,
            bp_url=self.bp_url,
            routing_key=DEFAULT_ROUTING_KEY,
            pd_api_token=PD_TOKEN,
            bp_api_token=bp_token,
            bp_environment=DEFAULT_ENVIRONMENT_ID,
            webhook_secrets=[*(secrets or []), self.secret],
            extra=extra,
            pd_service_id=pd_service_id,
            admin_token=admin_token,
        )
        self.relay.start()
        self.bp.add_webhook_target(
            self.relay.url + "/v1/bigpanda/webhook",
            headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
        )

    def open(self) -> tuple[str, str]:
        """A BigPanda incident, shared to PagerDuty; returns (BigPanda id, PagerDuty id)."""
        incident = self.bp.open_incident(alerts=[dict(ALERT)])
        pd_incident = wait_for(lambda: self.pd.incident_by_key(incident.id), what="PD incident")
        self.settle()
        return incident.id, pd_incident.id

    def settle(self) -> None:
        """Wait until both simulators and the relay have nothing in flight."""
        for _ in range(3):
            assert self.bp.wait_webhooks_idle(10)
            assert self.pd.wait_webhooks_idle(10)
            wait_for(
                lambda: self.relay.metric("pagerbridge_relay_outbox_pending") == 0,
                timeout=15,
                what="relay outbox drained",
            )

    def pd_writes(self) -> list[tuple[str, str]]:
        """Every write the relay made to PagerDuty: (kind, detail)."""
        out = []
        for r in self.pd.requests.entries:
            if r.method == "POST" and r.path == "/v2/enqueue":
                out.append(("event", r.json()["event_action"]))
            elif r.method == "POST" and r.path.endswith("/notes"):
                out.append(("note", r.json()["note"]["content"]))
            elif r.method == "PUT":
                out.append(("update", r.path))
        return out

    def bp_writes(self) -> list[tuple[str, int | None]]:
        """Every write the relay made to BigPanda's API: (endpoint, status)."""
        return [
            (r.path.rsplit("/", 1)[-1], r.status)
            for r in self.bp.requests.entries
            if r.method == "POST" and r.path.startswith("/resources/")
        ]


def signed_post(
    w: Wired,
    body: bytes,
    secret: str | None,
    webhook_id: str | None = None,
    signature: str | None = None,
) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-PagerDuty-Signature"] = signature
    elif secret is not None:
        headers["X-PagerDuty-Signature"] = sign(secret, body)
    if webhook_id:
        headers["X-Webhook-Id"] = webhook_id
    return httpx.post(w.hook, content=body, headers=headers, timeout=10)
