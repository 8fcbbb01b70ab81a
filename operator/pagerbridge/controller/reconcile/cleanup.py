"""What the finalizer does before an integration goes away: delete the PagerDuty webhook
subscription and (Managed mode) BigPanda's Webhook v2 integration.

Both deletions are idempotent (gone already = done), so a retried finalizer repeats them
safely. A transient failure raises :class:`kopf.TemporaryError` with a doubling delay and
posts a ``CleanupRetrying`` Event naming the escape hatch: the annotation
``pagerbridge.io/skip-cleanup: "true"`` releases the integration and leaves both in place.
The annotation takes effect at once, not at the finalizer's next retry: setting it
re-triggers the integration's reconcile, which (:func:`let_go`) removes the finalizer of an
integration stuck in deletion and posts a ``CleanupSkipped`` Event.
A credential Secret that is gone (e.g. the namespace is being deleted) cannot authenticate
anything: the finalizer lets go with a Warning Event instead of blocking forever; so does
a URL outside the admin's egress policy (``URLNotAllowed``), which no retry can fix.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import kopf
from pydantic import ValidationError

from pagerbridge.api import ConditionReason as Reason
from pagerbridge.api import PagerDutyIntegrationSpec
from pagerbridge.clients._http import CallLimits
from pagerbridge.clients.backoff import backoff
from pagerbridge.clients.egress import EgressPolicy
from pagerbridge.clients.kubernetes import KubernetesError, NotFound, Resource
from pagerbridge.controller import names as n
from pagerbridge.controller.errors import ReconcileError, SecretNotFound
from pagerbridge.controller.events import post_event
from pagerbridge.controller.external import bigpanda_integration, subscription
from pagerbridge.controller.kube_port import KubernetesPort
from pagerbridge.controller.ownership import OwnerStamp
from pagerbridge.controller.render.children import Owner
from pagerbridge.controller.state.observed import IntegrationInfo, SecretState

logger = logging.getLogger(__name__)
SKIP_CLEANUP_VALUES = {"true", "yes", "1"}


def needs_finalizer(spec: Mapping[str, Any], status: Mapping[str, Any] | None = None) -> bool:
    """Only an integration with something outside the cluster to clean up: a PagerDuty
    subscription or a Managed BigPanda integration, wanted by the spec or still recorded
    in status (removed by the reconciler first, e.g. after serviceId was dropped)."""
    pager_duty = spec.get("pagerDuty") or {}
    big_panda = spec.get("bigPanda") or {}
    webhook = (big_panda.get("webhook") if isinstance(big_panda, dict) else None) or {}
    has_subscription = isinstance(pager_duty, dict) and bool(
        pager_duty.get("serviceId") and pager_duty.get("apiToken")
    )
    if has_subscription or (isinstance(webhook, dict) and webhook.get("mode") == "Managed"):
        return True
    return bool(_recorded_subscription(status) or _recorded_bigpanda(status))


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
        f"subscription and BigPanda integration (if any) are left in place",
        warning=True,
    )
    return True


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
) -> None:
    if skip_requested(info):
        logger.warning("%s/%s: skip-cleanup set, external objects left", info.namespace, info.name)
        return
    try:
        spec = PagerDutyIntegrationSpec.model_validate(info.spec)
    except ValidationError:
        return
    owner = Owner(info.namespace, info.name, info.uid)
    stamp = OwnerStamp(cluster_id, info.uid)
    if stored_subscription is not None and stored_subscription.owner_uid != info.uid:
        stored_subscription = None  # a namesake Secret: its subscription id proves nothing
    steps: list[tuple[str, Callable[[], Awaitable[bool]]]] = [
        (
            "PagerDuty subscription",
            functools.partial(
                subscription.remove,
                kube,
                owner,
                spec,
                stored_subscription,
                policy=policy,
                stamp=stamp,
                limits=limits,
            ),
        )
    ]
    if bigpanda_integration.managed(spec) or _recorded_bigpanda(info.status):
        steps.append(
            (
                "BigPanda Webhook v2 integration",
                functools.partial(
                    bigpanda_integration.remove,
                    kube,
                    owner,
                    spec,
                    policy=policy,
                    stamp=stamp,
                    recorded_id=_recorded_bigpanda(info.status),
                    limits=limits,
                ),
            )
        )
    for what, step in steps:
        try:
            await step()
        except SecretNotFound as exc:
            await post_event(
                kube,
                involved,
                reason="CleanupSkipped",
                message=f"{what} not deleted: {exc.message}",
                warning=True,
            )
        except ReconcileError as exc:
            if exc.reason == Reason.URL_NOT_ALLOWED:  # no retry can fix it
                await post_event(
                    kube,
                    involved,
                    reason="CleanupSkipped",
                    message=f"{what} not deleted: {exc.message}",
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
