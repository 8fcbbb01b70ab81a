"""The start-up grace: a relay created moments ago is not reported as starting yet.

For up to :data:`STARTUP_GRACE` seconds after the operator created an integration's relay
Deployment, a first status that would only say "relay starting" (see
:func:`~pagerbridge.controller.render.status.quiet_start`) is held back: the relay's
readiness event re-triggers the reconcile, which then writes Ready in one go. This halves
status writes at scale and spares users a ``RelayStarting`` blip on every new integration.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pagerbridge.controller.render.status import quiet_start
from pagerbridge.controller.state.memory import IntegrationMemory

STARTUP_GRACE = 5.0  # seconds a new relay may take before the status says it is starting


def holds_back(
    memory: IntegrationMemory,
    current: list[dict[str, Any]],
    new_conditions: list[dict[str, Any]],
    requeue_after: Callable[[float], None],
) -> bool:
    """True when this status is not written yet (a re-check is queued for the grace's end)."""
    started = memory.relay_created
    if started is None or not quiet_start(current, new_conditions):
        return False
    remaining = STARTUP_GRACE - (time.monotonic() - started)
    if remaining <= 0:
        return False
    requeue_after(remaining)
    return True
