"""``pagerbridge test-incident``: one labelled synthetic incident through a live integration.

It plays BigPanda: the incident goes to the relay's BigPanda webhook path with the URL and
headers the integration's ``status.bigPandaWebhook`` tells BigPanda to use (the bearer token
read from its Secret), then each hop is checked and reported:

1. **accepted**: the relay answered 202 (durably queued);
2. **PagerDuty incident**: it exists, found by ``incident_key`` through the PagerDuty REST
   API with the integration's API token (skipped, not failed, without one);
3. **note**: with notes on, a BigPanda comment shared again becomes a PagerDuty note;
4. **resolve**: the incident shared as resolved is resolved in PagerDuty.

The incident is resolved at the end whatever happened before (a failed hop still leaves
nothing open). It is unmistakable in both tools: the id starts ``pagerbridge-test-``, the
alert's description starts ``[pagerbridge test]``, and the alert and incident carry the tag
``pagerbridge_test=true``.

Where it is sent: ``--url`` (the public port's base URL) when given; else the webhook URL of
the status when the integration has a ``publicUrl`` (the path BigPanda itself takes, Ingress
included); else a Ready relay pod's public port through the API server's pod proxy.
"""

from __future__ import annotations

import asyncio
import json
import secrets as pysecrets
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from pagerbridge.api import GROUP, INTEGRATION, VERSION, PagerDutyIntegrationSpec
from pagerbridge.api.contract import (
    BIGPANDA_WEBHOOK_PATH,
    RELAY_PUBLIC_PORT_NAME,
    pagerduty_api_url,
)
from pagerbridge.clients.errors import ClientError
from pagerbridge.clients.kubernetes import Credentials, KubernetesClient, KubernetesError, Resource
from pagerbridge.clients.pagerduty_incidents import PagerDutyIncidentsClient
from pagerbridge.ops.relay_access import (
    RelayAccessError,
    RelayPort,
    relay_port,
    secret_value,
)

TITLE_PREFIX = "[pagerbridge test]"
TAG = "pagerbridge_test"
ID_PREFIX = "pagerbridge-test-"
T = TypeVar("T")


class HopFailed(Exception):
    pass


@dataclass
class Report:
    out: Callable[[str], None]
    failed: int = 0

    def ok(self, hop: str, detail: str) -> None:
        self.out(f"  ok    {hop}: {detail}")

    def skip(self, hop: str, detail: str) -> None:
        self.out(f"  skip  {hop}: {detail}")

    def fail(self, hop: str, detail: str) -> None:
        self.failed += 1
        self.out(f"  FAIL  {hop}: {detail}")


def synthetic_incident(incident_id: str, step: int, *, resolved: bool = False) -> dict[str, Any]:
    """The BigPanda incident as its webhook shares it; ``step`` orders the shares."""
    status = "ok" if resolved else "critical"
    return {
        "id": incident_id,
        "status": status,
        "active": not resolved,
        "updatedOn": int(time.time()) + step,
        "alerts": [
            {
                "status": status,
                "description": f"{TITLE_PREFIX} synthetic incident sent by `pagerbridge "
                "test-incident` to check the integration; it resolves itself, ignore it",
                "primary_property": "host",
                "host": "pagerbridge-test",
                "source_system": "pagerbridge",
                TAG: "true",
            }
        ],
        "incident_tags": [{"tag_id": TAG, "tag_value": "true"}],
    }


async def _poll(
    probe: Callable[[], Awaitable[T | None]], patience: float, interval: float = 1.0
) -> T | None:
    """The first non-None result of ``probe`` within ``patience`` seconds (a CLI waiting on a
    remote system, not a test)."""
    deadline = time.monotonic() + patience
    while True:
        found = await probe()
        if found is not None or time.monotonic() >= deadline:
            return found
        await asyncio.sleep(interval)


@dataclass
class Webhook:
    """How this command reaches the relay's BigPanda webhook, and with which headers."""

    headers: dict[str, str]
    target: RelayPort | None = None  # pod proxy or --url
    url: str | None = None  # the status URL, direct

    def where(self) -> str:
        return self.url if self.url is not None else (self.target.where() if self.target else "")

    async def share(self, incident: dict[str, Any]) -> tuple[int, Any]:
        content = json.dumps(incident).encode()
        headers = {**self.headers, "Content-Type": "application/json"}
        if self.url is not None:
            try:
                async with httpx.AsyncClient(timeout=30) as http:
                    response = await http.post(self.url, content=content, headers=headers)
            except httpx.HTTPError as exc:
                raise RelayAccessError(f"cannot reach {self.url}: {exc}") from None
            try:
                return response.status_code, response.json()
            except ValueError:
                return response.status_code, response.text
        assert self.target is not None
        reply = await self.target.call("POST", BIGPANDA_WEBHOOK_PATH, headers, content)
        return reply.status, reply.body


async def _webhook(
    kube: KubernetesClient,
    namespace: str,
    name: str,
    spec: PagerDutyIntegrationSpec,
    status: dict[str, Any],
    url: str | None,
) -> Webhook:
    config = status.get("bigPandaWebhook")
    if not config:
        raise RelayAccessError(
            f"{namespace}/{name} has no BigPanda webhook configuration yet (see its conditions)"
        )
    headers: dict[str, str] = {}
    for header in config.get("headers", []):
        ref = header.get("valueFrom")
        if ref is not None:
            token = await secret_value(kube, namespace, ref["name"], ref["key"])
            headers[header["name"]] = str(header["value"]).replace("<token>", token)
        else:
            headers[header["name"]] = str(header.get("value", ""))
    if url:
        base = url.rstrip("/")
        return Webhook(headers, url=base + BIGPANDA_WEBHOOK_PATH)
    if spec.relay.public_url:
        return Webhook(headers, url=str(config["url"]))
    target = await relay_port(kube, namespace, name, RELAY_PUBLIC_PORT_NAME, None)
    return Webhook(headers, target=target)


async def run_test_incident(
    credentials: Credentials,
    name: str,
    namespace: str | None,
    *,
    url: str | None,
    patience: float,
    out: Callable[[str], None] = print,
) -> int:
    namespace = namespace or credentials.default_namespace
    report = Report(out)
    async with KubernetesClient(credentials) as kube:
        try:
            body = await kube.get(
                Resource.custom(GROUP, VERSION, INTEGRATION.plural), namespace, name
            )
        except KubernetesError as exc:
            print(f"pagerbridge test-incident: {namespace}/{name}: {exc}", file=sys.stderr)
            return 1
        spec = PagerDutyIntegrationSpec.model_validate(body.get("spec") or {})
        try:
            webhook = await _webhook(kube, namespace, name, spec, body.get("status") or {}, url)
            api_token = (
                await secret_value(
                    kube, namespace, spec.pager_duty.api_token.name, spec.pager_duty.api_token.key
                )
                if spec.pager_duty.api_token
                else None
            )
        except RelayAccessError as exc:
            print(f"pagerbridge test-incident: {exc}", file=sys.stderr)
            return 1
    incident_id = ID_PREFIX + pysecrets.token_hex(8)
    out(f"test incident {incident_id} through {namespace}/{name} ({webhook.where()})")
    async with httpx.AsyncClient(timeout=30) as http:
        pd = (
            PagerDutyIncidentsClient(http, pagerduty_api_url(spec.pager_duty), api_token)
            if api_token
            else None
        )
        try:
            await _hops(webhook, pd, spec, incident_id, patience, report)
        finally:
            await _resolve(webhook, pd, incident_id, patience, report)
    if report.failed:
        out(f"{report.failed} hop(s) failed")
        return 1
    out("all hops passed")
    return 0


async def _share(webhook: Webhook, incident: dict[str, Any]) -> dict[str, Any]:
    try:
        status, answer = await webhook.share(incident)
    except RelayAccessError as exc:
        raise HopFailed(str(exc)) from None
    if status != 202:
        message = answer.get("message", answer) if isinstance(answer, dict) else answer
        raise HopFailed(f"the relay answered {status}: {str(message)[:300]}")
    return answer if isinstance(answer, dict) else {}


async def _pd_incident(
    pd: PagerDutyIncidentsClient, incident_id: str, want: Callable[[dict[str, Any]], bool]
) -> dict[str, Any] | None:
    try:
        found = await pd.find_by_incident_key(incident_id)
    except ClientError:
        return None  # transient from here: polled again
    return found if found is not None and want(found) else None


async def _hops(
    webhook: Webhook,
    pd: PagerDutyIncidentsClient | None,
    spec: PagerDutyIntegrationSpec,
    incident_id: str,
    patience: float,
    report: Report,
) -> None:
    try:
        await _share(webhook, synthetic_incident(incident_id, 0))
    except HopFailed as exc:
        report.fail("accepted", str(exc))
        return
    report.ok("accepted", "the relay queued the trigger (202)")
    if pd is None:
        report.skip("PagerDuty incident", "the integration has no PagerDuty API token to look")
        report.skip("note", "needs the PagerDuty API token")
        return
    found = await _poll(lambda: _pd_incident(pd, incident_id, lambda _: True), patience)
    if found is None:
        report.fail(
            "PagerDuty incident",
            f"no incident with incident_key {incident_id} after {patience:.0f}s (check the "
            "routing key and `pagerbridge outbox NAME pending|dead-letters`)",
        )
        return
    pd_id = str(found.get("id"))
    report.ok("PagerDuty incident", f"{pd_id} ({found.get('status')})")
    if not spec.notes_enabled:
        report.skip("note", "notes are off for this integration")
        return
    comment = f"{TITLE_PREFIX} note check {pysecrets.token_hex(4)}"
    incident = synthetic_incident(incident_id, 1)
    incident["comments"] = [
        {"id": f"{incident_id}-c1", "comment": comment, "created_by": "pagerbridge"}
    ]
    try:
        await _share(webhook, incident)
    except HopFailed as exc:
        report.fail("note", str(exc))
        return

    async def noted() -> bool | None:
        try:
            notes = await pd.list_notes(pd_id)
        except ClientError:
            return None
        return True if any(comment in str(note.get("content")) for note in notes) else None

    if await _poll(noted, patience):
        report.ok("note", "the BigPanda comment is a PagerDuty note")
    else:
        report.fail("note", f"no PagerDuty note on {pd_id} after {patience:.0f}s")


async def _resolve(
    webhook: Webhook,
    pd: PagerDutyIncidentsClient | None,
    incident_id: str,
    patience: float,
    report: Report,
) -> None:
    try:
        await _share(webhook, synthetic_incident(incident_id, 2, resolved=True))
    except HopFailed as exc:
        report.fail("resolve", str(exc))
        return
    if pd is None:
        report.ok("resolve", "the relay queued the resolve (202; not checked in PagerDuty)")
        return
    resolved = await _poll(
        lambda: _pd_incident(pd, incident_id, lambda i: i.get("status") == "resolved"), patience
    )
    if resolved is None:
        report.fail("resolve", f"the PagerDuty incident is not resolved after {patience:.0f}s")
    else:
        report.ok("resolve", f"{resolved.get('id')} resolved in PagerDuty")
