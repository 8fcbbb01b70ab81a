"""Hot reload: poll the config and secret files, swap in a new :class:`Settings` when they change.

Polls every second and compares *content hashes* of every watched file (mounted Kubernetes
Secrets and ConfigMaps change by swapping a ``..data`` symlink, so mtime alone can miss an
update). A new config that fails to load is refused: the old settings stay in use, the error
is logged once per distinct failure and ``pagerbridge_relay_config_last_reload_ok`` drops to
0 until a good config arrives. Requests in flight keep the snapshot they started with.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from pagerbridge.relay.config import settings as settings_mod
from pagerbridge.relay.config.settings import Settings, SettingsError
from pagerbridge.relay.metrics import RelayMetrics

logger = logging.getLogger(__name__)


class SettingsHolder:
    """The current settings snapshot plus the watcher that replaces it."""

    def __init__(
        self,
        config_path: str,
        initial: Settings,
        metrics: RelayMetrics,
        interval: float,
        on_change: Callable[[Settings], None] | None = None,
    ) -> None:
        self.config_path = config_path
        self.current = initial
        self.metrics = metrics
        self.on_change = on_change
        self.interval = interval
        self.last_error: str | None = None
        self._refused_fingerprint: str | None = None
        metrics.config_ok.set(1)

    def _files(self) -> list[str]:
        return settings_mod.watched_files(self.config_path, self.current.config)

    async def check_once(self) -> bool:
        """Reload if anything changed; True when new settings were swapped in."""
        files = self._files()
        fp = await asyncio.to_thread(settings_mod.fingerprint, files)
        if fp == self.current.fingerprint and self._refused_fingerprint is not None:
            # The files went back to what is in use: nothing refused is pending any more.
            self._refused_fingerprint = None
            self.last_error = None
            self.metrics.config_ok.set(1)
            logger.info("config on disk matches the one in use again")
            return False
        if fp in (self.current.fingerprint, self._refused_fingerprint):
            return False
        try:
            new = await asyncio.to_thread(settings_mod.load, self.config_path)
        except SettingsError as exc:
            self._refused_fingerprint = fp
            self.last_error = str(exc)
            self.metrics.config_reloads.labels("refused").inc()
            self.metrics.config_ok.set(0)
            logger.error("new config refused; keeping the previous one", extra={"error": str(exc)})
            return False
        if new.config.outbox_path != self.current.config.outbox_path:
            logger.warning("outboxPath changed; it takes effect at the next restart")
        self.current = new
        self._refused_fingerprint = None
        self.last_error = None
        self.metrics.config_reloads.labels("ok").inc()
        self.metrics.config_ok.set(1)
        if self.on_change is not None:
            self.on_change(new)
        logger.info("config reloaded")
        return True

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check_once()
            except Exception:  # the watcher must survive anything a filesystem does
                logger.exception("config watch failed")
