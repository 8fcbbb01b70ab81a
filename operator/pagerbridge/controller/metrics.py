"""Prometheus metrics of the operator: reconciles, their errors and duration, queue depth,
each integration's conditions (:class:`ConditionGauge`) and the build.

``pagerbridge_integration_condition`` follows cert-manager's
``certmanager_certificate_ready_status``: per integration and condition type, one series
for each of ``True``, ``False`` and ``Unknown``, valued 1 for the status the condition has
and 0 for the other two, so ``{type="Ready", status="True"} == 0`` is "not Ready" whatever
the reason, and a deleted integration's series disappear with it.
"""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs

from prometheus_client import Counter, Gauge, Histogram

from pagerbridge import __version__

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
API_REQUESTS = Counter(
    "pagerbridge_operator_api_requests_total",
    "Requests the operator sent to the Kubernetes API server, by client (operator: its own "
    "calls; kopf: watches and kopf's own patches), verb (get, list, watch, create, apply, "
    "patch, update, delete) and resource (plural, with /subresource).",
    ["client", "verb", "resource"],
)
ECHOES_SKIPPED = Counter(
    "pagerbridge_operator_echoes_skipped_total",
    "Integration watch events not reconciled: they only showed the operator's own status write.",
)
RESYNCS = Counter(
    "pagerbridge_operator_resyncs_total",
    "Periodic re-checks of integrations queued (children, subscription, BigPanda integration).",
)
SUBSCRIPTION_REPAIRS = Counter(
    "pagerbridge_operator_subscription_repairs_total",
    "PagerDuty webhook subscriptions found wrong at a verification and set right, by what "
    "(inactive: disabled by PagerDuty or a person; events; filter).",
    ["namespace", "name", "what"],
)
INTEGRATION_CONDITION = Gauge(
    "pagerbridge_integration_condition",
    "Status conditions of each PagerDutyIntegration: 1 for the status the condition "
    "has (True, False or Unknown), 0 for the other two.",
    ["namespace", "name", "type", "status"],
)
BUILD_INFO = Gauge(
    "pagerbridge_build_info",
    "Always 1; the labels name the running PagerBridge version and Python version.",
    ["version", "python_version"],
)
BUILD_INFO.labels(__version__, platform.python_version()).set(1)

STATUSES = ("True", "False", "Unknown")


def count_api_request(client: str, method: str, path: str, query: str, content_type: str) -> None:
    API_REQUESTS.labels(client, *api_request(method, path, query, content_type)).inc()


def api_request(method: str, path: str, query: str, content_type: str) -> tuple[str, str]:
    """(verb, resource) of a request to the API server, for :data:`API_REQUESTS`.

    The resource is its plural (``configmaps``, ``pagerdutyintegrations``) and subresource
    (``pagerdutyintegrations/status``), never a namespace or object name: the series stay
    few whatever the number of integrations."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"]:
        rest = parts[2:]  # /api/v1/...
    elif parts[:1] == ["apis"]:
        rest = parts[3:]  # /apis/group/version/...
    else:
        return method.lower(), "/".join(parts[:1]) or "-"  # /version, /healthz
    if rest[:1] == ["namespaces"] and len(rest) >= 3:
        rest = rest[2:]  # a namespaced resource (else: the Namespace itself)
    resource = "/".join([rest[0], *rest[2:3]]) if rest else "-"
    named = len(rest) >= 2
    method = method.upper()
    if method == "GET":
        if not named:
            watching = parse_qs(query).get("watch", [""])[0] in ("true", "1")
            return ("watch" if watching else "list"), resource
        return "get", resource
    if method == "PATCH":
        return ("apply" if "apply-patch" in content_type else "patch"), resource
    verbs = {"POST": "create", "PUT": "update", "DELETE": "delete"}
    return verbs.get(method, method.lower()), resource


class ConditionGauge:
    """Keeps ``pagerbridge_integration_condition`` equal to the conditions written last.

    Remembers which condition types each integration has series for, so a type that
    disappears from the status (and the integration itself, on :meth:`remove`) loses its
    series rather than freezing at its last value.
    """

    def __init__(self, gauge: Gauge = INTEGRATION_CONDITION) -> None:
        self._gauge = gauge
        self._types: dict[tuple[str, str], set[str]] = {}

    def set(self, namespace: str, name: str, conditions: Iterable[Mapping[str, Any]]) -> None:
        current: dict[str, str] = {}
        for condition in conditions:
            status = str(condition.get("status"))
            current[str(condition.get("type"))] = status if status in STATUSES else "Unknown"
        for gone in self._types.get((namespace, name), set()) - current.keys():
            self._remove_type(namespace, name, gone)
        for type_, status in current.items():
            for candidate in STATUSES:
                value = 1.0 if candidate == status else 0.0
                self._gauge.labels(namespace, name, type_, candidate).set(value)
        self._types[(namespace, name)] = set(current)

    def remove(self, namespace: str, name: str) -> None:
        for type_ in self._types.pop((namespace, name), set()):
            self._remove_type(namespace, name, type_)

    def _remove_type(self, namespace: str, name: str, type_: str) -> None:
        for status in STATUSES:
            with contextlib.suppress(KeyError):  # never set: nothing to remove
                self._gauge.remove(namespace, name, type_, status)
