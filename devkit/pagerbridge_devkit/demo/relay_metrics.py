"""The relay's ``/metrics``, read to know when it has finished its work.

"No echo" is a claim about something that did *not* happen, so the demo first waits for
quiet: both simulators have delivered every webhook, the relay's outbox is empty, and its
counters stopped moving. Then the counts it checks are final, without a fixed sleep.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from pagerbridge.api.contract import RELAY_METRICS_PATH

WEBHOOKS = "pagerbridge_relay_webhooks"
DELIVERIES = "pagerbridge_relay_deliveries"
PENDING = "pagerbridge_relay_outbox_pending"
ECHO = "pagerbridge_relay_echo_suppressed"
DEAD_LETTERS = "pagerbridge_relay_dead_letters"


@dataclass(frozen=True)
class RelayCounters:
    webhooks: float
    deliveries: float
    pending: float
    dead_letters: float
    echo_suppressed: tuple[tuple[str, float], ...]  # (kind, count), sorted

    def echoes(self, kind: str) -> int:
        return int(dict(self.echo_suppressed).get(kind, 0))


def read(internal_url: str) -> RelayCounters | None:
    """The relay's counters (from its internal port), or None when it cannot be reached."""
    try:
        response = httpx.get(internal_url.rstrip("/") + RELAY_METRICS_PATH, timeout=2.0)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    totals: dict[str, float] = {}
    echoes: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            totals[family.name] = totals.get(family.name, 0.0) + sample.value
            if family.name == ECHO:
                kind = sample.labels.get("kind", "")
                echoes[kind] = echoes.get(kind, 0.0) + sample.value
    return RelayCounters(
        webhooks=totals.get(WEBHOOKS, 0.0),
        deliveries=totals.get(DELIVERIES, 0.0),
        pending=totals.get(PENDING, 0.0),
        dead_letters=totals.get(DEAD_LETTERS, 0.0),
        echo_suppressed=tuple(sorted(echoes.items())),
    )
