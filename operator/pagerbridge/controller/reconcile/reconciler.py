"""The reconcile loop: observed state in, children/status/Events/external objects out.

Every trigger (the integration, an override or mapping, one of its own Secrets, a child,
the periodic resync, a changed referenced Secret) only enqueues the integration's key; a
worker then reads the whole observed state (``World``, given at construction) and runs
one reconcile, in four pieces of this package: :mod:`.admission` (parse, three policy
checks), :mod:`.converge` (the steps, each returning its typed status part),
:mod:`.assemble` (the typed status, Ready taken from ``render.status``) and
:mod:`.status_writer` (the one serialiser), with :mod:`.grace` holding back a new relay's
"starting" for a moment. This module only wires them to the queue and the triggers.
What the operator remembers of an integration is one :class:`.memory.IntegrationMemory`.
A watch event of an integration that only shows the status our last reconcile wrote (its
echo) queues nothing (:meth:`Reconciler.echo`), and the referenced Secrets are read once
for all the integrations naming them (:class:`.user_secrets.SharedReads`).
See :mod:`.errors` for what each failure does.

A paused integration (annotation ``pagerbridge.io/paused: "true"``, :mod:`.render.pause`)
stops at :meth:`Reconciler._hold`: its status says so and nothing else is written, so
the resync, the verification of external objects and the token rotation (all reconciles)
pause with it; the first reconcile after the annotation goes re-applies everything.

The periodic resync is one operator-wide task (:meth:`Reconciler.resync_forever`), not a
kopf timer: kopf timers need a finalizer on every object, and only integrations with
something outside the cluster to clean up may carry one. Each integration is re-checked
``resync_seconds`` after its previous re-check, counted from its first reconcile (so
re-checks spread out like their creation times, and none runs on a half-filled index).
The same task runs the cheaper check of the referenced user Secrets, every
``secret_check_seconds`` (:mod:`.user_secrets`: a ``get`` by name, no watch), which queues
a reconcile only when one of them changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Iterable
from dataclasses import replace

from pydantic import ValidationError

from pagerbridge.api import (
    ACCOUNT_KINDS,
    INTEGRATION,
    KEY_OVERRIDE,
    TAG_MAPPING,
    PagerDutyIntegrationSpec,
    PagerDutyIntegrationStatus,
)
from pagerbridge.api import ConditionReason as Reason
from pagerbridge.clients.errors import EgressRefused
from pagerbridge.clients.kubernetes import KubernetesError
from pagerbridge.controller.errors import (
    AccountRefused,
    KubernetesUnavailable,
    ReconcileError,
    WaitingForInput,
)
from pagerbridge.controller.events import post_event
from pagerbridge.controller.kube_port import KubernetesPort
from pagerbridge.controller.metrics import (
    ECHOES_SKIPPED,
    RECONCILE_DURATION,
    RECONCILE_ERRORS,
    RECONCILES,
    RESYNCS,
)
from pagerbridge.controller.policy import accounts
from pagerbridge.controller.reconcile import (
    account_status,
    assemble,
    cleanup,
    grace,
    shared,
    status_writer,
)
from pagerbridge.controller.reconcile.admission import admit, parse, with_accounts
from pagerbridge.controller.reconcile.api_recovery import ApiRecovery
from pagerbridge.controller.reconcile.converge import Converged, converge
from pagerbridge.controller.reconcile.queue import WorkQueue
from pagerbridge.controller.reconcile.status_writer import RESOURCES, StatusWriter
from pagerbridge.controller.render import conditions as c
from pagerbridge.controller.render import pause
from pagerbridge.controller.render.children import Owner, RenderSettings
from pagerbridge.controller.render.conditions import ConditionUpdate
from pagerbridge.controller.settings import OperatorSettings
from pagerbridge.controller.state import user_secrets
from pagerbridge.controller.state.memory import IntegrationMemory, Memories
from pagerbridge.controller.state.observed import REF_KINDS, IntegrationInfo, World
from pagerbridge.controller.steps import children as children_step
from pagerbridge.controller.steps import relay_readiness
from pagerbridge.controller.steps.context import Context, involved

logger = logging.getLogger(__name__)

Key = tuple[str, str, str]  # (kind, namespace, name)
SECRET_CHECK = "SecretCheck"  # queue key kind: compare an integration's Secrets, maybe reconcile
ACCOUNT_KINDS_BY_NAME = {kind.kind: kind for kind in ACCOUNT_KINDS}  # queue key: (kind, "", name)


def _without_status(info: IntegrationInfo) -> IntegrationInfo:
    """What a reconcile reads of the integration, but its status (and resourceVersion)."""
    return replace(info, status={}, resource_version="")


def live_uids(integrations: Iterable[IntegrationInfo]) -> set[str]:
    """The integrations whose children the orphan sweep keeps: every one not being
    deleted, and a paused one even then (its deletion waits for the pause to end, and
    a paused integration's children are not written, deleted included)."""
    return {
        info.uid for info in integrations if not info.deleting or pause.paused(info.annotations)
    }


class Reconciler:
    def __init__(self, kube: KubernetesPort, settings: OperatorSettings, world: World) -> None:
        self.kube = kube
        self.settings = settings
        self.world = world
        self.render_settings = RenderSettings(
            settings.relay_image,
            settings.image_pull_policy,
            settings.relay_pod_defaults,
            settings.relay_network_policy,
        )
        self.queue: WorkQueue[Key] = WorkQueue(
            self._handle,
            settings.workers,
            group=lambda key: key[1],  # namespace: one tenant cannot take every worker
            group_limit=settings.namespace_concurrency,
            deadline=settings.reconcile_deadline_seconds,
        )
        self.memories = Memories()
        self.status = StatusWriter(kube)
        self.secret_reads = user_secrets.SharedReads(min(1.0, settings.secret_check_seconds / 10))
        self._recovery = ApiRecovery(kube, self.queue, settings.api_reconnect_seconds)
        self._tasks: list[asyncio.Task[None]] = []
        # One lock per integration, held by each reconcile and by the finalizer's cleanup
        # (:meth:`exclusive`), so a reconcile that started before the deletion cannot
        # write an external object back (or re-stamp it) after the finalizer dealt with it.
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def start(self) -> None:
        self.queue.start()
        self._tasks = [
            asyncio.create_task(self.resync_forever(), name="resync"),
            asyncio.create_task(self._recovery.run(), name="api-recovery"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.queue.stop()

    async def resync_forever(self) -> None:
        """Re-queue each known integration every ``resync_seconds`` (with ``verify``);
        with shared accounts, sweep the account namespace for orphans as often."""
        tick = max(0.05, min(1.0, self.settings.resync_seconds / 4))
        next_sweep = time.monotonic() + self.settings.resync_seconds
        while True:
            await asyncio.sleep(tick)
            self.resync_due(time.monotonic())
            if self.settings.account_namespace and time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + self.settings.resync_seconds
                await self.sweep_orphans()

    async def sweep_orphans(self) -> None:
        """Delete children in the account namespace whose integration is gone (no
        ownerReference can do it: see :mod:`.shared`). Best effort, retried next sweep."""
        live = live_uids(self.world.integrations())
        try:
            await shared.sweep(self.kube, self.settings.account_namespace, live)
        except KubernetesError as exc:
            logger.warning("orphan sweep of %s: %s", self.settings.account_namespace, exc)

    def resync_due(self, now: float) -> None:
        check_every = self.settings.secret_check_seconds
        for (namespace, name), memory in self.memories.items():
            if memory.next_resync is not None and now >= memory.next_resync:
                memory.next_resync = now + self.settings.resync_seconds
                RESYNCS.inc()
                self.integration_changed(namespace, name, verify=True)
            elif (
                check_every > 0
                and memory.next_secret_check is not None
                and now >= memory.next_secret_check
            ):
                memory.next_secret_check = now + check_every
                self.queue.add((SECRET_CHECK, namespace, name))

    # -- triggers ---------------------------------------------------------------------

    def integration_changed(self, namespace: str, name: str, *, verify: bool = False) -> None:
        memory = self.memories.of(namespace, name)
        memory.triggered_at = self.secret_reads.clock()
        if verify:
            memory.verify_now = True
            memory.resync_now = True
        self.queue.add((INTEGRATION.kind, namespace, name))

    def integration_event(self, info: IntegrationInfo, deleted: bool) -> None:
        """A watch event of the integration: reconcile it, unless the event only shows the
        status our last reconcile wrote (see :meth:`echo`)."""
        if not deleted and self.echo(info):
            ECHOES_SKIPPED.inc()
            return
        self.integration_changed(info.namespace, info.name)

    def echo(self, info: IntegrationInfo) -> bool:
        """Whether ``info`` differs from what the last reconcile read only by the status it
        wrote: every other input of a reconcile (spec, generation, annotations, finalizers,
        deletion) is as that reconcile saw it, and the status holds what it wrote, so another
        reconcile would read the same and write nothing. Each reconcile forgets the echo it
        expects when it starts and sets it just before its status write, so a change made
        while one runs is never mistaken for an echo."""
        memory = self.memories.get(info.namespace, info.name)
        if memory is None or memory.echo is None:
            return False
        seen, desired = memory.echo
        return _without_status(info) == seen and not status_writer.differs(info.status, desired)

    def ref_changed(self, kind: str, namespace: str, name: str) -> None:
        self.queue.add((kind, namespace, name))

    def namespace_changed(self, namespace: str) -> None:
        """A Namespace's labels may have moved it in or out of an account's selector."""
        for info in self.world.integrations():
            if info.namespace == namespace and accounts.names_account(info.spec):
                self.integration_changed(info.namespace, info.name)

    def account_changed(self, kind: str, name: str) -> None:
        """An account changed: its own status, and every integration naming it."""
        self.queue.add((kind, "", name))
        for info in self.world.integrations():
            if name in accounts.named_accounts(info.spec, kind):
                self.integration_changed(info.namespace, info.name)

    # -- shared accounts ----------------------------------------------------------------

    def owner_of(self, info: IntegrationInfo) -> Owner:
        """The owner of the integration's children: in the account namespace when it
        names a shared account."""
        home = accounts.home(info.spec, self.settings.account_namespace)
        return Owner(info.namespace, info.name, info.uid, home=home)

    def spec_for_cleanup(self, info: IntegrationInfo) -> PagerDutyIntegrationSpec | None:
        """The spec whose credentials delete the external objects (an account's, even if
        it no longer allows the namespace); None when it cannot be had."""
        try:
            return with_accounts(
                parse(info), info.namespace, self.settings, self.world, enforce=False
            )
        except (WaitingForInput, ValidationError):
            return None

    # -- dispatch ---------------------------------------------------------------------

    async def _handle(self, key: Key) -> float | None:
        kind, namespace, name = key
        if kind == SECRET_CHECK:  # not a reconcile: no reconcile metrics
            return await self.check_secrets(namespace, name)
        if kind in ACCOUNT_KINDS_BY_NAME:  # not an integration's reconcile either
            return await self.reconcile_account(kind, name)
        started = time.monotonic()
        try:
            if kind == INTEGRATION.kind:
                retry = await self.reconcile_integration(namespace, name)
            else:
                retry = await self.reconcile_ref(kind, namespace, name)
        except KubernetesError as exc:
            logger.warning("reconcile %s %s/%s: %s", kind, namespace, name, exc)
            RECONCILES.labels(kind, "error").inc()
            RECONCILE_ERRORS.labels(KubernetesUnavailable.reason).inc()
            return KubernetesUnavailable.retry_after
        finally:
            RECONCILE_DURATION.labels(kind).observe(time.monotonic() - started)
        RECONCILES.labels(kind, "ok" if retry is None else "retry").inc()
        return retry

    async def check_secrets(self, namespace: str, name: str) -> float | None:
        """Reconcile the integration if a Secret it references changed since its last
        reconcile (see :mod:`.user_secrets`)."""
        memory = self.memories.get(namespace, name)
        if memory is None or not memory.secret_versions:
            return None
        try:
            where = memory.secret_namespace or namespace
            seen = memory.secret_versions
            if await user_secrets.changed(self.kube, where, seen, self.secret_reads):
                self.integration_changed(namespace, name)
        except KubernetesUnavailable as exc:
            logger.warning("secret check %s/%s: %s", namespace, name, exc.message)
            return exc.retry_after
        return None

    # -- integration ------------------------------------------------------------------

    def exclusive(self, namespace: str, name: str) -> asyncio.Lock:
        """The lock of one integration: its reconciles and its finalizer take turns."""
        lock = self._locks.get((namespace, name))
        if lock is None:
            lock = asyncio.Lock()
            self._locks[(namespace, name)] = lock
        return lock

    async def reconcile_integration(self, namespace: str, name: str) -> float | None:
        async with self.exclusive(namespace, name):
            return await self._reconcile_integration(namespace, name)

    async def _reconcile_integration(self, namespace: str, name: str) -> float | None:
        world = self.world
        info = world.integration(namespace, name)
        if info is None or info.deleting:
            if info is not None:
                await cleanup.let_go(
                    self.kube,
                    RESOURCES[INTEGRATION.kind],
                    info,
                    involved(info.uid, namespace, name),
                )
            self._forget(namespace, name)
            if info is not None:
                for account_kind in ACCOUNT_KINDS_BY_NAME:
                    for account in accounts.named_accounts(info.spec, account_kind):
                        self.queue.add((account_kind, "", account))
            for kind in REF_KINDS:
                for ref in world.refs_to(kind, namespace, name):
                    self.ref_changed(kind, namespace, ref.name)
            return None
        memory = self.memories.of(namespace, name)
        memory.echo = None
        # Secrets read since the latest trigger are as new as this reconcile needs; with no
        # trigger known (a retry, a re-check), only a read sent from now on.
        not_before, memory.triggered_at = memory.triggered_at, None
        if not_before is None:
            not_before = self.secret_reads.clock()
        if memory.next_resync is None:
            memory.next_resync = time.monotonic() + self.settings.resync_seconds
            memory.next_secret_check = time.monotonic() + self.settings.secret_check_seconds
        if pause.paused(info.annotations):
            await self._hold(info, memory)
            return None
        resync, memory.resync_now = memory.resync_now, False
        if resync:  # trust the cluster again, not our memory of what we wrote
            memory.written = None
        owner = self.owner_of(info)
        overrides = world.refs_to(KEY_OVERRIDE.kind, namespace, name)
        mappings = world.refs_to(TAG_MAPPING.kind, namespace, name)

        def requeue_after(delay: float) -> None:
            # not a retry: the queue would count it as a failure and back off
            self.queue.add_after((INTEGRATION.kind, namespace, name), delay)

        for kind in ACCOUNT_KINDS_BY_NAME:  # their count of users may have changed
            for account in accounts.named_accounts(info.spec, kind):
                self.queue.add((kind, "", account))
        spec: PagerDutyIntegrationSpec | None = None
        converged: Converged | None = None
        secrets = assemble.SECRETS_FOUND
        try:
            spec = admit(info, self.settings, world)
            ctx = Context(self.kube, world, self.settings, owner, spec, info, memory, requeue_after)
            converged = await converge(
                ctx,
                overrides,
                mappings,
                self.render_settings,
                resync=resync,
                secret_reads=self.secret_reads,
                not_before=not_before,
            )
        except (WaitingForInput, EgressRefused) as exc:  # a refused URL waits too
            secrets = ConditionUpdate(c.SECRETS_RESOLVED, c.FALSE, exc.reason, exc.message)
            RECONCILE_ERRORS.labels(exc.reason).inc()
            if isinstance(exc, AccountRefused) and owner.shared:
                # No relay runs on an account that no longer serves this namespace.
                await shared.stop_relay(self.kube, world, owner)
                memory.applied.pop("Deployment", None)
        except ReconcileError as exc:
            RECONCILE_ERRORS.labels(exc.reason).inc()
            logger.warning("reconcile %s/%s: %s", namespace, name, exc.message)
            return exc.retry_after

        relay = children_step.relay(world, owner, spec, requeue_after)
        relay = await relay_readiness.explain(self.kube, owner, spec, memory, relay, requeue_after)
        assembled = assemble.integration_status(info, owner, spec, secrets, converged, relay)
        retry = converged.first_retry() if converged is not None else None
        current = list(info.status.get("conditions") or [])
        if grace.holds_back(memory, current, assembled.conditions, requeue_after):
            return retry
        compiled = converged.compiled if converged is not None else None
        for ref in [*overrides, *mappings]:
            ready = assemble.reference_condition(ref, assembled.conditions, compiled)
            await self.status.ref(ref, assemble.reference_status(ref, ready))
        memory.echo = (_without_status(info), status_writer.serialise(assembled.status))
        await self.status.integration(
            memory, namespace, name, info.uid, info.status, assembled.status
        )
        return retry

    async def _hold(self, info: IntegrationInfo, memory: IntegrationMemory) -> None:
        """A paused integration (see :mod:`.render.pause`): only its status is written, and
        the first reconcile after the pause re-applies and re-checks everything."""
        memory.resync_now = memory.verify_now = True
        current = list(info.status.get("conditions") or [])
        written = memory.written[1][1] if memory.written and memory.written[0] == info.uid else []
        if c.find(current, c.PAUSED) is None and c.find(written, c.PAUSED) is None:
            # (our own last write counts too: the index may lag behind it)
            await post_event(
                self.kube,
                involved(info.uid, info.namespace, info.name),
                reason=Reason.RECONCILE_PAUSED,
                message=pause.PAUSED_MESSAGE,
                warning=False,
            )
        conditions = pause.held_conditions(current, info.generation, c.now_rfc3339())
        status = PagerDutyIntegrationStatus.model_validate({"conditions": conditions})
        await self.status.integration(
            memory, info.namespace, info.name, info.uid, info.status, status
        )

    def _forget(self, namespace: str, name: str) -> None:
        self.memories.forget(namespace, name)
        self.status.forget_integration(namespace, name)
        self.queue.forget((INTEGRATION.kind, namespace, name))

    # -- accounts -----------------------------------------------------------------------

    async def reconcile_account(self, kind: str, name: str) -> float | None:
        """An account's status: Ready (its Secrets exist), and how many use it."""
        info = self.world.account(kind, name)
        if info is None:
            return None
        users = accounts.users(
            ACCOUNT_KINDS_BY_NAME[kind],
            info.spec,
            name,
            [(i.namespace, i.spec) for i in self.world.integrations() if not i.deleting],
            self.world.namespace_labels,
        )
        try:
            await account_status.write(
                self.kube, ACCOUNT_KINDS_BY_NAME[kind], info, self.settings.account_namespace, users
            )
        except KubernetesUnavailable as exc:
            return exc.retry_after
        return None

    # -- references (overrides, mappings) ---------------------------------------------

    async def reconcile_ref(self, kind: str, namespace: str, name: str) -> float | None:
        ref = self.world.ref(kind, namespace, name)
        if ref is None:
            self.status.forget_ref(kind, namespace, name)
            return None
        integration = self.world.integration(namespace, ref.integration)
        if integration is None or integration.deleting:
            ready = assemble.reference_condition(ref, None, None)
            await self.status.ref(ref, assemble.reference_status(ref, ready))
        else:
            self.integration_changed(namespace, ref.integration)
        return None
