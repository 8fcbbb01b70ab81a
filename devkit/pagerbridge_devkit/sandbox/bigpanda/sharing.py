"""AutoShare: turning one incident change into the webhook requests BigPanda sends.

Two kinds of destination:
- a classic Notifications Webhook target (URL + custom headers): every change, the
  whole incident, bare or wrapped as ``{"incident": {...}}``;
- a Webhook v2 integration: only triggers whose event (or ``default``) is enabled,
  sent to ``base_url`` + rendered ``path`` with the event's method, ``Authorization``,
  rendered custom headers and rendered body (native incident when there is none).

Requests are built when the change happens, so each one carries a snapshot.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from pagerbridge_devkit.sandbox.bigpanda.sender import Delivery
from pagerbridge_devkit.sandbox.bigpanda.store import Change, new_id
from pagerbridge_devkit.sandbox.bigpanda.templates import (
    render_headers,
    render_string,
    render_value,
)
from pagerbridge_devkit.sandbox.bigpanda.variables import resolve_variables
from pagerbridge_devkit.sandbox.bigpanda.workflow import Integration

USER_AGENT = "BigPanda-Sandbox-Webhook/1.0"


@dataclass(frozen=True)
class WebhookTarget:
    id: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    wrap: bool = False

    def to_dict(self) -> dict[str, Any]:
        # Header names only: values are often credentials.
        return {
            "id": self.id,
            "url": self.url,
            "header_names": sorted(self.headers),
            "wrap": self.wrap,
        }


class WebhookTargets:
    """Thread-safe classic webhook targets."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._targets: dict[str, WebhookTarget] = {}

    def add(self, url: str, headers: dict[str, str] | None = None, wrap: bool = False) -> str:
        target = WebhookTarget(f"target-{new_id()[:8]}", url, dict(headers or {}), wrap)
        with self._lock:
            self._targets[target.id] = target
        return target.id

    def remove(self, target_id: str) -> bool:
        with self._lock:
            return self._targets.pop(target_id, None) is not None

    def all(self) -> list[WebhookTarget]:
        with self._lock:
            return list(self._targets.values())


def _merge(headers: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    """HTTP header names are case-insensitive: a configured one replaces ours."""
    lowered = {name.lower() for name in extra}
    merged = {k: v for k, v in headers.items() if k.lower() not in lowered}
    merged.update(extra)
    return merged


def _json(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def classic_delivery(target: WebhookTarget, change: Change) -> Delivery:
    payload = change.incident.to_payload()
    body = {"incident": payload} if target.wrap else payload
    headers = _merge({"content-type": "application/json", "user-agent": USER_AGENT}, target.headers)
    return Delivery(
        target=target.id,
        incident_id=change.incident.id,
        trigger=change.trigger,
        method="POST",
        url=target.url,
        headers=headers,
        body=_json(body),
    )


def integration_delivery(integration: Integration, change: Change) -> Delivery | None:
    """The request for this integration, or None when the trigger is not shared."""
    config = integration.workflow_config
    event = config.event_for(change.trigger)
    if event is None:
        return None
    variables = resolve_variables(change.incident, change.metadata)
    path = render_string(event.path or "", variables, escape=lambda v: quote(v, safe=""))
    headers = {"content-type": "application/json", "user-agent": USER_AGENT}
    if event.headers:
        headers = _merge(headers, render_headers(event.headers, variables))
    if event.authorization:
        authorization = {"authorization": render_string(event.authorization, variables)}
        headers = _merge(headers, authorization)
    body = render_value(event.body, variables) if event.body else change.incident.to_payload()
    return Delivery(
        target=integration.id,
        incident_id=change.incident.id,
        trigger=change.trigger,
        method=event.http_method,
        url=config.url(path),
        headers=headers,
        body=_json(body),
    )
