"""What the finalizer does before an integration goes away: delete the PagerDuty webhook
subscription, the managed routing key's Events API v2 integration
(``pagerDuty.routingKey.managed``) and (Managed mode) BigPanda's Webhook v2 integration,
or, with ``spec.deletionPolicy: Orphan``, leave them in place without our ownership stamp.

Each external object is one :class:`ExternalObject` (what it is, how to delete it, how to
orphan it), listed by :func:`external_objects`; :func:`dispose` applies the policy to one.
A new kind of external object plugs in there, and nowhere else.

Both deletions are idempotent (gone already = done), so a retried finalizer repeats them
safely. A transient failure raises :class:`kopf.TemporaryError` with a doubling delay and
posts a ``CleanupRetrying`` Event naming the escape hatch: the annotation
``pagerbridge.io/skip-cleanup: "true"`` releases the integration and leaves both in place.
The annotation takes effect at once, not at the finalizer's next retry: setting it
re-triggers the integration's reconcile, which (:func:`let_go`) removes the finalizer of an
integration stuck in deletion and posts a ``CleanupSkipped`` Event.
A paused integration's deletion waits (``CleanupPaused``, re-checked every
:data:`PAUSED_CLEANUP_RECHECK` seconds) until the pause ends; skip-cleanup still lets go.
A credential Secret that is gone (e.g. the namespace is being deleted) cannot authenticate
anything: the finalizer lets go with a Warning Event instead of blocking forever; so does
a URL outside the admin's egress policy (``URLNotAllowed``), which no retry can fix.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import kopf
from pydantic import ValidationError

from pagerbridge.api import ConditionReason as Reason
from pagerbridge.api import DeletionPolicy, PagerDutyIntegrationSpec
from pagerbridge.clients._http import CallLimits
from pagerbridge.clients.backoff import backoff
from pagerbridge.clients.egress import EgressPolicy
from pagerbridge.clients.kubernetes import KubernetesError, NotFound, Resource
from pagerbridge.controller import names as n
from pagerbridge.controller.errors import ReconcileError, SecretNotFound
from pagerbridge.controller.events import post_event
from pagerbridge.controller.external import bigpanda_integration, routing_key, subscription
from pagerbridge.controller.kube_port import KubernetesPort
from pagerbridge.controller.ownership import OwnerStamp, owned_by
from pagerbridge.controller.reconcile import shared
from pagerbridge.controller.render import pause
from pagerbridge.controller.render.children import Owner
from pagerbridge.controller.settings import OperatorSettings
from pagerbridge.controller.state.observed import IntegrationInfo, SecretState
from pagerbridge.controller.steps import token_rotation

logger = logging.getLogger(__name__)
SKIP_CLEANUP_VALUES = n.TRUE_VALUES
SECRETS = Resource.builtin("Secret")
PAUSED_CLEANUP_RECHECK = 15.0  # seconds: how soon a deletion notices the pause ended
DEFAULT_TOKEN_GRACE = OperatorSettings.token_rotation_grace_seconds


def needs_finalizer(spec: Mapping[str, Any], status: Mapping[str, Any] | None = None) -> bool:
    """Only an integration with something outside the cluster to clean up: a PagerDuty
    subscription or a Managed BigPanda integration, wanted by the spec or still recorded
    in status (removed by the reconciler first, e.g. after serviceId was dropped); and
    one using a shared account (its children in the account namespace, :mod:`.shared`)."""
    pager_duty = spec.get("pagerDuty") or {}
    big_panda = spec.get("bigPanda") or {}
    webhook = (big_panda.get("webhook") if isinstance(big_panda, dict) else None) or {}
    has_subscription = isinstance(pager_duty, dict) and bool(
        pager_duty.get("serviceId") and pager_duty.get("apiToken")
    )
    if has_subscription or (isinstance(webhook, dict) and webhook.get("mode") == "Managed"):
        return True
    if _managed_routing_key(spec):
        return True
    if isinstance(pager_duty, dict) and pager_duty.get("accountRef"):
        return True  # children in the account namespace: no garbage collector for them
    return bool(
        _recorded_subscription(status)
        or _recorded_bigpanda(status)
        or _recorded_routing_key(status)
    )


def _managed_routing_key(spec: Mapping[str, Any]) -> bool:
    pager_duty = spec.get("pagerDuty") or {}
    routing = pager_duty.get("routingKey") if isinstance(pager_duty, Mapping) else None
    return isinstance(routing, Mapping) and routing.get("managed") is True


def _recorded_routing_key(status: Mapping[str, Any] | None) -> str | None:
    recorded = (status or {}).get("pagerDutyRoutingKey") or {}
    if isinstance(recorded, Mapping) and recorded.get("integrationId"):
        return str(recorded["integrationId"])
    return None


def _recorded_subscription(status: Mapping[str, Any] | None) -> str | None:
    recorded = (status or {}).get("pagerDutySubscription") or {}
    return str(recorded["id"]) if isinstance(recorded, Mapping) and recorded.get("id") else None


def _recorded_bigpanda(status: Mapping[str, Any] | None) -> str | None:
    recorded = (status or {}).get("bigPandaWebhook") or {}
    if isinstance(recorded, Mapping) and recorded.get("integrationId"):
        return str(recorded["integrationId"])
    return None


def skip_requested(info: IntegrationInfo) -> bool:
    return info.annotations.get(n.ANNOTATION_SKIP_CLEANUP, "").lower() in SKIP_CLEANUP_VALUES


async def let_go(
    kube: KubernetesPort, resource: Resource, info: IntegrationInfo, involved: dict[str, str]
) -> bool:
    """skip-cleanup on an integration stuck in deletion: remove our finalizer now.

    The patch carries the observed ``resourceVersion``, so it never drops a finalizer
    someone else added meanwhile (a conflict re-triggers the reconcile with fresh state).
    """
    if not (info.deleting and n.FINALIZER in info.finalizers and skip_requested(info)):
        return False
    remaining = [f for f in info.finalizers if f != n.FINALIZER]
    patch = {"metadata": {"finalizers": remaining, "resourceVersion": info.resource_version}}
    try:
        await kube.merge_patch(resource, info.namespace, info.name, patch)
    except NotFound:
        return False
    except KubernetesError as exc:
        if exc.status == 409:  # changed meanwhile (e.g. kopf let go): the next event decides
            return False
        raise
    logger.warning("%s/%s: skip-cleanup set, external objects left", info.namespace, info.name)
    await post_event(
        kube,
        involved,
        reason="CleanupSkipped",
        message=f"{n.ANNOTATION_SKIP_CLEANUP} is set: finalizer removed; the PagerDuty "
        f"subscription, managed routing key and BigPanda integration (if any) are left "
        "in place",
        warning=True,
    )
    return True


@dataclass(frozen=True)
class ExternalObject:
    """One object the integration made outside the cluster, as the finalizer sees it: the
    seam every kind plugs into (PagerDuty subscription, BigPanda integration, a managed
    routing key...). Both callables are idempotent: a retried finalizer repeats them.

    ``delete``: delete it if it is ours (False: nothing of ours to delete).
    ``orphan``: leave it in place and remove our ownership stamp; the id left in place,
    None when there was nothing of ours (then nothing is said)."""

    what: str  # for Events, e.g. "PagerDuty subscription"
    delete: Callable[[], Awaitable[bool]]
    orphan: Callable[[], Awaitable[str | None]]


async def dispose(
    kube: KubernetesPort, involved: dict[str, str], obj: ExternalObject, policy: DeletionPolicy
) -> None:
    """Delete or orphan ``obj`` per ``spec.deletionPolicy``; an orphaned one is announced
    (Event ``Orphaned``), since it keeps working outside the cluster after we are gone."""
    if policy is DeletionPolicy.DELETE:
        await obj.delete()
        return
    left = await obj.orphan()
    if left is not None:
        await post_event(
            kube,
            involved,
            reason="Orphaned",
            message=f"deletionPolicy Orphan: {obj.what} {left} is left in place, still "
            "delivering where it did, without its ownership stamp (adopt it explicitly "
            "to manage it again)",
            warning=False,
        )


def external_objects(
    kube: KubernetesPort,
    info: IntegrationInfo,
    spec: PagerDutyIntegrationSpec,
    stored_subscription: SecretState | None,
    *,
    policy: EgressPolicy,
    stamp: OwnerStamp,
    token_grace: float,
    limits: CallLimits | None,
    owner: Owner | None = None,
) -> list[ExternalObject]:
    """What this integration may have made outside the cluster, in the order cleaned up
    (``owner``: where its Secrets are, by default its own namespace)."""
    owner = owner or Owner(info.namespace, info.name, info.uid)
    subscription_args = (kube, owner, spec, stored_subscription)
    objects = [
        ExternalObject(
            "PagerDuty subscription",
            functools.partial(
                subscription.remove, *subscription_args, policy=policy, stamp=stamp, limits=limits
            ),
            functools.partial(
                subscription.orphan, *subscription_args, policy=policy, stamp=stamp, limits=limits
            ),
        )
    ]
    if routing_key.managed(spec) or _recorded_routing_key(info.status):
        routing_key_args = (kube, owner, spec)
        objects.append(
            ExternalObject(
                "PagerDuty Events API v2 integration (managed routing key)",
                functools.partial(
                    routing_key.remove, *routing_key_args, policy=policy, stamp=stamp, limits=limits
                ),
                functools.partial(
                    routing_key.orphan, *routing_key_args, policy=policy, stamp=stamp, limits=limits
                ),
            )
        )
    recorded = _recorded_bigpanda(info.status)
    if bigpanda_integration.managed(spec) or recorded:

        async def orphan_bigpanda() -> str | None:
            token = await _bigpanda_token(kube, owner, token_grace)
            return await bigpanda_integration.orphan(
                kube,
                owner,
                spec,
                token=token,
                policy=policy,
                stamp=stamp,
                recorded_id=recorded,
                limits=limits,
            )

        objects.append(
            ExternalObject(
                "BigPanda Webhook v2 integration",
                functools.partial(
                    bigpanda_integration.remove,
                    kube,
                    owner,
                    spec,
                    policy=policy,
                    stamp=stamp,
                    recorded_id=recorded,
                    limits=limits,
                ),
                orphan_bigpanda,
            )
        )
    return objects


async def _bigpanda_token(kube: KubernetesPort, owner: Owner, grace: float) -> str | None:
    """The inbound token BigPanda sends now (mid-rotation: the one the rotation has it
    send), from our token Secret; None when it is gone or not ours."""
    try:
        secret = await kube.get(SECRETS, owner.child_namespace, owner.names.token_secret)
    except NotFound:
        return None
    if not owned_by(secret, owner.uid):
        return None
    tokens = token_rotation.decode_tokens(secret, n.TOKEN_KEY)
    if not tokens:
        return None
    annotations = dict((secret.get("metadata") or {}).get("annotations") or {})
    # No rotation request: plan only reads where a rotation under way stands (never calls
    # its new-token function).
    step = token_rotation.plan(None, tokens, annotations, time.time(), grace, lambda: "")
    return step.bigpanda_token


async def release(
    kube: KubernetesPort,
    info: IntegrationInfo,
    involved: dict[str, str],
    stored_subscription: SecretState | None,
    retry: int,
    *,
    policy: EgressPolicy,
    cluster_id: str,
    limits: CallLimits | None = None,
    token_grace: float = DEFAULT_TOKEN_GRACE,
    owner: Owner | None = None,
    spec: PagerDutyIntegrationSpec | None = None,
) -> None:
    """Delete, or orphan (``spec.deletionPolicy``), each external object of ours.

    ``owner``: where the children are (default: the integration's namespace); ``spec``:
    the spec with its accounts' credentials (default: the integration's own)."""
    owner = owner or Owner(info.namespace, info.name, info.uid)
    if skip_requested(info):
        logger.warning("%s/%s: skip-cleanup set, external objects left", info.namespace, info.name)
        await _delete_shared_children(kube, owner)
        return
    if pause.paused(info.annotations):  # deletion waits for the pause to end, like Crossplane
        if retry == 0:
            await post_event(
                kube,
                involved,
                reason="CleanupPaused",
                message=f"{n.ANNOTATION_PAUSED} is set: the deletion waits until it is "
                "removed (the external objects are then deleted or orphaned per "
                f"deletionPolicy); to let go now without cleaning up, annotate "
                f'{n.ANNOTATION_SKIP_CLEANUP}="true"',
                warning=True,
            )
        raise kopf.TemporaryError("paused", delay=PAUSED_CLEANUP_RECHECK)
    if spec is None:
        try:
            spec = PagerDutyIntegrationSpec.model_validate(info.spec)
        except ValidationError:
            await _delete_shared_children(kube, owner)
            return
        if spec.uses_account:  # the account is gone: no token deletes the external objects
            await _delete_shared_children(kube, owner)
            return
    stamp = OwnerStamp(cluster_id, info.uid)
    if stored_subscription is not None and stored_subscription.owner_uid != info.uid:
        stored_subscription = None  # a namesake Secret: its subscription id proves nothing
    objects = external_objects(
        kube,
        info,
        spec,
        stored_subscription,
        policy=policy,
        stamp=stamp,
        token_grace=token_grace,
        limits=limits,
        owner=owner,
    )
    verb = "orphaned" if spec.deletion_policy is DeletionPolicy.ORPHAN else "deleted"
    for obj in objects:
        what = obj.what
        try:
            await dispose(kube, involved, obj, spec.deletion_policy)
        except SecretNotFound as exc:
            await post_event(
                kube,
                involved,
                reason="CleanupSkipped",
                message=f"{what} not {verb}: {exc.message}",
                warning=True,
            )
        except ReconcileError as exc:
            if exc.reason == Reason.URL_NOT_ALLOWED:  # no retry can fix it
                await post_event(
                    kube,
                    involved,
                    reason="CleanupSkipped",
                    message=f"{what} not {verb}: {exc.message}",
                    warning=True,
                )
                continue
            # No jitter: the delay is quoted in the Event and handed to kopf as it is.
            delay = backoff(min(retry, 5), base=exc.retry_after or 15.0, cap=300.0, jitter=(1, 1))
            await post_event(
                kube,
                involved,
                reason="CleanupRetrying",
                message=f"{what}: {exc.message}; retrying in {delay:.0f}s. To delete anyway, "
                f'annotate {n.ANNOTATION_SKIP_CLEANUP}="true" (it then stays in place)',
                warning=True,
            )
            raise kopf.TemporaryError(exc.message, delay=delay) from None
    await _delete_shared_children(kube, owner)  # last: orphaning may read the token Secret


async def _delete_shared_children(kube: KubernetesPort, owner: Owner) -> None:
    """A shared account's relay: its children in the account namespace (:mod:`.shared`)."""
    try:
        await shared.delete_children(kube, owner)
    except KubernetesError as exc:
        raise kopf.TemporaryError(f"children in {owner.child_namespace}: {exc}", delay=15) from None
