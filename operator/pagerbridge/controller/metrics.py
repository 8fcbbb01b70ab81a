"""Prometheus metrics of the operator: reconciles, their errors and duration, queue depth."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter(
    "pagerbridge_operator_reconciles_total",
    "Reconciles run, by object kind and result (ok, waiting, error).",
    ["kind", "result"],
)
RECONCILE_ERRORS = Counter(
    "pagerbridge_operator_reconcile_errors_total",
    "Failed reconciles, by condition reason.",
    ["reason"],
)
RECONCILE_DURATION = Histogram(
    "pagerbridge_operator_reconcile_duration_seconds",
    "Time spent in one reconcile.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
QUEUE_DEPTH = Gauge("pagerbridge_operator_queue_depth", "Objects waiting for a reconcile.")
APPLIES = Counter(
    "pagerbridge_operator_child_applies_total",
    "Server-side applies of children, by kind.",
    ["kind"],
)
RESYNCS = Counter(
    "pagerbridge_operator_resyncs_total",
    "Periodic re-checks of integrations queued (children, subscription, BigPanda integration).",
)
