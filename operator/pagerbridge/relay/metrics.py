"""Prometheus metrics of one relay, in their own registry (no global state across apps)."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pagerbridge.relay.outbox.jobs import JOB_KINDS
from pagerbridge.relay.outcomes import DeadLetterReason, LinkDropReason, LinkKind

# Bounded label values of ``pagerbridge_relay_dead_letters_total`` (job kinds from
# relay.outbox.jobs, reasons from relay.outcomes): each series exists from the start at 0,
# so ``increase()`` sees a relay's first dead letter too.
EDGE_REFUSAL_REASONS = (  # of pagerbridge_relay_edge_refused_total, likewise
    "header_too_large",
    "body_too_large",
    "connections",
    "source_connections",
    "unverified_budget",
    "source_budget",
    "verified_budget",
)


def _registry() -> CollectorRegistry:
    return CollectorRegistry(auto_describe=True)


@dataclass
class RelayMetrics:
    registry: CollectorRegistry = field(default_factory=_registry)

    def __post_init__(self) -> None:
        r = self.registry
        self.webhooks = Counter(
            "pagerbridge_relay_webhooks",
            "Inbound webhooks by endpoint and outcome.",
            ["endpoint", "outcome"],
            registry=r,
        )
        self.accept_latency = Histogram(
            "pagerbridge_relay_accept_seconds",
            "Time from request start to the durable 202.",
            ["endpoint"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )
        # Where an accept's time goes (issue 30): read + parse the body, translate and route,
        # wait for the outbox's (grouped) commit, answer. Cheap enough to keep on (four
        # observations per webhook, ~10 us; tests/bench/relay_throughput.py prints it).
        self.accept_stage = Histogram(
            "pagerbridge_relay_accept_stage_seconds",
            "Time of each stage of an accepted BigPanda webhook: parse (body read and JSON "
            "parsed), translate (routing and jobs), commit (waiting for the outbox's grouped "
            "commit), respond (dispatch and answer).",
            ["stage"],
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0),
            registry=r,
        )
        self.outbox_commit = Histogram(
            "pagerbridge_relay_outbox_commit_seconds",
            "Time the SQLite outbox's writer took for one grouped transaction (its operations "
            "and the commit, fsync included).",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0),
            registry=r,
        )
        self.outbox_operations = Counter(
            "pagerbridge_relay_outbox_operations",
            "Operations (reads and writes) the SQLite outbox's writer ran, each in its own "
            "savepoint of a grouped transaction, by the outbox method that ran it (a debug "
            "metric: store round trips per delivered event, issue 30).",
            ["operation"],
            registry=r,
        )
        self.jobs_enqueued = Counter(
            "pagerbridge_relay_jobs_enqueued", "Jobs stored in the outbox.", ["kind"], registry=r
        )
        self.duplicates = Counter(
            "pagerbridge_relay_duplicates",
            "Work skipped because it was already done or queued (idempotency).",
            ["kind"],
            registry=r,
        )
        self.deliveries = Counter(
            "pagerbridge_relay_deliveries",
            "Delivery attempts by job kind and outcome.",
            ["kind", "outcome"],
            registry=r,
        )
        self.delivery_seconds = Histogram(
            "pagerbridge_relay_end_to_end_seconds",
            "Time from acceptance to successful delivery.",
            ["kind"],
            registry=r,
        )
        self.dead_letters = Counter(
            "pagerbridge_relay_dead_letters",
            "Jobs given up, by reason: rejected (permanent 4xx), poison (unexpected errors past "
            "the attempt bound), expired (past the age bound), not_ready, unknown_kind.",
            ["kind", "reason"],
            registry=r,
        )
        for kind in JOB_KINDS:
            for reason in DeadLetterReason:
                self.dead_letters.labels(kind, reason)
        self.slot_waits = Counter(
            "pagerbridge_relay_delivery_slot_waits",
            "Attempts that waited for a delivery slot, by the bound that was full: total (every "
            "slot busy), upstream or key (that upstream's or routing key's share).",
            ["bound"],
            registry=r,
        )
        self.store_unavailable = Counter(
            "pagerbridge_relay_store_unavailable",
            "Delivery steps deferred because the outbox could not commit (never re-sent).",
            ["kind"],
            registry=r,
        )
        self.skipped_dependents = Counter(
            "pagerbridge_relay_skipped_dependents",
            "Jobs finished as skipped because their incident will never exist in PagerDuty "
            "(the relay never triggered it, or its late trigger was skipped, and PagerDuty "
            "has no such incident).",
            ["kind"],
            registry=r,
        )
        self.stalled_connections = Counter(
            "pagerbridge_relay_stalled_connections",
            "Connections closed because a request's headers or body did not arrive in time.",
            ["phase"],
            registry=r,
        )
        self.edge_refused = Counter(
            "pagerbridge_relay_edge_refused",
            "Connections and requests the public port's memory budget refused before the "
            "application saw them, by reason: header_too_large (431), body_too_large (413), "
            "source_connections / source_budget (429), connections / unverified_budget / "
            "verified_budget (503).",
            ["reason"],
            registry=r,
        )
        for refusal in EDGE_REFUSAL_REASONS:
            self.edge_refused.labels(refusal)
        self.edge_connections = Gauge(
            "pagerbridge_relay_edge_connections",
            "Open connections on the public port.",
            registry=r,
        )
        self.edge_body_bytes = Gauge(
            "pagerbridge_relay_edge_body_bytes",
            "Body bytes reserved by requests in progress on the public port, by pool "
            "(verified: a BigPanda bearer token in the headers; unverified: everything else).",
            ["pool"],
            registry=r,
        )
        self.late_trigger_checks = Counter(
            "pagerbridge_relay_late_trigger_checks",
            "How late triggers were checked for a resolve meanwhile: store (BigPanda's resolve "
            "webhook already recorded), vouched (the relay was listening all along), bigpanda "
            "(asked BigPanda's API).",
            ["source"],
            registry=r,
        )
        self.token_waits = Counter(
            "pagerbridge_relay_token_waits",
            "Attempts that left their delivery slot to wait for a rate-limit token.",
            ["kind"],
            registry=r,
        )
        self.outbox_pending = Gauge(
            "pagerbridge_relay_outbox_pending", "Jobs waiting in the outbox.", registry=r
        )
        self.oldest_pending = Gauge(
            "pagerbridge_relay_outbox_oldest_pending_seconds",
            "Age of the oldest job waiting in the outbox (0 when none), read from the outbox "
            "at each scrape.",
            registry=r,
        )
        self.info = Gauge(
            "pagerbridge_relay_info",
            "Always 1: the integration this relay serves (empty when run without one) and the "
            "relay's version.",
            ["integration_namespace", "integration_name", "version"],
            registry=r,
        )
        self.key_override_invalid = Counter(
            "pagerbridge_relay_key_override_fallbacks",
            "Incidents sent with the default key because the override was unusable.",
            ["reason"],
            registry=r,
        )
        self.links_dropped = Counter(
            "pagerbridge_relay_links_dropped",
            "Links and images left out of a trigger (the trigger is still sent), by kind "
            "and reason.",
            ["kind", "reason"],
            registry=r,
        )
        for kind in LinkKind:
            for link_reason in LinkDropReason:
                self.links_dropped.labels(kind, link_reason)
        self.mapping_header_ignored = Counter(
            "pagerbridge_relay_tag_mapping_headers_ignored",
            "x-bp-config-tag-* headers ignored (unknown field or tag).",
            registry=r,
        )
        self.config_reloads = Counter(
            "pagerbridge_relay_config_reloads", "Config reloads by result.", ["result"], registry=r
        )
        self.config_ok = Gauge(
            "pagerbridge_relay_config_last_reload_ok",
            "1 when the newest config on disk is the one in use, 0 when it was refused.",
            registry=r,
        )
        self.upstream_auth_failed = Gauge(
            "pagerbridge_relay_upstream_unauthorized",
            "1 while the last call to a service answered 401/403.",
            ["service"],
            registry=r,
        )
        self.echo_suppressed = Counter(
            "pagerbridge_relay_echo_suppressed",
            "Changes not sent back because the relay itself made them.",
            ["kind"],
            registry=r,
        )
        self.ignored = Counter(
            "pagerbridge_relay_ignored",
            "Inbound changes deliberately ignored (not ours, feature off, late trigger).",
            ["reason"],
            registry=r,
        )
        # The repair sweep (relay.inbound.sweep).
        self.repairs = Counter(
            "pagerbridge_relay_repairs",
            "Differences between BigPanda and PagerDuty the repair sweep repaired.",
            ["direction", "reason"],
            registry=r,
        )
        self.sweep_checks = Counter(
            "pagerbridge_relay_sweep_checks",
            "Open incidents checked by the repair sweep, by verdict.",
            ["verdict"],
            registry=r,
        )
        self.sweep_passes = Counter(
            "pagerbridge_relay_sweep_passes", "Repair sweep passes completed.", registry=r
        )
        self.sweep_requests = Counter(
            "pagerbridge_relay_sweep_requests",
            "Upstream reads made by the repair sweep.",
            ["upstream"],
            registry=r,
        )
        self.sweep_drift = Counter(
            "pagerbridge_relay_sweep_drift",
            "Differences the repair sweep found and cannot repair.",
            ["reason"],
            registry=r,
        )
        self.sweep_oldest_unchecked = Gauge(
            "pagerbridge_relay_sweep_oldest_unchecked_seconds",
            "Age of the oldest check (or of the record, never checked) among open incidents.",
            registry=r,
        )

    def outbox_ran(self, operations: Sequence[Callable[..., Any]]) -> None:
        """Count one committed transaction's operations, by the outbox method of each (the
        function's qualified name: ``Outbox.incident.<locals>.op`` counts as ``incident``)."""
        for fn, n in Tally(fn.__qualname__ for fn in operations).items():
            parts = fn.split(".")
            self.outbox_operations.labels(parts[1] if len(parts) > 1 else parts[0]).inc(n)
