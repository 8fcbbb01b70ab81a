"""Re-run failed reconciles as soon as the API server answers again.

A reconcile that fails because the API server is away is retried with the queue's
backoff, which doubles per failure (5 s, 10 s, 20 s, … up to 5 minutes): after an outage of
a minute, an integration whose status write or ConfigMap apply failed would wait another
minute or more, though nothing is wrong any more. Watch events re-trigger the
integrations that changed (see :mod:`pagerbridge.controller.runtime.reconnect`); this
covers the ones that did not change but failed.

While any key waits on a retry timer, the API server is probed every ``period`` seconds
(``GET /version``: one cheap request for the whole operator, not one per integration).
When a probe succeeds after a failed one, every waiting key runs at once. So every
reconcile that failed during an outage runs again within ``period`` seconds of the server
answering.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from pagerbridge.clients.kubernetes import KubernetesError
from pagerbridge.controller.kube_port import KubernetesPort

logger = logging.getLogger(__name__)


class RetryingQueue(Protocol):
    """The part of the work queue this needs (:class:`~.queue.WorkQueue`)."""

    @property
    def retrying(self) -> bool: ...

    def retry_now(self) -> int: ...


class ApiRecovery:
    def __init__(self, kube: KubernetesPort, queue: RetryingQueue, period: float) -> None:
        self._kube = kube
        self._queue = queue
        self._period = period
        self._away = False

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._period)
            if self._queue.retrying or self._away:
                await self.probe()

    async def probe(self) -> None:
        try:
            await self._kube.server_version()
        except KubernetesError:
            self._away = True
            return
        if self._away:
            self._away = False
            queued = self._queue.retry_now()
            logger.info("API server answers again: %d failed reconciles re-run now", queued)
