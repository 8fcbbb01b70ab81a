"""Everything a running relay shares between its request handlers and delivery workers."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import httpx

from pagerbridge.relay.config.log_secrets import LogSecrets
from pagerbridge.relay.config.watch import SettingsHolder
from pagerbridge.relay.health import UpstreamHealth
from pagerbridge.relay.metrics import RelayMetrics
from pagerbridge.relay.outbound.ratelimit import RateLimiter
from pagerbridge.relay.outbox.port import OutboxPort


@dataclass
class RelayContext:
    holder: SettingsHolder
    outbox: OutboxPort
    metrics: RelayMetrics
    limiter: RateLimiter
    health: UpstreamHealth
    http: httpx.AsyncClient
    # A trigger older than this (or retried) is checked against BigPanda before sending.
    late_trigger_after: float = 5.0
    # ...and confirmed with BigPanda when it waited longer than this, or when the relay may
    # have missed BigPanda's webhooks since accepting it (see to_pagerduty._vouched).
    confirm_after: float = 120.0
    # The log redactor's secrets, override keys included (None: nothing to tell it).
    log_secrets: LogSecrets | None = None

    def saw_override_key(self, key: str | None) -> None:
        if self.log_secrets is not None:
            self.log_secrets.add_override(key)


def key_id(secret: str) -> str:
    """A short non-reversible name for a secret (bucket names, never logged values)."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]
