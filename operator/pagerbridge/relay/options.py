"""The relay's tunables and their defaults, written once.

``pagerbridge relay``'s flags take their defaults from :data:`DEFAULTS`;
:func:`pagerbridge.relay.app.create_app` runs on a :class:`RelayOptions` (tests and
benchmarks build one directly); the retry policy, the dispatcher, the context and the
config watcher default to the same values. A default changed here is changed everywhere.

Dependency-free on purpose: the command line reads it while building its parser, for every
command, before anything heavy is imported. The upstream rate limits as their services
document them and the slow-client deadlines are plain numbers here too:
:mod:`pagerbridge.relay.outbound.ratelimit` and :mod:`pagerbridge.relay.server` build on
them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pagerbridge.relay.outbound.ratelimit import Limit


# Upstream rate limits as documented: PagerDuty Events API v2, per routing key; PagerDuty
# REST API v2, per API key; BigPanda, per endpoint.
EVENTS_PER_WINDOW = 120
EVENTS_WINDOW = 60.0  # seconds
EVENTS_BURST = 1  # paced from the first event
REST_PER_MINUTE = 960
BIGPANDA_PER_SECOND = 5
# Slow clients on the public port: all request headers, then the whole body, by then.
HEADER_TIMEOUT = 10.0
BODY_TIMEOUT = 30.0


@dataclass(frozen=True)
class RelayOptions:
    # Upstream rate limits by family ("events", "rest", "bigpanda"); absent: documented.
    rate_limits: Mapping[str, Limit] = field(default_factory=dict)
    # A trigger older than this (or retried) is checked against BigPanda before sending...
    late_trigger_after: float = 5.0
    # ...and confirmed with BigPanda when it waited longer than this, or when the relay may
    # have missed BigPanda's webhooks since accepting it (see to_pagerduty._vouched).
    confirm_after: float = 120.0
    concurrency: int = 64  # deliveries in flight at once (one per incident)
    reload_interval: float = 1.0  # seconds between looks at the config and secret files
    outbox_sync: str = "FULL"  # SQLite synchronous mode: FULL or NORMAL
    retention: float = 30 * 24 * 3600  # idempotency/echo memory kept this long (seconds)
    # Retry bounds (see relay.outbound.retry.RetryPolicy).
    unauthorized_retry: float = 60.0  # pace of retries while credentials are refused
    max_error_attempts: int = 5  # unexpected errors before a job is poison
    max_age: float = 24 * 3600.0  # a job still failing this long after acceptance is given up
    # Every upstream call (see clients._http.call): an overall deadline (connect, send,
    # headers and body together) and the largest answer read (identity encoding only).
    upstream_deadline: float = 15.0
    max_response_bytes: int = 1 << 20
    # The share of the ``concurrency`` delivery slots one upstream (PagerDuty Events,
    # PagerDuty REST, BigPanda) and one routing key may hold at once (relay.outbound.slots).
    upstream_slot_share: float = 0.5
    # The repair sweep (relay.inbound.sweep): every open incident checked at least once per
    # this many seconds (0: off), within this share of each upstream's rate limit.
    sweep_interval: float = 300.0
    sweep_share: float = 0.2
    key_slot_share: float = 0.25


DEFAULTS = RelayOptions()
