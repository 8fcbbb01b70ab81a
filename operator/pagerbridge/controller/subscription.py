"""Lifecycle of the PagerDuty Webhooks v3 subscription of one integration.

The subscription exists while ``spec.pagerDuty.serviceId`` and ``apiToken`` are set. Its
signing secret (returned by PagerDuty only once, at creation) lives in the owned Secret
``<name>-pd-webhook`` together with the subscription id and delivery URL (annotations),
so the operator can tell, without calling PagerDuty, whether a subscription must be
created, or recreated because the relay's public URL changed. A periodic check
(``verify=True``) recreates a subscription someone deleted in PagerDuty.

Deletion goes through the integration's finalizer (:func:`remove`). When PagerDuty cannot
be reached the finalizer retries with backoff; to release an integration anyway, annotate
it ``pagerbridge.io/skip-cleanup: "true"`` (the subscription is then left in PagerDuty).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from pagerbridge.api import PagerDutyIntegrationSpec
from pagerbridge.api.contract import pagerduty_api_url
from pagerbridge.clients._http import CallLimits
from pagerbridge.clients.egress import EgressPolicy
from pagerbridge.clients.errors import ClientError
from pagerbridge.clients.kubernetes import KubernetesError, Resource
from pagerbridge.clients.pagerduty_subscriptions import PagerDutySubscriptions
from pagerbridge.controller import names as n
from pagerbridge.controller.errors import (
    KubernetesUnavailable,
    subscription_failure,
)
from pagerbridge.controller.kube_port import KubernetesPort
from pagerbridge.controller.observed import SecretState
from pagerbridge.controller.rendering import Owner, pagerduty_webhook_url, render_webhook_secret
from pagerbridge.controller.secret_values import read_secret_key

ANNOTATION_URL = "pagerbridge.io/subscription-url"
SECRETS = Resource.builtin("Secret")


@dataclass(frozen=True)
class SubscriptionOutcome:
    subscription_id: str | None
    changed: bool  # created or recreated by this call


def wanted(spec: PagerDutyIntegrationSpec) -> bool:
    return spec.pager_duty.service_id is not None and spec.pager_duty.api_token is not None


def api_url(spec: PagerDutyIntegrationSpec) -> str:
    return pagerduty_api_url(spec.pager_duty)


async def read_api_token(
    kube: KubernetesPort, namespace: str, spec: PagerDutyIntegrationSpec
) -> str:
    ref = spec.pager_duty.api_token
    assert ref is not None
    return await read_secret_key(kube, namespace, ref.name, ref.key, "spec.pagerDuty.apiToken")


async def ensure(
    kube: KubernetesPort,
    owner: Owner,
    spec: PagerDutyIntegrationSpec,
    stored: SecretState | None,
    *,
    verify: bool,
    policy: EgressPolicy,
    limits: CallLimits | None = None,
) -> SubscriptionOutcome:
    """Make sure PagerDuty has our subscription and we hold its secret."""
    url = pagerduty_webhook_url(owner, spec)
    stored_id = stored.annotations.get(n.ANNOTATION_SUBSCRIPTION_ID) if stored else None
    stored_url = stored.annotations.get(ANNOTATION_URL) if stored else None
    if stored_id and stored_url == url and not verify:
        return SubscriptionOutcome(stored_id, changed=False)

    token = await read_api_token(kube, owner.namespace, spec)
    service_id = spec.pager_duty.service_id
    assert service_id is not None
    try:
        async with PagerDutySubscriptions(
            api_url(spec), token, policy=policy, limits=limits
        ) as client:
            if stored_id and stored_url == url:
                current = await client.get(stored_id)
                if current is not None:
                    return SubscriptionOutcome(stored_id, changed=False)
            # Remove what we left behind: our URL + service, but not the secret we hold.
            for existing in await client.list():
                same_target = existing.delivery_method.url in (url, stored_url) and (
                    existing.filter is not None and existing.filter.id == service_id
                )
                if same_target or existing.id == stored_id:
                    await client.delete(existing.id)
            created = await client.create(
                url, service_id, f"PagerBridge {owner.namespace}/{owner.name}"
            )
    except ClientError as exc:
        raise subscription_failure(exc) from None
    if not created.delivery_method.secret:
        raise subscription_failure(ClientError("PagerDuty returned no signing secret"))
    manifest = render_webhook_secret(owner, created.delivery_method.secret, created.id)
    manifest["metadata"]["annotations"][ANNOTATION_URL] = url
    manifest["data"] = {
        key: base64.b64encode(value.encode()).decode()
        for key, value in manifest.pop("stringData").items()
    }
    try:
        await kube.apply(manifest)
    except KubernetesError as exc:
        raise KubernetesUnavailable(str(exc)) from None
    return SubscriptionOutcome(created.id, changed=True)


async def remove(
    kube: KubernetesPort,
    owner: Owner,
    spec: PagerDutyIntegrationSpec,
    stored: SecretState | None,
    *,
    policy: EgressPolicy,
    limits: CallLimits | None = None,
) -> bool:
    """Delete the subscription in PagerDuty; False when there was nothing to delete."""
    subscription_id = stored.annotations.get(n.ANNOTATION_SUBSCRIPTION_ID) if stored else None
    if not subscription_id or spec.pager_duty.api_token is None:
        return False
    token = await read_api_token(kube, owner.namespace, spec)
    try:
        async with PagerDutySubscriptions(
            api_url(spec), token, policy=policy, limits=limits
        ) as client:
            return await client.delete(subscription_id)
    except ClientError as exc:
        raise subscription_failure(exc) from None
