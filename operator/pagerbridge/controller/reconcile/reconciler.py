"""The reconcile loop: observed state in, children/status/Events/external objects out.

Every trigger (the integration, an override or mapping, one of its own Secrets, a child,
the periodic resync, a changed referenced Secret) only enqueues the integration's key; a
worker then reads the whole observed state (``World``, given at construction) and
converges, step by step: the PagerDuty subscription (:mod:`.subscription_step`), the
children (:mod:`.children_step`), the token rotation (:mod:`.token_step`), BigPanda's integration
(:mod:`.bigpanda_step`), and the status (:mod:`.status_writer`). Each step returns its
condition and status fragment; this module composes them. What the operator remembers
of an integration is one :class:`.memory.IntegrationMemory`. See :mod:`.errors` for what
each failure does.

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
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from pagerbridge.api import (
    INTEGRATION,
    KEY_OVERRIDE,
    TAG_MAPPING,
    PagerDutyIntegrationSpec,
    PagerDutyKeyOverrideSpec,
    PagerDutyTagMappingSpec,
)
from pagerbridge.api.contract import BIGPANDA_WEBHOOK_PATH
from pagerbridge.clients.kubernetes import KubernetesError
from pagerbridge.controller.errors import (
    InvalidSpec,
    KubernetesUnavailable,
    ReconcileError,
    WaitingForInput,
)
from pagerbridge.controller.external import bigpanda_integration
from pagerbridge.controller.kube_port import KubernetesPort
from pagerbridge.controller.metrics import (
    RECONCILE_DURATION,
    RECONCILE_ERRORS,
    RECONCILES,
    RESYNCS,
)
from pagerbridge.controller.policy import spec_urls as egress
from pagerbridge.controller.reconcile import cleanup
from pagerbridge.controller.reconcile.status_writer import RESOURCES, StatusWriter
from pagerbridge.controller.render import conditions as c
from pagerbridge.controller.render.children import (
    Owner,
    RenderSettings,
    bigpanda_webhook_status,
    relay_base_url,
    render_children,
)
from pagerbridge.controller.render.compile import (
    Compiled,
    MappingInput,
    OverrideInput,
    compile_relay_config,
    secret_refs,
)
from pagerbridge.controller.render.conditions import ConditionUpdate
from pagerbridge.controller.render.status import (
    IntegrationOutcome,
    integration_conditions,
    public_reachability,
    ref_ready,
    ref_waiting,
    storage_condition,
)
from pagerbridge.controller.runtime.queue import WorkQueue
from pagerbridge.controller.settings import OperatorSettings
from pagerbridge.controller.state import user_secrets
from pagerbridge.controller.state.memory import IntegrationMemory, Memories
from pagerbridge.controller.state.observed import (
    REF_KINDS,
    RELAY_STARTING,
    IntegrationInfo,
    RefInfo,
    World,
)
from pagerbridge.controller.steps import children as children_step
from pagerbridge.controller.steps import expose as expose_step
from pagerbridge.controller.steps import token as token_step
from pagerbridge.controller.steps import webhook_integration as bigpanda_step
from pagerbridge.controller.steps import webhook_subscription as subscription_step
from pagerbridge.controller.steps.context import Context, StepResult, involved
from pagerbridge.controller.steps.webhook_subscription import NOT_CONFIGURED

logger = logging.getLogger(__name__)

Key = tuple[str, str, str]  # (kind, namespace, name)
SECRET_CHECK = "SecretCheck"  # queue key kind: compare an integration's Secrets, maybe reconcile
STARTUP_GRACE = 5.0  # seconds a new relay may take before the status says it is starting
SECRETS_FOUND = ConditionUpdate(
    c.SECRETS_RESOLVED, c.TRUE, "SecretsFound", "all referenced Secret keys found"
)


class Reconciler:
    def __init__(self, kube: KubernetesPort, settings: OperatorSettings, world: World) -> None:
        self.kube = kube
        self.settings = settings
        self.world = world
        self.render_settings = RenderSettings(
            settings.relay_image, settings.image_pull_policy, settings.relay_pod_defaults
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
        self._resync_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.queue.start()
        self._resync_task = asyncio.create_task(self.resync_forever(), name="resync")

    async def stop(self) -> None:
        if self._resync_task is not None:
            self._resync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resync_task
        await self.queue.stop()

    async def resync_forever(self) -> None:
        """Re-queue each known integration every ``resync_seconds`` (with ``verify``)."""
        tick = max(0.05, min(1.0, self.settings.resync_seconds / 4))
        while True:
            await asyncio.sleep(tick)
            self.resync_due(time.monotonic())

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
        if verify:
            memory = self.memories.of(namespace, name)
            memory.verify_now = True
            memory.resync_now = True
        self.queue.add((INTEGRATION.kind, namespace, name))

    def ref_changed(self, kind: str, namespace: str, name: str) -> None:
        self.queue.add((kind, namespace, name))

    # -- dispatch ---------------------------------------------------------------------

    async def _handle(self, key: Key) -> float | None:
        kind, namespace, name = key
        if kind == SECRET_CHECK:  # not a reconcile: no reconcile metrics
            return await self.check_secrets(namespace, name)
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
            if await user_secrets.changed(self.kube, namespace, memory.secret_versions):
                self.integration_changed(namespace, name)
        except KubernetesUnavailable as exc:
            logger.warning("secret check %s/%s: %s", namespace, name, exc.message)
            return exc.retry_after
        return None

    # -- integration ------------------------------------------------------------------

    async def reconcile_integration(self, namespace: str, name: str) -> float | None:
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
            for kind in REF_KINDS:
                for ref in world.refs_to(kind, namespace, name):
                    self.ref_changed(kind, namespace, ref.name)
            return None
        memory = self.memories.of(namespace, name)
        if memory.next_resync is None:
            memory.next_resync = time.monotonic() + self.settings.resync_seconds
            memory.next_secret_check = time.monotonic() + self.settings.secret_check_seconds
        resync, memory.resync_now = memory.resync_now, False
        if resync:  # trust the cluster again, not our memory of what we wrote
            memory.written = None
        owner = Owner(namespace, name, info.uid)
        overrides = world.refs_to(KEY_OVERRIDE.kind, namespace, name)
        mappings = world.refs_to(TAG_MAPPING.kind, namespace, name)

        def requeue_after(delay: float) -> None:
            # not a retry: the queue would count it as a failure and back off
            self.queue.add_after((INTEGRATION.kind, namespace, name), delay)

        spec: PagerDutyIntegrationSpec | None = None
        compiled: Compiled | None = None
        secrets_ok = SECRETS_FOUND
        results: dict[str, StepResult] = {}
        try:
            spec = _parse(info)
            egress.check_spec(spec, self.settings.egress)  # before anything is called
            self.settings.relay_policy.check_spec(spec, self.settings.relay_image)
            if spec.relay.expose is not None:  # refused before anything is rendered
                self.settings.expose_policy.decide(spec.relay.expose, namespace)
            ctx = Context(self.kube, world, self.settings, owner, spec, info, memory, requeue_after)
            compiled, results = await self._converge(ctx, overrides, mappings, resync)
        except WaitingForInput as exc:
            secrets_ok = ConditionUpdate(c.SECRETS_RESOLVED, c.FALSE, exc.reason, exc.message)
            RECONCILE_ERRORS.labels(exc.reason).inc()
        except ReconcileError as exc:
            RECONCILE_ERRORS.labels(exc.reason).inc()
            logger.warning("reconcile %s/%s: %s", namespace, name, exc.message)
            return exc.retry_after

        relay = children_step.relay(world, owner, spec, requeue_after)
        url = relay_base_url(owner, spec) if spec else None
        reachable = (
            public_reachability(spec.relay.effective_public_url, f"{url}{BIGPANDA_WEBHOOK_PATH}")
            if spec is not None
            else None
        )
        exposed = results.get("expose")
        exposed_condition = exposed.condition if exposed is not None else None
        if exposed_condition is not None and (
            spec is None or spec.relay.public_url is None or exposed_condition.status != c.TRUE
        ):
            reachable = exposed_condition  # the Ingress/HTTPRoute's verdict
        elif exposed is None and spec is not None and spec.relay.expose is not None:
            reachable = None  # refused or not reached: the last verdict stands
        sub = results.get("subscription")
        bigpanda = results.get("bigpanda")
        taken = results.get("children")  # a NameConflict: the relay cannot be ours
        if taken is not None and taken.condition is not None:
            relay = StepResult(taken.condition, relay.status)
        outcome = IntegrationOutcome(
            secrets_ok,
            sub.condition if sub and sub.condition else NOT_CONFIGURED,
            relay.condition or ConditionUpdate(c.RELAY_AVAILABLE, c.UNKNOWN, "Unknown", ""),
            url,
            bigpanda.condition if bigpanda else None,
            storage=storage_condition(spec.relay.effective_storage) if spec else None,
            reachable=reachable,
        )
        current = list(info.status.get("conditions") or [])
        new_conditions = integration_conditions(outcome, current, info.generation, c.now_rfc3339())
        desired: dict[str, Any] = {
            "observedGeneration": info.generation,
            "conditions": new_conditions,
        }
        if spec is not None:
            desired.update(relay.status)
            if "relay" in desired:  # what expose_step published (kept while it did not run)
                relay_status = {**desired["relay"], **expose_step.published(info, exposed)}
                # A merge patch keeps what it does not name: drop what no longer applies
                # (publicUrl, exposedBy) explicitly.
                stale = (info.status.get("relay") or {}).keys() - relay_status.keys()
                desired["relay"] = {**relay_status, **dict.fromkeys(stale)}
            desired["pagerDutySubscription"] = (
                sub.status.get("pagerDutySubscription") if sub is not None else None
            )
        if compiled is not None and spec is not None:
            desired["bigPandaWebhook"] = {
                **bigpanda_webhook_status(owner, spec, compiled),
                **(bigpanda.status if bigpanda else {}),
            }
        if self._starting(memory, current, new_conditions, requeue_after):
            return _first_retry(results)
        await self._ref_statuses(namespace, name, overrides, mappings, compiled, new_conditions)
        await self.status.integration(memory, namespace, name, info.uid, info.status, desired)
        return _first_retry(results)

    async def _converge(
        self,
        ctx: Context,
        overrides: list[RefInfo],
        mappings: list[RefInfo],
        resync: bool,
    ) -> tuple[Compiled, dict[str, StepResult]]:
        """The external steps, in order; raises what makes the integration wait."""
        namespace, name, spec = ctx.owner.namespace, ctx.owner.name, ctx.spec
        refs: dict[str, set[str]] = {
            ref.name: set() for _, ref in secret_refs(spec, self.settings.relay_database)
        }
        refs[spec.pager_duty.routing_key.name].add(spec.pager_duty.routing_key.key)
        read = await user_secrets.read(ctx.kube, namespace, refs)
        ctx.memory.secret_versions = read.versions
        override_inputs = [o for o in map(_override, overrides) if o]
        mapping_inputs = [m for m in map(_mapping, mappings) if m]

        def compile_(webhook_secret: bool) -> Compiled:
            return compile_relay_config(
                namespace,
                name,
                spec,
                override_inputs,
                mapping_inputs,
                read.infos,
                webhook_secret=webhook_secret,
                default_database=self.settings.relay_database,
            )

        compile_(False)  # validate the references before anything talks to PagerDuty
        results: dict[str, StepResult] = {}
        sub = await subscription_step.run(ctx)
        results["subscription"] = sub
        compiled = compile_(sub.webhook_secret)
        # A rotated database URI (an environment variable of the relay) rolls the pods.
        database = compiled.database.name if compiled.database is not None else None
        env_version = read.versions.get(database, "") if database is not None else ""
        children = render_children(
            ctx.owner, spec, compiled, self.render_settings, env_secret_version=env_version
        )
        results["children"] = await children_step.apply(ctx, children.applied(), force=resync)
        await children_step.remove(ctx, children.absent())
        results["expose"] = await expose_step.run(ctx, force=resync)
        token = await token_step.run(ctx)
        if bigpanda_integration.managed(spec):
            if token is not None:
                results["bigpanda"] = await bigpanda_step.run(ctx, compiled, token, verify=resync)
        else:
            results["bigpanda"] = await bigpanda_step.unmanage(ctx)  # no condition
        return compiled, results

    def _starting(
        self,
        memory: IntegrationMemory,
        current: list[dict[str, Any]],
        new_conditions: list[dict[str, Any]],
        requeue_after: Callable[[float], None],
    ) -> bool:
        """A relay we created moments ago is not reported unavailable yet.

        For up to ``STARTUP_GRACE`` seconds after creating its Deployment, a first status
        that would only say "relay starting" is held back (the readiness event re-triggers
        the reconcile, which then writes Ready in one go); halves status writes at scale.
        """
        started = memory.relay_created
        ready = c.find(new_conditions, c.READY) or {}
        if started is None or c.find(current, c.READY) is not None:
            return False
        if ready.get("reason") != RELAY_STARTING:
            return False
        remaining = STARTUP_GRACE - (time.monotonic() - started)
        if remaining <= 0:
            return False
        requeue_after(remaining)
        return True

    def _forget(self, namespace: str, name: str) -> None:
        self.memories.forget(namespace, name)
        self.status.forget_integration(namespace, name)
        self.queue.forget((INTEGRATION.kind, namespace, name))

    # -- references (overrides, mappings) ---------------------------------------------

    async def _ref_statuses(
        self,
        namespace: str,
        name: str,
        overrides: list[RefInfo],
        mappings: list[RefInfo],
        compiled: Compiled | None,
        conditions: list[dict[str, Any]],
    ) -> None:
        """Every override and mapping gets a status: Applied (or Conflict) while the
        integration is Ready, else IntegrationNotReady naming its failing condition."""
        for ref in [*overrides, *mappings]:
            waiting = ref_waiting(conditions, name, namespace, ref.kind)
            if waiting is not None or compiled is None:
                fallback = ref_ready(True, name, namespace, ref.kind)
                await self.status.ref(ref, waiting or fallback)
                continue
            conflict = None
            if ref.kind == KEY_OVERRIDE.kind and ref.name in compiled.ignored_overrides:
                conflict = (
                    f"PagerDutyKeyOverride {compiled.active_override} already sets the key "
                    f"override tag of {name}; only one applies"
                )
            elif ref.kind == TAG_MAPPING.kind and ref.name in compiled.ignored_mappings:
                fields = ", ".join(compiled.ignored_mappings[ref.name])
                conflict = (
                    f"field(s) {fields} already mapped by another PagerDutyTagMapping "
                    f"of {name}; the others apply"
                )
            await self.status.ref(ref, ref_ready(True, name, namespace, ref.kind, conflict))

    async def reconcile_ref(self, kind: str, namespace: str, name: str) -> float | None:
        ref = self.world.ref(kind, namespace, name)
        if ref is None:
            self.status.forget_ref(kind, namespace, name)
            return None
        integration = self.world.integration(namespace, ref.integration)
        if integration is None or integration.deleting:
            await self.status.ref(ref, ref_ready(False, ref.integration, namespace, kind))
        else:
            self.integration_changed(namespace, ref.integration)
        return None


def _parse(info: IntegrationInfo) -> PagerDutyIntegrationSpec:
    try:
        return PagerDutyIntegrationSpec.model_validate(info.spec)
    except ValidationError as exc:
        raise InvalidSpec(
            f"spec does not validate: {exc.error_count()} error(s), first at "
            + ".".join(map(str, exc.errors()[0]["loc"]))
        ) from None


def _first_retry(results: dict[str, StepResult]) -> float | None:
    """The subscription's retry first, else the children's, else BigPanda's (as the
    steps ran)."""
    for key in ("subscription", "children", "bigpanda"):
        result = results.get(key)
        if result is not None and result.retry is not None:
            return result.retry
    return None


def _override(ref: RefInfo) -> OverrideInput | None:
    try:
        spec = PagerDutyKeyOverrideSpec.model_validate(ref.spec)
    except ValidationError:
        return None
    return OverrideInput(ref.name, spec.tag)


def _mapping(ref: RefInfo) -> MappingInput | None:
    try:
        spec = PagerDutyTagMappingSpec.model_validate(ref.spec)
    except ValidationError:
        return None
    return MappingInput(ref.name, tuple(spec.mappings))
