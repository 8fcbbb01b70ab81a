"""What /readyz reports about the services the relay talks to (401/403 seen lately)."""

from __future__ import annotations

import time

from pagerbridge.relay.metrics import RelayMetrics
from pagerbridge.relay.outcomes import Upstream


class UpstreamHealth:
    def __init__(self, metrics: RelayMetrics) -> None:
        self.metrics = metrics
        self._unauthorized: dict[Upstream, float] = {}
        for service in Upstream:
            metrics.upstream_auth_failed.labels(service).set(0)

    def unauthorized(self, service: Upstream) -> None:
        self._unauthorized[service] = time.time()
        self.metrics.upstream_auth_failed.labels(service).set(1)

    def ok(self, service: Upstream) -> None:
        if self._unauthorized.pop(service, None) is not None:
            self.metrics.upstream_auth_failed.labels(service).set(0)

    def detail(self) -> dict[str, str]:
        return {
            str(service): ("unauthorized" if service in self._unauthorized else "ok")
            for service in Upstream
        }
