"""Everything a running relay shares between its request handlers and delivery workers.

The upstream clients are built here, from one settings snapshot each time (a reload swaps
URLs and credentials in whole; a delivery never mixes the old key with the new URL), so
no handler spells out which setting feeds which client."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from pagerbridge.clients._http import CallLimits
from pagerbridge.clients.bigpanda_incidents import BigPandaIncidentsClient
from pagerbridge.clients.pagerduty_events import PagerDutyEventsClient
from pagerbridge.clients.pagerduty_incidents import PagerDutyIncidentsClient
from pagerbridge.relay.config.log_secrets import LogSecrets
from pagerbridge.relay.config.settings import Settings
from pagerbridge.relay.config.watch import SettingsHolder
from pagerbridge.relay.health import UpstreamHealth
from pagerbridge.relay.metrics import RelayMetrics
from pagerbridge.relay.options import DEFAULTS
from pagerbridge.relay.outbound.ratelimit import RateLimiter
from pagerbridge.relay.outbox.port import OutboxJobs, OutboxMemory


@dataclass
class RelayContext:
    holder: SettingsHolder
    # Two views of the one outbox: inbound endpoints store jobs, delivery handlers read and
    # write memory (idempotency/echo keys, incident records), never a job row.
    jobs: OutboxJobs
    memory: OutboxMemory
    metrics: RelayMetrics
    limiter: RateLimiter
    health: UpstreamHealth
    http: httpx.AsyncClient
    # What one upstream call may cost: overall deadline and decoded answer size (every
    # delivery client gets these; see clients._http.call).
    call_limits: CallLimits = field(default_factory=CallLimits)
    # When a late trigger is checked against BigPanda (see RelayOptions).
    late_trigger_after: float = DEFAULTS.late_trigger_after
    confirm_after: float = DEFAULTS.confirm_after
    # The log redactor's secrets, override keys included (None: nothing to tell it).
    log_secrets: LogSecrets | None = None

    def pagerduty_events(self, settings: Settings | None = None) -> PagerDutyEventsClient:
        """PagerDuty's Events API v2 (the routing key goes into each event)."""
        settings = settings or self.holder.current
        return PagerDutyEventsClient(
            self.http, settings.config.pager_duty.events_url, self.call_limits
        )

    def pagerduty_rest(self, settings: Settings | None = None) -> PagerDutyIncidentsClient | None:
        """PagerDuty's REST API, or None without an API token."""
        settings = settings or self.holder.current
        token = settings.secrets.pagerduty_api_token
        if token is None:
            return None
        pd = settings.config.pager_duty
        return PagerDutyIncidentsClient(
            self.http, pd.api_url, token, pd.from_email, self.call_limits
        )

    def bigpanda(self, settings: Settings | None = None) -> BigPandaIncidentsClient | None:
        """BigPanda's Incidents API, or None without its API token and environment."""
        settings = settings or self.holder.current
        token = settings.secrets.bigpanda_api_token
        bp = settings.config.big_panda
        if token is None or bp.environment_id is None:
            return None
        return BigPandaIncidentsClient(
            self.http, bp.api_url, token, bp.environment_id, self.call_limits
        )

    def saw_override_key(self, key: str | None) -> None:
        if self.log_secrets is not None:
            self.log_secrets.add_override(key)
