"""Leader election: of all operator processes sharing a Lease, exactly one is active.

Why a ``coordination.k8s.io/v1`` Lease rather than kopf's peering: a Lease is what every
Kubernetes controller uses (``kubectl get lease`` shows who leads), it needs no CRD of its
own and no cluster-wide permission (a Role in the operator's namespace), and a follower
does nothing at all (no watches, no memory), where kopf peering runs every replica and
only pauses the lower-priority ones after they have met, which may already be too late
for an external side effect.

The algorithm is client-go's (``tools/leaderelection``):

- a follower reads the Lease every ``retry_period``; it takes it over (an update carrying
  the ``resourceVersion`` it read, so two takeovers cannot both succeed) when the holder is
  empty or the record has not changed for ``lease_duration`` by the follower's *own* clock
  (no clock skew between machines matters);
- the leader renews every ``retry_period``; when it has not renewed for ``renew_deadline``
  (< ``lease_duration``) it stops acting at once (:meth:`LeaderElector.hold` returns, and
  the operator exits so the Deployment restarts it as a follower). So the old leader has
  stopped before any follower may take over: no external side effect is ever made twice;
- a leader that shuts down cleanly releases the Lease (empty holder), so a follower takes
  over within ``retry_period`` instead of ``lease_duration``.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

from pagerbridge.clients.kubernetes import (
    AlreadyExists,
    KubernetesClient,
    KubernetesError,
    NotFound,
    Resource,
)

logger = logging.getLogger(__name__)
LEASES = Resource.builtin("Lease")
DEFAULT_LEASE_NAME = "pagerbridge-operator"


def default_identity() -> str:
    """``hostname_random``: the pod's name in a pod, unique across restarts."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def _micro_time(now: datetime.datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LeaseSettings:
    namespace: str
    name: str = DEFAULT_LEASE_NAME
    identity: str = field(default_factory=default_identity)
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError("leader election needs retry period < renew deadline < lease duration")


class LeaderElector:
    def __init__(self, kube: KubernetesClient, settings: LeaseSettings) -> None:
        self.kube = kube
        self.settings = settings
        self._observed: dict[str, Any] | None = None  # the Lease's spec as last read
        self._observed_at = 0.0  # monotonic time it last changed
        self._renewed_at = 0.0  # monotonic time of our last successful renew
        self.leading = False

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _spec(self, previous: dict[str, Any] | None) -> dict[str, Any]:
        now = _micro_time(datetime.datetime.now(datetime.UTC))
        previous = previous or {}
        ours = previous.get("holderIdentity") == self.settings.identity
        transitions = int(previous.get("leaseTransitions") or 0)
        return {
            "holderIdentity": self.settings.identity,
            "leaseDurationSeconds": max(1, round(self.settings.lease_duration)),
            "acquireTime": previous.get("acquireTime") if ours else now,
            "renewTime": now,
            "leaseTransitions": transitions if ours or not previous else transitions + 1,
        }

    async def try_acquire_or_renew(self) -> bool:
        """One round of client-go's ``tryAcquireOrRenew``; True while we lead."""
        s = self.settings
        try:
            lease = await self.kube.get(LEASES, s.namespace, s.name)
        except NotFound:
            fresh = self._spec(None)
            manifest = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": s.name, "namespace": s.namespace},
                "spec": fresh,
            }
            try:
                await self.kube.create(manifest, LEASES)
            except AlreadyExists:
                return False
            self._observe(fresh)
            return True
        spec: dict[str, Any] = lease.get("spec") or {}
        if spec != self._observed:
            self._observe(spec)
        holder = spec.get("holderIdentity") or ""
        duration = float(spec.get("leaseDurationSeconds") or s.lease_duration)
        if holder and holder != s.identity and self._now() < self._observed_at + duration:
            return False
        lease["spec"] = self._spec(spec)
        try:
            await self.kube.replace(lease, LEASES)  # carries the resourceVersion we read
        except AlreadyExists:  # 409: someone else wrote it first
            return False
        self._observe(lease["spec"])
        return True

    def _observe(self, spec: dict[str, Any]) -> None:
        self._observed = dict(spec)
        self._observed_at = self._now()

    async def acquire(self) -> None:
        """Return once this process leads."""
        s = self.settings
        logger.info(
            "waiting for leadership",
            extra={"lease": f"{s.namespace}/{s.name}", "identity": s.identity},
        )
        reported: str | None = None
        while True:
            try:
                if await self.try_acquire_or_renew():
                    break
                holder = (self._observed or {}).get("holderIdentity")
                if holder != reported:
                    logger.info(
                        "another operator leads; standing by",
                        extra={"lease": f"{s.namespace}/{s.name}", "holder": holder},
                    )
                    reported = holder
            except KubernetesError as exc:
                logger.warning("leader election: %s", exc)
            await asyncio.sleep(s.retry_period)
        self.leading = True
        self._renewed_at = self._now()
        logger.info(
            "became the leader", extra={"lease": f"{s.namespace}/{s.name}", "identity": s.identity}
        )

    async def hold(self) -> None:
        """Renew until it fails for ``renew_deadline`` or another holder appears; then
        return (the caller must stop acting at once)."""
        s = self.settings
        while True:
            await asyncio.sleep(s.retry_period)
            try:
                renewed = await asyncio.wait_for(
                    self.try_acquire_or_renew(), timeout=s.renew_deadline
                )
            except (KubernetesError, TimeoutError) as exc:
                logger.warning("leader election: cannot renew the lease: %s", exc)
                renewed = False
            if renewed:
                self._renewed_at = self._now()
                continue
            holder = (self._observed or {}).get("holderIdentity")
            if holder and holder != s.identity:
                break
            if self._now() - self._renewed_at >= s.renew_deadline:
                break
        self.leading = False
        logger.error(
            "lost leadership: stopping",
            extra={"lease": f"{s.namespace}/{s.name}", "identity": s.identity},
        )

    async def release(self) -> None:
        """Give the Lease up (a clean shutdown), so a follower takes over at once."""
        if not self.leading:
            return
        s = self.settings
        self.leading = False
        try:
            lease = await self.kube.get(LEASES, s.namespace, s.name)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != s.identity:
                return
            spec.update(
                holderIdentity="",
                leaseDurationSeconds=1,
                renewTime=_micro_time(datetime.datetime.now(datetime.UTC)),
            )
            lease["spec"] = spec
            await self.kube.replace(lease, LEASES)
            logger.info("released leadership", extra={"lease": f"{s.namespace}/{s.name}"})
        except KubernetesError as exc:
            logger.warning("leader election: could not release the lease: %s", exc)
