"""The story: apply an integration, then one incident's life across both systems.

Each method is one step: it acts as BigPanda, PagerDuty or their users would (through the
simulators' Python handles: the correlation engine, a person commenting or resolving),
then waits for the effect on the *other* side, the only place it can be observed. After
every synced step the demo waits for quiet and checks the counts of notes, comments,
incidents and resolves on both sides: one action, exactly one effect, and no echo.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any

from pagerbridge.api.contract import PAGERDUTY_WEBHOOK_PATH
from pagerbridge_devkit.demo import relay_metrics
from pagerbridge_devkit.demo.environment import OVERRIDE_ROUTING_KEY, Environment
from pagerbridge_devkit.demo.kube import Kubectl
from pagerbridge_devkit.demo.manifests import DemoManifests, Sandbox, demo_manifests
from pagerbridge_devkit.demo.output import mask
from pagerbridge_devkit.demo.relay_metrics import RelayCounters
from pagerbridge_devkit.demo.steps import StepFailed, wait_for
from pagerbridge_devkit.sandbox.bigpanda import BigPandaSimulator
from pagerbridge_devkit.sandbox.pagerduty import PagerDutySimulator, SimIncident

ALERT = {
    "status": "critical",
    "host": "db-1",
    "service": "payments",
    "team": "core",
    "description": "disk full on db-1",
}
BP_USER = "alice@example.com"
PD_USER = "oncall@example.com"
BP_COMMENT = "Looking at it: the WAL archive filled the disk."
PD_NOTE = "Freed 40 GB; archiving moved to object storage."


@dataclass(frozen=True)
class Counts:
    """What both sides hold for the demo's incident."""

    pd_incidents: int  # PagerDuty incidents with the BigPanda id as incident key
    pd_notes: int
    pd_resolve_events: int  # resolve events the relay sent to PagerDuty
    bp_comments: int  # every comment on the BigPanda incident
    bp_api_comments: int  # ... of which written by the relay (Incidents API)
    bp_api_resolves: int

    def show(self) -> str:
        return (
            f"counts: PagerDuty incidents {self.pd_incidents}, notes {self.pd_notes}; "
            f"BigPanda comments {self.bp_comments} ({self.bp_api_comments} by PagerBridge), "
            f"resolves by PagerBridge {self.bp_api_resolves}"
        )


class Story:
    def __init__(self, env: Environment) -> None:
        self.env = env
        self.timeout = env.step_timeout
        self.manifests: DemoManifests | None = None
        self.bp_id = ""
        self.pd_id = ""

    # -- handles (present once the environment steps ran) ---------------------------------

    @property
    def kubectl(self) -> Kubectl:
        assert self.env.kubectl is not None
        return self.env.kubectl

    @property
    def pagerduty(self) -> PagerDutySimulator:
        assert self.env.pagerduty is not None
        return self.env.pagerduty

    @property
    def bigpanda(self) -> BigPandaSimulator:
        assert self.env.bigpanda is not None
        return self.env.bigpanda

    @property
    def sandbox(self) -> Sandbox:
        assert self.env.sandbox is not None
        return self.env.sandbox

    # -- the integration ------------------------------------------------------------------

    def apply_integration(self) -> str:
        manifests = demo_manifests(self.sandbox)
        self.manifests = manifests
        ns = self.env.namespace
        self.kubectl("apply", "--server-side", "-n", ns, "-f", "-", input=manifests.yaml())
        for kind, name in (
            ("pdi", manifests.integration),
            ("pdko", manifests.key_override),
            ("pdtm", manifests.tag_mapping),
        ):
            self._wait_ready(kind, name)
        wait_for(self.env.relay_pod, "the relay process (harness kubelet)", self.timeout)
        table = "\n".join(
            line for line in self.kubectl("get", "-n", ns, "pdi,pdko,pdtm").splitlines() if line
        )
        return (
            "applied examples/03-bidirectional.yaml + the key override and tag mapping of "
            "examples/02-override-and-mappings.yaml (server-side apply)\n"
            f"{table}"
        )

    def _wait_ready(self, kind: str, name: str) -> None:
        seen: dict[str, Any] = {}

        def ready() -> bool:
            seen.clear()
            seen.update(self.kubectl.condition(kind, name))
            return seen.get("status") == "True"

        try:
            wait_for(ready, f"{kind}/{name} Ready", self.timeout)
        except StepFailed as exc:
            last = f"{seen.get('reason')}: {seen.get('message')}" if seen else "no condition"
            raise StepFailed(f"{exc} (last Ready condition: {last})") from None

    def wire_bigpanda_webhook(self) -> str:
        """What a person does in BigPanda's UI, from ``status.bigPandaWebhook``."""
        assert self.manifests is not None
        pdi = self.kubectl.get("pdi", self.manifests.integration) or {}
        status = pdi.get("status") or {}
        webhook = status.get("bigPandaWebhook")
        if not webhook:
            raise StepFailed("the integration's status has no bigPandaWebhook")
        headers: dict[str, str] = {}
        shown: list[str] = []
        for header in webhook.get("headers", []):
            ref = header.get("valueFrom")
            if ref is None:
                headers[header["name"]] = header["value"]
                shown.append(f"  {header['name']}: {header['value']}")
                continue
            secret = self.kubectl.get("secret", ref["name"]) or {}
            encoded = (secret.get("data") or {}).get(ref["key"])
            if encoded is None:
                raise StepFailed(f"Secret {ref['name']} has no key {ref['key']!r}")
            token = base64.b64decode(encoded).decode()
            template = header.get("value") or "<token>"
            headers[header["name"]] = template.replace("<token>", token)
            masked = template.replace("<token>", mask(token))
            shown.append(f"  {header['name']}: {masked}  (from Secret {ref['name']})")
        self.bigpanda.add_webhook_target(webhook["url"], headers)
        subscription = (status.get("pagerDutySubscription") or {}).get("id")
        return "\n".join(
            [
                f"BigPanda webhook (from status.bigPandaWebhook) -> {webhook['url']}",
                *shown,
                f"PagerDuty webhook subscription {subscription} -> "
                f"{self.sandbox.public_url}{PAGERDUTY_WEBHOOK_PATH} (signed; secret in a Secret)",
            ]
        )

    # -- the incident's life ----------------------------------------------------------------

    def open_bigpanda_incident(self) -> str:
        assert self.manifests is not None
        tag = self.manifests.override_tag
        incident = self.bigpanda.open_incident([{**ALERT, tag: OVERRIDE_ROUTING_KEY}])
        self.bp_id = incident.id
        tags = " ".join(f"{k}={v}" for k, v in ALERT.items() if k not in ("status", "description"))
        return (
            f"incident {incident.id}: {ALERT['status']}, {ALERT['description']!r}\n"
            f"alert tags: {tags} {tag}={mask(OVERRIDE_ROUTING_KEY)}"
        )

    def pagerduty_triggered(self) -> str:
        assert self.manifests is not None
        incident = wait_for(
            lambda: self.pagerduty.incident_by_key(self.bp_id),
            "a PagerDuty incident with the BigPanda id as incident key",
            self.timeout,
        )
        self.pd_id = incident.id
        if incident.routing_key != OVERRIDE_ROUTING_KEY:
            raise StepFailed(
                f"routed with key {mask(incident.routing_key)}, not the override "
                f"{mask(OVERRIDE_ROUTING_KEY)} from tag {self.manifests.override_tag}"
            )
        payload: dict[str, Any] = incident.events[-1]["payload"]
        mapped = []
        for pair in self.manifests.mappings:
            value = _field(payload, pair["field"])
            mapped.append(f"{pair['tag']} -> {pair['field']} = {value}")
            if value != ALERT.get(pair["tag"]):
                raise StepFailed(f"tag {pair['tag']} not mapped onto {pair['field']}: {value!r}")
        counts = self._counts(incident)
        if counts.pd_incidents != 1:
            raise StepFailed(f"{counts.pd_incidents} PagerDuty incidents for one BigPanda incident")
        return "\n".join(
            [
                f"incident #{incident.number} {incident.id} ({incident.status}), "
                f"incident key {self.bp_id}",
                f"routing key override: tag {self.manifests.override_tag} -> key "
                f"{mask(incident.routing_key)} (default key {mask(self.sandbox.routing_key)} "
                "not used)",
                "mapped fields: " + "; ".join(mapped),
                f"summary {payload.get('summary')!r}, severity {payload.get('severity')}",
            ]
        )

    def comment_in_bigpanda(self) -> str:
        self.bigpanda.add_comment(self.bp_id, BP_COMMENT, by=BP_USER)
        return f"{BP_USER} comments on {self.bp_id}: {BP_COMMENT!r}"

    def note_arrives_in_pagerduty(self) -> str:
        note = wait_for(
            lambda: next((n for n in self._pd().notes if BP_COMMENT in n.content), None),
            "the BigPanda comment as a PagerDuty note",
            self.timeout,
        )
        counters = self._settle()
        counts = self._expect(pd_notes=1, bp_api_comments=0)
        return (
            f"note {note.id} by {note.user_email}: {_first_line(note.content)!r}\n"
            f"{counts.show()}\n"
            f"no echo: the relay did not copy its own note back to BigPanda"
            f"{_echoes(counters, 'note')}"
        )

    def note_in_pagerduty(self) -> str:
        self.pagerduty.add_note(self.pd_id, PD_NOTE, by_email=PD_USER)
        return f"{PD_USER} adds a note to {self.pd_id}: {PD_NOTE!r}"

    def comment_arrives_in_bigpanda(self) -> str:
        write = wait_for(
            lambda: next(
                (w for w in self.bigpanda.api_comments(self.bp_id) if PD_NOTE in w.text), None
            ),
            "the PagerDuty note as a BigPanda comment",
            self.timeout,
        )
        counters = self._settle()
        counts = self._expect(pd_notes=2, bp_api_comments=1, bp_comments=2)
        return (
            f"comment by {write.user} through the Incidents API: {_first_line(write.text)!r}\n"
            f"{counts.show()}\n"
            f"no echo: the relay did not send its own comment back to PagerDuty"
            f"{_echoes(counters, 'comment')}"
        )

    def resolve_in_pagerduty(self) -> str:
        self.pagerduty.resolve(self.pd_id, by_email=PD_USER)
        return f"{PD_USER} resolves {self.pd_id}"

    def resolved_in_bigpanda(self) -> str:
        wait_for(
            lambda: not self.bigpanda.incident(self.bp_id).active,
            "the BigPanda incident to be resolved",
            self.timeout,
        )
        counters = self._settle()
        counts = self._expect(pd_incidents=1, bp_api_resolves=1, pd_resolve_events=0)
        incident = self.bigpanda.incident(self.bp_id)
        pd_status = self._pd().status
        return (
            f"incident {self.bp_id}: status {incident.status}, active {incident.active}; "
            f"PagerDuty incident {self.pd_id}: {pd_status}\n"
            f"{counts.show()}\n"
            "no echo: exactly one resolve, and no resolve event back to PagerDuty"
            f"{_echoes(counters, 'resolve')}"
        )

    # -- checks -------------------------------------------------------------------------------

    def _pd(self) -> SimIncident:
        incident = self.pagerduty.incident(self.pd_id)
        if incident is None:
            raise StepFailed(f"PagerDuty incident {self.pd_id} disappeared")
        return incident

    def _counts(self, incident: SimIncident | None = None) -> Counts:
        pd_incident = incident or self._pd()
        pd_incidents = sum(1 for i in self.pagerduty.incidents() if i.incident_key == self.bp_id)
        return Counts(
            pd_incidents=pd_incidents,
            pd_notes=len(pd_incident.notes),
            pd_resolve_events=sum(
                1 for e in pd_incident.events if e.get("event_action") == "resolve"
            ),
            bp_comments=len(self.bigpanda.incident(self.bp_id).comments),
            bp_api_comments=len(self.bigpanda.api_comments(self.bp_id)),
            bp_api_resolves=len(self.bigpanda.api_resolves(self.bp_id)),
        )

    def _expect(self, **expected: int) -> Counts:
        counts = self._counts()
        wrong = [
            f"{name} {getattr(counts, name)} (expected {value})"
            for name, value in expected.items()
            if getattr(counts, name) != value
        ]
        if wrong:
            raise StepFailed("unexpected counts: " + ", ".join(wrong))
        return counts

    def _settle(self) -> RelayCounters | None:
        """Wait until nothing moves: simulators' webhooks delivered, relay outbox empty."""
        deadline = time.monotonic() + self.timeout
        previous: RelayCounters | None = None
        while time.monotonic() < deadline:
            idle = self.pagerduty.wait_webhooks_idle(5.0) and self.bigpanda.wait_webhooks_idle(5.0)
            url = self.env.relay_internal_url()
            counters = relay_metrics.read(url) if url else None
            if idle and counters is not None and counters.pending == 0 and counters == previous:
                return counters
            previous = counters
            time.sleep(0.3)
        raise StepFailed(f"the relay and the simulators were still busy after {self.timeout:g} s")


def _field(payload: dict[str, Any], field: str) -> Any:
    """A PagerDuty event payload field by mapping name (``custom_details.<name>``)."""
    if field.startswith("custom_details."):
        return (payload.get("custom_details") or {}).get(field.split(".", 1)[1])
    return payload.get(field)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _echoes(counters: RelayCounters | None, kind: str) -> str:
    if counters is None or not counters.echoes(kind):
        return ""
    return f" (relay: {counters.echoes(kind)} {kind} echo(es) recognized and dropped)"
