"""The reconcile loop: observed state in, children/status/Events/subscription out.

Every trigger (the integration, an override or mapping, a referenced Secret, a child, the
periodic resync) only enqueues the integration's key; a worker then reads the whole
observed state (``World``) and converges. Children are server-side applied, but only
when the rendered manifest or the child's resourceVersion changed since our last apply,
so a quiet operator writes nothing. See :mod:`.errors` for what each failure does.

The periodic resync is one operator-wide task (:meth:`Reconciler.resync_forever`), not a
kopf timer: kopf timers need a finalizer on every object, and only integrations with
something outside the cluster to clean up may carry one. Each integration is re-checked
``resync_seconds`` after its previous re-check, counted from its first reconcile (so
re-checks spread out like their creation times, and none runs on a half-filled index).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import secrets as pysecrets
import time
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from pagerbridge.api import (
    GROUP,
    INTEGRATION,
    KEY_OVERRIDE,
    TAG_MAPPING,
    VERSION,
    PagerDutyIntegrationSpec,
    PagerDutyKeyOverrideSpec,
    PagerDutyTagMappingSpec,
)
from pagerbridge.api.contract import PAGERDUTY_WEBHOOK_PATH
from pagerbridge.clients.kubernetes import (
    AlreadyExists,
    KubernetesClient,
    KubernetesError,
    NotFound,
    Resource,
)
from pagerbridge.controller import bigpanda_integration, cleanup, subscription, token_rotation
from pagerbridge.controller import conditions as c
from pagerbridge.controller import names as n
from pagerbridge.controller.compile import (
    Compiled,
    MappingInput,
    OverrideInput,
    compile_relay_config,
    secret_refs,
)
from pagerbridge.controller.conditions import ConditionUpdate
from pagerbridge.controller.errors import (
    InvalidSpec,
    KubernetesUnavailable,
    ReconcileError,
    SubscriptionFailed,
    WaitingForInput,
)
from pagerbridge.controller.events import post_event
from pagerbridge.controller.metrics import (
    APPLIES,
    RECONCILE_DURATION,
    RECONCILE_ERRORS,
    RECONCILES,
    RESYNCS,
)
from pagerbridge.controller.observed import (
    REF_KINDS,
    RELAY_READY,
    RELAY_STARTING,
    RELAY_UNAVAILABLE,
    RefInfo,
    World,
    relay_state,
)
from pagerbridge.controller.queue import WorkQueue
from pagerbridge.controller.rendering import (
    Owner,
    RenderSettings,
    bigpanda_webhook_status,
    relay_base_url,
    render_children,
    render_token_secret,
    service_url,
)
from pagerbridge.controller.settings import OperatorSettings
from pagerbridge.controller.status import (
    IntegrationOutcome,
    differs,
    integration_conditions,
    public_reachability,
    reconciling_condition,
    ref_ready,
    ref_waiting,
    storage_condition,
)

logger = logging.getLogger(__name__)

Key = tuple[str, str, str]  # (kind, namespace, name)
STARTUP_GRACE = 5.0  # seconds a new relay may take before the status says it is starting
RELAY_CONDITION_STATUS = {
    RELAY_READY: c.TRUE,
    RELAY_STARTING: c.UNKNOWN,
    RELAY_UNAVAILABLE: c.FALSE,
}
BP_STATUS_KEYS = ("integrationId", "lastVerified", "authorizationDigest")
RESOURCES = {
    kind.kind: Resource.custom(GROUP, VERSION, kind.plural)
    for kind in (INTEGRATION, KEY_OVERRIDE, TAG_MAPPING)
}


def _essence(status: dict[str, Any]) -> str:
    """A status without condition transition times, for "did anything change?"."""
    conditions = [
        {k: v for k, v in condition.items() if k != "lastTransitionTime"}
        for condition in status.get("conditions", [])
    ]
    return json.dumps({**status, "conditions": conditions}, sort_keys=True)


def _digest(manifest: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


class Reconciler:
    def __init__(self, kube: KubernetesClient, settings: OperatorSettings) -> None:
        self.kube = kube
        self.settings = settings
        self.render_settings = RenderSettings(settings.relay_image, settings.image_pull_policy)
        self.world: World | None = None
        self.queue: WorkQueue[Key] = WorkQueue(self._handle, settings.workers)
        self._applied: dict[tuple[str, str, str], tuple[str, str]] = {}
        self._verified_at: dict[tuple[str, str], float] = {}
        self._verify_now: set[tuple[str, str]] = set()
        self._resync_now: set[tuple[str, str]] = set()
        self._relay_created: dict[tuple[str, str], float] = {}
        self._bp_applied: dict[tuple[str, str], str] = {}
        self._bp_secret: dict[tuple[str, str], str] = {}
        self._written: dict[tuple[str, str, str, str], tuple[str, list[dict[str, Any]]]] = {}
        self._next_resync: dict[tuple[str, str], float] = {}
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
        interval = self.settings.resync_seconds
        tick = max(0.05, min(1.0, interval / 4))
        while True:
            await asyncio.sleep(tick)
            self.resync_due(time.monotonic())

    def resync_due(self, now: float) -> None:
        interval = self.settings.resync_seconds
        for (namespace, name), due in list(self._next_resync.items()):
            if now >= due:
                self._next_resync[(namespace, name)] = now + interval
                RESYNCS.inc()
                self.integration_changed(namespace, name, verify=True)

    # -- triggers ---------------------------------------------------------------------

    def integration_changed(self, namespace: str, name: str, *, verify: bool = False) -> None:
        if verify:
            self._verify_now.add((namespace, name))
            self._resync_now.add((namespace, name))
        self.queue.add((INTEGRATION.kind, namespace, name))

    def ref_changed(self, kind: str, namespace: str, name: str) -> None:
        self.queue.add((kind, namespace, name))

    # -- dispatch ---------------------------------------------------------------------

    async def _handle(self, key: Key) -> float | None:
        kind, namespace, name = key
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

    # -- integration ------------------------------------------------------------------

    async def reconcile_integration(self, namespace: str, name: str) -> float | None:
        world = self.world
        assert world is not None, "reconciler started before the indices"
        info = world.integration(namespace, name)
        if info is not None and info.deleting:
            involved = self._involved(info.uid, namespace, name)
            await cleanup.let_go(self.kube, RESOURCES[INTEGRATION.kind], info, involved)
        if info is None or info.deleting:
            self._forget(namespace, name)
            for kind in REF_KINDS:
                for ref in world.refs_to(kind, namespace, name):
                    self.ref_changed(kind, namespace, ref.name)
            return None
        owner = Owner(namespace, name, info.uid)
        names = owner.names
        self._next_resync.setdefault(
            (namespace, name), time.monotonic() + self.settings.resync_seconds
        )
        resync = (namespace, name) in self._resync_now
        self._resync_now.discard((namespace, name))
        if resync:  # trust the cluster again, not our memory of what we wrote
            self._written.pop((INTEGRATION.kind, namespace, name, info.uid), None)
        overrides = world.refs_to(KEY_OVERRIDE.kind, namespace, name)
        mappings = world.refs_to(TAG_MAPPING.kind, namespace, name)

        retry: float | None = None
        compiled: Compiled | None = None
        spec: PagerDutyIntegrationSpec | None = None
        secrets_ok = ConditionUpdate(
            c.SECRETS_RESOLVED, c.TRUE, "SecretsFound", "all referenced Secret keys found"
        )
        sub_ok = ConditionUpdate(
            c.SUBSCRIPTION_READY,
            c.TRUE,
            "NotConfigured",
            "no pagerDuty.serviceId: PagerDuty → BigPanda sync is off",
        )
        subscription_id: str | None = None
        bp_ok: ConditionUpdate | None = None
        bp_status: dict[str, Any] = {}
        try:
            try:
                spec = PagerDutyIntegrationSpec.model_validate(info.spec)
            except ValidationError as exc:
                raise InvalidSpec(
                    f"spec does not validate: {exc.error_count()} error(s), first at "
                    + ".".join(map(str, exc.errors()[0]["loc"]))
                ) from None
            user_secrets = {
                ref.name: state.info
                for _, ref in secret_refs(spec)
                if (state := world.secret(namespace, ref.name)) is not None
            }
            override_inputs = [o for o in (self._override(r) for r in overrides) if o]
            mapping_inputs = [m for m in (self._mapping(r) for r in mappings) if m]
            # Validate the references before anything talks to PagerDuty.
            compile_relay_config(
                namespace,
                name,
                spec,
                override_inputs,
                mapping_inputs,
                user_secrets,
                webhook_secret=False,
            )

            stored = world.secret(namespace, names.webhook_secret)
            webhook_secret = False
            if subscription.wanted(spec):
                try:
                    outcome = await subscription.ensure(
                        self.kube, owner, spec, stored, verify=self._verify_due(namespace, name)
                    )
                    self._verified_at[(namespace, name)] = time.monotonic()
                    subscription_id = outcome.subscription_id
                    webhook_secret = True
                    sub_ok = ConditionUpdate(
                        c.SUBSCRIPTION_READY,
                        c.TRUE,
                        "Subscribed",
                        f"PagerDuty webhook subscription {subscription_id} delivers to "
                        f"{relay_base_url(owner, spec)}{PAGERDUTY_WEBHOOK_PATH}",
                    )
                    if outcome.changed:
                        await post_event(
                            self.kube,
                            self._involved(info.uid, namespace, name),
                            reason="SubscriptionCreated",
                            message=f"PagerDuty webhook subscription {subscription_id} created",
                            warning=False,
                        )
                except SubscriptionFailed as exc:
                    sub_ok = ConditionUpdate(c.SUBSCRIPTION_READY, c.FALSE, exc.reason, exc.message)
                    retry = exc.retry_after
                    webhook_secret = stored is not None  # keep verifying with the old secret
                    RECONCILE_ERRORS.labels(exc.reason).inc()
            elif stored is not None and stored.owner == name:
                await self._drop_subscription(owner, spec, stored)

            compiled = compile_relay_config(
                namespace,
                name,
                spec,
                override_inputs,
                mapping_inputs,
                user_secrets,
                webhook_secret=webhook_secret,
            )
            children = render_children(owner, spec, compiled, self.render_settings)
            await self._apply(
                owner, children.applied(), force=resync, token_seen="bigPandaWebhook" in info.status
            )
            bp_token = await self._token_rotation(owner, spec, info)
            if bigpanda_integration.managed(spec) and bp_token is not None:
                bp_ok, bp_status, bp_retry = await self._bigpanda_webhook(
                    owner, spec, compiled, info, bp_token, verify=resync
                )
                retry = bp_retry if retry is None else retry
            elif not bigpanda_integration.managed(spec):
                bp_status = await self._unmanage_bigpanda(owner, spec, info)
        except WaitingForInput as exc:
            secrets_ok = ConditionUpdate(c.SECRETS_RESOLVED, c.FALSE, exc.reason, exc.message)
            RECONCILE_ERRORS.labels(exc.reason).inc()
        except ReconcileError as exc:
            RECONCILE_ERRORS.labels(exc.reason).inc()
            logger.warning("reconcile %s/%s: %s", namespace, name, exc.message)
            return exc.retry_after

        relay_now = relay_state(world.child("Deployment", namespace, name), datetime.now(UTC))
        relay = ConditionUpdate(
            c.RELAY_AVAILABLE,
            RELAY_CONDITION_STATUS[relay_now.reason],
            relay_now.reason,
            relay_now.message,
        )
        if relay_now.recheck_after is not None:  # no controller will tell us the deadline
            # (not a retry: the queue would count it as a failure and back off)
            self.queue.add_after((INTEGRATION.kind, namespace, name), relay_now.recheck_after)
        outcome_url = relay_base_url(owner, spec) if spec else None
        reachable = (
            public_reachability(spec.relay.public_url, f"{outcome_url}/v1/bigpanda/webhook")
            if spec is not None
            else None
        )
        integration_outcome = IntegrationOutcome(
            secrets_ok,
            sub_ok,
            relay,
            outcome_url,
            bp_ok,
            storage=storage_condition(spec.relay.effective_storage) if spec else None,
            reachable=reachable,
        )
        current = list(info.status.get("conditions") or [])
        new_conditions = integration_conditions(
            integration_outcome, current, info.generation, c.now_rfc3339()
        )
        desired: dict[str, Any] = {
            "observedGeneration": info.generation,
            "conditions": new_conditions,
        }
        if spec is not None:
            deployment = world.child("Deployment", namespace, name)
            desired["relay"] = {
                "serviceUrl": service_url(owner, spec),
                "readyReplicas": deployment.ready_replicas if deployment else 0,
                **({"publicUrl": spec.relay.public_url} if spec.relay.public_url else {}),
            }
            if subscription.wanted(spec):
                desired["pagerDutySubscription"] = (
                    {"id": subscription_id} if subscription_id else None
                )
            else:
                desired["pagerDutySubscription"] = None
        if compiled is not None and spec is not None:
            desired["bigPandaWebhook"] = {
                **bigpanda_webhook_status(owner, spec, compiled),
                **bp_status,
            }
        if self._starting(namespace, name, current, new_conditions):
            return retry
        await self._ref_statuses(namespace, name, overrides, mappings, compiled, new_conditions)
        await self._write_status(INTEGRATION.kind, namespace, name, info.uid, info.status, desired)
        return retry

    async def _unmanage_bigpanda(
        self, owner: Owner, spec: PagerDutyIntegrationSpec, info: Any
    ) -> dict[str, Any]:
        """Switched from Managed to Manual: delete what we made in BigPanda (best effort)."""
        previous = dict(info.status.get("bigPandaWebhook") or {})
        if "integrationId" not in previous:
            return {}
        self._bp_applied.pop((owner.namespace, owner.name), None)
        try:
            await bigpanda_integration.remove(self.kube, owner, spec)
        except ReconcileError as exc:
            logger.warning(
                "%s/%s: BigPanda integration %s left in place: %s",
                owner.namespace,
                owner.name,
                previous["integrationId"],
                exc.message,
            )
        self._bp_secret.pop((owner.namespace, owner.name), None)
        return {key: None for key in BP_STATUS_KEYS if key in previous}

    async def _bigpanda_webhook(
        self,
        owner: Owner,
        spec: PagerDutyIntegrationSpec,
        compiled: Compiled,
        info: Any,
        token: str,
        *,
        verify: bool,
    ) -> tuple[ConditionUpdate, dict[str, Any], float | None]:
        """Managed mode: keep BigPanda's Webhook v2 integration equal to the CRs."""
        key = (owner.namespace, owner.name)
        previous = dict(info.status.get("bigPandaWebhook") or {})
        status: dict[str, Any] = {k: previous[k] for k in BP_STATUS_KEYS if k in previous}
        try:
            outcome = await bigpanda_integration.ensure(
                self.kube,
                owner,
                spec,
                compiled,
                token=token,
                last_digest=self._bp_applied.get(key),
                # our memory first: the indexed status may lag behind our own last write
                written_secret=self._bp_secret.get(key, previous.get("authorizationDigest")),
                verify=verify,
            )
        except bigpanda_integration.BigPandaWebhookFailed as exc:
            RECONCILE_ERRORS.labels(exc.reason).inc()
            self._bp_applied.pop(key, None)
            condition = ConditionUpdate(c.BIGPANDA_WEBHOOK, c.FALSE, exc.reason, exc.message)
            return condition, status, exc.retry_after
        self._bp_applied[key] = outcome.digest
        self._bp_secret[key] = outcome.secret_digest
        status["integrationId"] = outcome.integration_id
        status["authorizationDigest"] = outcome.secret_digest
        if outcome.talked:
            status["lastVerified"] = c.now_rfc3339()
        if outcome.changed:
            await post_event(
                self.kube,
                self._involved(owner.uid, owner.namespace, owner.name),
                reason="BigPandaWebhookConfigured",
                message=f"BigPanda Webhook v2 integration {outcome.integration_id} written",
                warning=False,
            )
        condition = ConditionUpdate(
            c.BIGPANDA_WEBHOOK,
            c.TRUE,
            "Configured",
            f"BigPanda Webhook v2 integration {outcome.integration_id} shares to the relay",
        )
        return condition, status, None

    async def _token_rotation(
        self, owner: Owner, spec: PagerDutyIntegrationSpec, info: Any
    ) -> str | None:
        """Advance a requested token rotation; the token BigPanda must send now.

        Reads the token Secret only when BigPanda is managed or a rotation is under way.
        """
        assert self.world is not None
        names = owner.names
        state = self.world.secret(owner.namespace, names.token_secret)
        request = info.annotations.get(token_rotation.ANNOTATION_REQUEST)
        marks = state.annotations if state is not None else {}
        rotating = bool(request and request != marks.get(token_rotation.ANNOTATION_REQUEST)) or (
            marks.get(token_rotation.ANNOTATION_PHASE) == token_rotation.BOTH
        )
        if not rotating and not bigpanda_integration.managed(spec):
            return None
        try:
            secret = await self.kube.get(
                Resource.builtin("Secret"), owner.namespace, names.token_secret
            )
        except NotFound:
            return None
        tokens = token_rotation.decode_tokens(secret, n.TOKEN_KEY)
        if not tokens:
            return None
        annotations = dict((secret.get("metadata") or {}).get("annotations") or {})
        step = token_rotation.plan(
            request,
            tokens,
            annotations,
            time.time(),
            self.settings.token_rotation_grace_seconds,
            lambda: pysecrets.token_urlsafe(32),
        )
        if step.tokens is not None or step.annotations:
            await token_rotation.write(
                self.kube, owner.namespace, names.token_secret, n.TOKEN_KEY, step
            )
            phase = (step.annotations or {}).get(token_rotation.ANNOTATION_PHASE)
            await post_event(
                self.kube,
                self._involved(owner.uid, owner.namespace, owner.name),
                reason="TokenRotating" if phase == token_rotation.BOTH else "TokenRotated",
                message=(
                    f"Secret {names.token_secret} holds the old and the new token"
                    if phase == token_rotation.BOTH
                    else f"Secret {names.token_secret} holds only the new token"
                ),
                warning=False,
            )
        if step.requeue_after is not None:
            self.queue.add_after(
                (INTEGRATION.kind, owner.namespace, owner.name), step.requeue_after + 0.1
            )
        return step.bigpanda_token

    def _starting(
        self,
        namespace: str,
        name: str,
        current: list[dict[str, Any]],
        new_conditions: list[dict[str, Any]],
    ) -> bool:
        """A relay we created moments ago is not reported unavailable yet.

        For up to ``STARTUP_GRACE`` seconds after creating its Deployment, a first status
        that would only say "relay starting" is held back (the readiness event re-triggers
        the reconcile, which then writes Ready in one go); halves status writes at scale.
        """
        started = self._relay_created.get((namespace, name))
        ready = c.find(new_conditions, c.READY) or {}
        if started is None or c.find(current, c.READY) is not None:
            return False
        if ready.get("reason") != RELAY_STARTING:
            return False
        remaining = STARTUP_GRACE - (time.monotonic() - started)
        if remaining <= 0:
            return False
        self.queue.add_after((INTEGRATION.kind, namespace, name), remaining)
        return True

    def _verify_due(self, namespace: str, name: str) -> bool:
        key = (namespace, name)
        if key in self._verify_now:
            self._verify_now.discard(key)
            return True
        last = self._verified_at.get(key)
        return last is None or time.monotonic() - last > self.settings.subscription_verify_seconds

    async def _drop_subscription(
        self, owner: Owner, spec: PagerDutyIntegrationSpec, stored: Any
    ) -> None:
        """serviceId was removed: delete the subscription (best effort) and its Secret."""
        try:
            if spec.pager_duty.api_token is not None:
                await subscription.remove(self.kube, owner, spec, stored)
        except ReconcileError as exc:
            logger.warning(
                "could not delete the PagerDuty subscription of %s/%s: %s",
                owner.namespace,
                owner.name,
                exc.message,
            )
        with contextlib.suppress(NotFound):
            await self.kube.delete(
                Resource.builtin("Secret"), owner.namespace, owner.names.webhook_secret
            )

    async def _ensure_token_secret(self, owner: Owner, seen_before: bool) -> None:
        """Create the inbound token once; an existing Secret is never rewritten.

        A token Secret deleted by hand is recreated with a new token: BigPanda must then
        send the new one (Managed mode: done here; Manual: a Warning Event says so).
        """
        assert self.world is not None
        if self.world.secret(owner.namespace, owner.names.token_secret) is not None:
            return
        manifest = render_token_secret(owner, pysecrets.token_urlsafe(32))
        manifest["data"] = {
            k: base64.b64encode(v.encode()).decode() for k, v in manifest.pop("stringData").items()
        }
        try:
            await self.kube.create(manifest)
        except AlreadyExists:
            return
        if seen_before:
            await post_event(
                self.kube,
                self._involved(owner.uid, owner.namespace, owner.name),
                reason="TokenRegenerated",
                message=f"Secret {owner.names.token_secret} was missing and holds a new token; "
                "BigPanda must send it (pagerbridge webhook-config --reveal)",
                warning=True,
            )

    async def _apply(
        self,
        owner: Owner,
        manifests: list[dict[str, Any]],
        *,
        force: bool = False,
        token_seen: bool = False,
    ) -> None:
        """Apply what changed: the Deployment last, once what it mounts exists."""
        first = [m for m in manifests if m["kind"] != "Deployment"]
        last = [m for m in manifests if m["kind"] == "Deployment"]
        await asyncio.gather(
            self._ensure_token_secret(owner, token_seen),
            *(self._apply_one(owner, m, force) for m in first),
        )
        for manifest in last:
            await self._apply_one(owner, manifest, force)

    async def _apply_one(self, owner: Owner, manifest: dict[str, Any], force: bool) -> None:
        """Skip when neither our rendering nor the object changed since our last apply.

        A Deployment is compared by ``generation`` (its status changes all the time); the
        others by ``resourceVersion``. The periodic resync applies regardless.
        """
        assert self.world is not None
        kind = str(manifest["kind"])
        key = (owner.namespace, owner.name, kind)
        digest = _digest(manifest)
        observed = self.world.child(kind, owner.namespace, owner.name)
        if not force and observed is not None:
            marker = str(observed.generation) if kind == "Deployment" else observed.resource_version
            if self._applied.get(key) == (digest, marker):
                return
        result = await self.kube.apply(manifest)
        APPLIES.labels(kind).inc()
        if kind == "Deployment" and observed is None:
            self._relay_created.setdefault((owner.namespace, owner.name), time.monotonic())
        meta = result["metadata"]
        marker = (
            str(meta.get("generation")) if kind == "Deployment" else str(meta["resourceVersion"])
        )
        self._applied[key] = (digest, marker)

    def _forget(self, namespace: str, name: str) -> None:
        for kind in ("ConfigMap", "Service", "PersistentVolumeClaim", "Deployment"):
            self._applied.pop((namespace, name, kind), None)
        self._verified_at.pop((namespace, name), None)
        self._relay_created.pop((namespace, name), None)
        self._bp_applied.pop((namespace, name), None)
        self._bp_secret.pop((namespace, name), None)
        self._next_resync.pop((namespace, name), None)
        for key in [k for k in self._written if k[1:3] == (namespace, name)]:
            self._written.pop(key, None)
        self.queue.forget((INTEGRATION.kind, namespace, name))

    # -- references (overrides, mappings) ---------------------------------------------

    def _override(self, ref: RefInfo) -> OverrideInput | None:
        try:
            spec = PagerDutyKeyOverrideSpec.model_validate(ref.spec)
        except ValidationError:
            return None
        return OverrideInput(ref.name, spec.tag)

    def _mapping(self, ref: RefInfo) -> MappingInput | None:
        try:
            spec = PagerDutyTagMappingSpec.model_validate(ref.spec)
        except ValidationError:
            return None
        return MappingInput(ref.name, tuple(spec.mappings))

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
                await self._write_ref_status(ref, waiting or fallback)
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
            await self._write_ref_status(ref, ref_ready(True, name, namespace, ref.kind, conflict))

    async def reconcile_ref(self, kind: str, namespace: str, name: str) -> float | None:
        world = self.world
        assert world is not None
        ref = world.ref(kind, namespace, name)
        if ref is None:
            for key in [k for k in self._written if k[:3] == (kind, namespace, name)]:
                self._written.pop(key, None)
            return None
        integration = world.integration(namespace, ref.integration)
        if integration is None or integration.deleting:
            await self._write_ref_status(ref, ref_ready(False, ref.integration, namespace, kind))
        else:
            self.integration_changed(namespace, ref.integration)
        return None

    async def _write_ref_status(self, ref: RefInfo, ready: ConditionUpdate) -> None:
        current = list(ref.status.get("conditions") or [])
        updates = [ready, reconciling_condition(ready)]
        new_conditions = c.apply_conditions(current, updates, ref.generation, c.now_rfc3339())
        desired = {"observedGeneration": ref.generation, "conditions": new_conditions}
        await self._write_status(ref.kind, ref.namespace, ref.name, ref.uid, ref.status, desired)

    # -- status + events --------------------------------------------------------------

    def _involved(
        self, uid: str, namespace: str, name: str, kind: str = INTEGRATION.kind
    ) -> dict[str, Any]:
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": kind,
            "name": name,
            "namespace": namespace,
            "uid": uid,
        }

    async def _write_status(
        self, kind: str, namespace: str, name: str, uid: str, current: Any, desired: dict[str, Any]
    ) -> None:
        # The indices may lag behind our own last write: compare with what we wrote too
        # (ignoring transition times), so a stale view neither rewrites nor re-announces.
        key = (kind, namespace, name, uid)  # a recreated object starts afresh
        essence = _essence(desired)
        last = self._written.get(key)
        if last is not None and last[0] == essence:
            return
        if not differs(dict(current), desired):
            self._written[key] = (essence, list(desired["conditions"]))
            return
        try:
            await self.kube.merge_patch(
                RESOURCES[kind], namespace, name, {"status": desired}, subresource="status"
            )
        except NotFound:
            return
        before = last[1] if last is not None else list(current.get("conditions") or [])
        self._written[key] = (essence, list(desired["conditions"]))
        for condition in c.transitions(before, desired["conditions"]):
            if condition["type"] != c.READY:
                continue
            if c.find(before, c.READY) is None and condition["reason"] == RELAY_STARTING:
                continue  # a new relay starting up is not news
            await post_event(
                self.kube,
                self._involved(uid, namespace, name, kind),
                reason=str(condition["reason"]),
                message=str(condition["message"]),
                warning=condition["status"] == c.FALSE,  # Unknown: a rollout, not a fault
            )
