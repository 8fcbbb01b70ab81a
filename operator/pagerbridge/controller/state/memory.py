"""What the operator remembers about one integration between reconciles: one object per
integration (created by its first trigger, dropped as a whole when it goes away).

Nothing here is needed for correctness after a restart (the cluster and the external
systems are the truth); it only saves writes and calls: what was last applied or written,
when the subscription was last verified, what BigPanda was last confirmed to hold, which
integration event would only echo our own status write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Written = tuple[str, list[dict[str, Any]]]  # (status essence, conditions) last written


@dataclass
class IntegrationMemory:
    # children: kind -> (rendered digest, resourceVersion or Deployment generation)
    applied: dict[str, tuple[str, str]] = field(default_factory=dict)
    relay_created: float | None = None  # monotonic time we created the relay Deployment
    verified_at: float | None = None  # PagerDuty subscription last checked (monotonic)
    verify_now: bool = False  # the next reconcile checks the subscription in PagerDuty
    # the event types our subscription was last confirmed (or set) to deliver in PagerDuty
    subscribed_events: tuple[str, ...] | None = None
    resync_now: bool = False  # the next reconcile re-applies and re-checks everything
    next_resync: float | None = None  # monotonic; None until first reconciled
    # referenced user Secrets: name -> resourceVersion ("" when absent) at the last reconcile
    secret_versions: dict[str, str] = field(default_factory=dict)
    secret_namespace: str | None = None  # where they are (the account namespace's), if not its
    next_secret_check: float | None = None  # monotonic; None until first reconciled
    # monotonic: the latest trigger since the last reconcile started (None: none known)
    triggered_at: float | None = None
    bigpanda_applied: str | None = None  # digest of the workflow BigPanda holds
    bigpanda_secret: str | None = None  # digest of the authorization last written
    written: tuple[str, Written] | None = None  # (uid, what we last wrote to status)
    relay_probed: float | None = None  # monotonic: the relay's /readyz last read (unready)
    relay_refusal: str | None = None  # its "outbox refused: ..." line then, if any
    # the integration as the last reconcile read it (without status) and the status patch
    # it wrote: the watch event of that write is our own echo (Reconciler.echo)
    echo: tuple[Any, dict[str, Any]] | None = None


class Memories:
    """The memory of every integration this process has seen, by (namespace, name)."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], IntegrationMemory] = {}

    def of(self, namespace: str, name: str) -> IntegrationMemory:
        return self._items.setdefault((namespace, name), IntegrationMemory())

    def get(self, namespace: str, name: str) -> IntegrationMemory | None:
        return self._items.get((namespace, name))

    def forget(self, namespace: str, name: str) -> None:
        self._items.pop((namespace, name), None)

    def items(self) -> list[tuple[tuple[str, str], IntegrationMemory]]:
        return list(self._items.items())
