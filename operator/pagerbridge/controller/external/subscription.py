"""Lifecycle of the PagerDuty Webhooks v3 subscription of one integration.

The subscription exists while ``spec.pagerDuty.serviceId`` and ``apiToken`` are set. Its
signing secret (returned by PagerDuty only once, at creation) lives in the owned Secret
``<name>-pd-webhook`` together with the subscription id and delivery URL (annotations),
so the operator can tell, without calling PagerDuty, whether a subscription must be
created, or recreated because the relay's public URL changed. A periodic check
(``verify=True``) recreates a subscription someone deleted in PagerDuty, and reads the one
it finds (:func:`health`): inactive (PagerDuty disables a subscription whose deliveries
keep failing; a person may too), events or filter changed: it is set right again (``PUT``)
and the step reports it (condition ``SubscriptionActive``, an Event, a metric). The event
types are exactly what ``spec.sync`` needs (:func:`events`, one pure function): when the
spec changes them, the step verifies at once and the same ``PUT`` updates the live
subscription (reported as an update, not a repair).

Never adopt (see :mod:`.ownership`): our subscriptions carry the owner stamp in their
``description`` (``PagerBridge <ns>/<name> (pagerbridge-owner=<cluster>/<uid>)``). Only a
subscription that is ours is deleted or updated; one that merely delivers to the same URL
and service is left alone (a Warning Event names it). A subscription created before
stamps existed is recognised as ours when our own Secret records its id, its
description is exactly the old ``PagerBridge <ns>/<name>`` and it filters on our
service; the next verification stamps it (``PUT`` of its description).

Deletion goes through the integration's finalizer (:func:`remove`). When PagerDuty cannot
be reached the finalizer retries with backoff; to release an integration anyway, annotate
it ``pagerbridge.io/skip-cleanup: "true"`` (the subscription is then left in PagerDuty).
Adoption is explicit and opt-in (``pagerDuty.webhookSubscription.adopt.subscriptionId``):
the named subscription must carry no other owner's stamp (``NameConflict``) and exist
(``AdoptionTargetNotFound``). PagerDuty returns a signing secret only at creation, its
REST API has no call that rotates one (``delivery_method.secret`` is read-only and ``PUT``
does not change ``delivery_method``), and the operator needs the secret for the relay to
verify anything. So adoption replaces the subscription (:func:`_adopt`): stamp it (ours
from then on, so a failure half-way leaves nothing a later run cannot clean up), create
this integration's own per the spec (a new secret, stored in the webhook Secret with the
annotation :data:`ANNOTATION_ADOPTED_FROM`), then delete the adopted one. The old secret
is then worthless: the relay knows only the new one.

With ``spec.deletionPolicy: Orphan`` the finalizer calls :func:`orphan` instead: the
subscription stays, still delivering to the URL it had, and its description loses the
stamp (:func:`orphaned_description`), which is neither a stamp nor the legacy
description, so no integration, not even a namesake, recognises it as its own.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass

from pagerbridge.api import PagerDutyIntegrationSpec
from pagerbridge.api.contract import pagerduty_api_url
from pagerbridge.api.integration import WebhookScopeType
from pagerbridge.api.pagerduty_events import ANNOTATED, RESOLVED
from pagerbridge.clients._http import CallLimits
from pagerbridge.clients.egress import EgressPolicy
from pagerbridge.clients.errors import ClientError
from pagerbridge.clients.kubernetes import KubernetesError, NotFound, Resource
from pagerbridge.clients.pagerduty_subscriptions import (
    PagerDutySubscriptions,
    WebhookSubscription,
)
from pagerbridge.controller import names as n
from pagerbridge.controller.errors import (
    AdoptionTargetNotFound,
    KubernetesUnavailable,
    NameConflict,
    subscription_failure,
)
from pagerbridge.controller.kube_port import KubernetesPort
from pagerbridge.controller.ownership import OwnerStamp, conflict, owned_by, write_child
from pagerbridge.controller.render.children import (
    Owner,
    pagerduty_webhook_url,
    render_webhook_secret,
)
from pagerbridge.controller.state.observed import SecretState, secret_state
from pagerbridge.controller.state.secret_values import read_secret_key

logger = logging.getLogger(__name__)

ANNOTATION_URL = "pagerbridge.io/subscription-url"
ANNOTATION_ADOPTED_FROM = "pagerbridge.io/adopted-from"  # the subscription id adopted
SECRETS = Resource.builtin("Secret")


@dataclass(frozen=True)
class SubscriptionOutcome:
    subscription_id: str | None
    changed: bool  # created or recreated by this call
    foreign: tuple[str, ...] = ()  # same URL and service, not ours: left untouched
    stamped: bool = False  # a legacy subscription of ours now carries our stamp
    # Read from PagerDuty by this call (created, or verified): ``repaired`` then says what
    # was found wrong and set right ("inactive", "events", "filter").
    checked: bool = False
    repaired: tuple[str, ...] = ()
    adopted: str | None = None  # the id of the subscription this call adopted (and replaced)
    # It delivered types the spec does not need (an older operator's list, or a type the
    # spec turned off): now exactly the needed ones.
    narrowed: bool = False


def description(owner: Owner, stamp: OwnerStamp) -> str:
    return f"{legacy_description(owner)} ({stamp.text})"


def legacy_description(owner: Owner) -> str:
    """What subscriptions created before ownership stamps were described as."""
    return f"PagerBridge {owner.namespace}/{owner.name}"


def orphaned_description(owner: Owner) -> str:
    """An orphaned subscription's description: readable, and no stamp (:func:`ours` of
    any integration is False for it)."""
    return f"{legacy_description(owner)} (orphaned: no longer managed by PagerBridge)"


def ours(
    subscription: WebhookSubscription,
    owner: Owner,
    stamp: OwnerStamp,
    *,
    recorded_id: str | None,
    service_id: str | None,
) -> bool:
    """Stamped by us; or (legacy, before stamps) recorded in our Secret, described as the
    old operator described ours, and filtered on our service."""
    found = OwnerStamp.find(subscription.description)
    if found is not None:
        return found == stamp
    return (
        subscription.id == recorded_id
        and subscription.description == legacy_description(owner)
        and subscription.filter is not None
        and subscription.filter.id == service_id
    )


def wanted_filter(spec: PagerDutyIntegrationSpec) -> tuple[str, str | None]:
    """The PagerDuty filter of ``spec.pagerDuty.webhookScope``: (type, id)."""
    pd = spec.pager_duty
    scope = pd.webhook_scope
    if scope.type is WebhookScopeType.TEAM:
        return "team_reference", scope.team_id
    if scope.type is WebhookScopeType.ACCOUNT:
        return "account_reference", None
    return "service_reference", pd.service_id


def events(spec: PagerDutyIntegrationSpec) -> tuple[str, ...]:
    """The event types our subscription delivers: exactly what ``spec.sync`` turns on.

    ``incident.resolved`` for ``sync.resolve``, ``incident.annotated`` for notes, and each
    type of the ``sync.pagerDutyEvents`` matrix (with the deprecated ``sync.acknowledge``).
    Empty: nothing to deliver, so no subscription (PagerDuty requires at least one type).
    """
    wanted_events: list[str] = []
    if spec.sync.resolve:
        wanted_events.append(RESOLVED)
    if spec.notes_enabled:
        wanted_events.append(ANNOTATED)
    wanted_events.extend(spec.sync.pagerduty_comment_events)
    return tuple(wanted_events)


def health(
    subscription: WebhookSubscription,
    wanted: tuple[str, str | None],
    wanted_events: tuple[str, ...],
) -> tuple[str, ...]:
    """What is wrong with our subscription as PagerDuty has it: ``inactive`` (PagerDuty
    disables a subscription whose deliveries keep failing; a person may too), ``events``
    (a type ``spec.sync`` needs is missing),
    ``filter`` (not our service). More types than needed is not wrong but
    :func:`surplus` (what an older operator subscribed to, or a type the spec turned off)."""
    wrong: list[str] = []
    if not subscription.active:
        wrong.append("inactive")
    if not set(wanted_events) <= set(subscription.events):
        wrong.append("events")
    filter_ = subscription.filter
    if filter_ is None or (filter_.type, filter_.id) != wanted:
        wrong.append("filter")
    return tuple(wrong)


def surplus(subscription: WebhookSubscription, wanted_events: tuple[str, ...]) -> bool:
    """The subscription delivers types ``spec.sync`` does not need: narrowed to exactly
    the needed ones (an update, reported as such, not a repair)."""
    return not set(subscription.events) <= set(wanted_events)


def wanted(spec: PagerDutyIntegrationSpec) -> bool:
    return (
        spec.pager_duty.service_id is not None
        and spec.pager_duty.api_token is not None
        and bool(events(spec))
    )


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
    stamp: OwnerStamp,
    limits: CallLimits | None = None,
) -> SubscriptionOutcome:
    """Make sure PagerDuty has our subscription and we hold its secret.

    ``stored``: our webhook Secret (its owner UID already checked by the caller). Only
    subscriptions that are ours (:func:`ours`) are ever deleted or updated; another one
    delivering to the same URL and service is reported in ``foreign`` and left alone.
    """
    url = pagerduty_webhook_url(owner, spec)
    if stored is None:  # not in our index: a namesake (conflict), or ours unlabelled
        stored = await read_owned_secret(  # before PagerDuty is called
            kube, owner, owner.child_namespace, owner.names.webhook_secret
        )
    stored_id = stored.annotations.get(n.ANNOTATION_SUBSCRIPTION_ID) if stored else None
    stored_url = stored.annotations.get(ANNOTATION_URL) if stored else None
    adopt = adoption_pending(spec, stored)
    if stored_id and stored_url == url and not verify and adopt is None:
        return SubscriptionOutcome(stored_id, changed=False)

    token = await read_api_token(kube, owner.child_namespace, spec)
    service_id = spec.pager_duty.service_id
    assert service_id is not None
    scope = wanted_filter(spec)
    wanted_events = events(spec)
    foreign: list[str] = []
    try:
        async with PagerDutySubscriptions(
            api_url(spec), token, policy=policy, limits=limits
        ) as client:
            if adopt is not None:
                return await _adopt(client, kube, owner, spec, stored, stamp, url, adopt)
            if stored_id:
                current = await client.get(stored_id)
                mine = current is not None and ours(
                    current, owner, stamp, recorded_id=stored_id, service_id=service_id
                )
                if current is not None and mine and stored_url == url:
                    # Legacy (created before stamps): stamp it, in the same PUT as any fix.
                    stamped = OwnerStamp.find(current.description) is None
                    stamp_text = description(owner, stamp) if stamped else None
                    wrong = health(current, scope, wanted_events)
                    narrowed = surplus(current, wanted_events)
                    if wrong or narrowed:  # disabled, edited, or more types than needed
                        await client.update(
                            stored_id,
                            active=True,
                            events=wanted_events,
                            filter_type=scope[0],
                            filter_id=scope[1],
                            description=stamp_text,
                        )
                    elif stamp_text is not None:
                        await client.update_description(stored_id, stamp_text)
                    return SubscriptionOutcome(
                        stored_id,
                        changed=False,
                        stamped=stamped,
                        checked=True,
                        repaired=wrong,
                        narrowed=narrowed,
                    )
                if current is not None and mine:  # the relay URL moved: replace ours
                    await client.delete(stored_id)
            # Leftovers of ours (created, then the Secret write failed): our stamp only.
            for existing in await client.list():
                if existing.id == stored_id:
                    continue
                if ours(existing, owner, stamp, recorded_id=None, service_id=service_id):
                    await client.delete(existing.id)
                elif existing.delivery_method.url in (url, stored_url) and (
                    existing.filter is not None and existing.filter.id in (service_id, scope[1])
                ):
                    foreign.append(existing.id)
            created = await client.create(
                url,
                scope[1],
                description(owner, stamp),
                filter_type=scope[0],
                events=wanted_events,
            )
            if not created.delivery_method.secret:
                raise ClientError("PagerDuty returned no signing secret")
            try:
                await _store_secret(kube, owner, created, url, stored)
            except NameConflict:
                await client.delete(created.id)  # ours, and its secret has nowhere to go
                raise
    except ClientError as exc:
        raise subscription_failure(exc) from None
    return SubscriptionOutcome(
        created.id, changed=True, foreign=tuple(foreign), checked=True, repaired=()
    )


def adoption_pending(spec: PagerDutyIntegrationSpec, stored: SecretState | None) -> str | None:
    """The subscription id to adopt now: ``adopt`` asks for one that is neither ours (the
    id our Secret records) nor already adopted (the one it records as adopted from)."""
    settings = spec.pager_duty.webhook_subscription
    if settings is None or settings.adopt is None:
        return None
    wanted_id = settings.adopt.subscription_id
    marks = stored.annotations if stored is not None else {}
    if wanted_id in (marks.get(n.ANNOTATION_SUBSCRIPTION_ID), marks.get(ANNOTATION_ADOPTED_FROM)):
        return None
    return wanted_id


async def _adopt(
    client: PagerDutySubscriptions,
    kube: KubernetesPort,
    owner: Owner,
    spec: PagerDutyIntegrationSpec,
    stored: SecretState | None,
    stamp: OwnerStamp,
    url: str,
    adopt: str,
) -> SubscriptionOutcome:
    """Take over subscription ``adopt`` (see the module doc): stamp, replace, delete."""
    current = await client.get(adopt)
    if current is None:
        raise AdoptionTargetNotFound(
            f"PagerDuty webhook subscription {adopt} (pagerDuty.webhookSubscription.adopt) "
            "does not exist: check the id"
        )
    found = OwnerStamp.find(current.description)
    if found is not None and found != stamp:
        raise NameConflict(
            f"PagerDuty webhook subscription {adopt} carries another PagerBridge "
            "integration's ownership stamp: not adopted. Delete that integration with "
            "deletionPolicy Orphan first (or remove the stamp from the description)"
        )
    if found is None:  # ours from now on: a failure below leaves nothing unaccounted for
        await client.update_description(adopt, description(owner, stamp))
    scope = wanted_filter(spec)
    created = await client.create(url, scope[1], description(owner, stamp), filter_type=scope[0])
    if not created.delivery_method.secret:
        raise ClientError("PagerDuty returned no signing secret")
    try:
        await _store_secret(kube, owner, created, url, stored, adopted_from=adopt)
    except NameConflict:
        await client.delete(created.id)
        raise
    await client.delete(adopt)
    previous = stored.annotations.get(n.ANNOTATION_SUBSCRIPTION_ID) if stored else None
    if previous and previous != adopt:  # the one this integration had: replaced as well
        old = await client.get(previous)
        service_id = spec.pager_duty.service_id
        if old is not None and ours(old, owner, stamp, recorded_id=previous, service_id=service_id):
            await client.delete(previous)
    return SubscriptionOutcome(created.id, changed=True, checked=True, adopted=adopt)


async def read_owned_secret(
    kube: KubernetesPort, owner: Owner, namespace: str, name: str
) -> SecretState | None:
    """A Secret of ours read by name (None: absent); NameConflict when it is not ours, so
    no external object is made whose secret (signing secret, routing key) would have
    nowhere to go."""
    try:
        current = await kube.get(SECRETS, namespace, name)
    except NotFound:
        return None
    except KubernetesError as exc:
        raise KubernetesUnavailable(str(exc)) from None
    if not owned_by(current, owner.uid):
        raise conflict("Secret", namespace, name, owner.name)
    return secret_state(current)


async def _store_secret(
    kube: KubernetesPort,
    owner: Owner,
    created: WebhookSubscription,
    url: str,
    stored: SecretState | None,
    *,
    adopted_from: str | None = None,
) -> None:
    assert created.delivery_method.secret
    manifest = render_webhook_secret(owner, created.delivery_method.secret, created.id)
    manifest["metadata"]["annotations"][ANNOTATION_URL] = url
    if adopted_from is None and stored is not None:
        adopted_from = stored.annotations.get(ANNOTATION_ADOPTED_FROM)  # kept on recreation
    if adopted_from is not None:
        manifest["metadata"]["annotations"][ANNOTATION_ADOPTED_FROM] = adopted_from
    manifest["data"] = {
        key: base64.b64encode(value.encode()).decode()
        for key, value in manifest.pop("stringData").items()
    }
    try:
        await write_child(kube, manifest, owner.uid, stored.uid if stored and stored.uid else None)
    except NameConflict:
        raise
    except KubernetesError as exc:
        raise KubernetesUnavailable(str(exc)) from None


async def remove(
    kube: KubernetesPort,
    owner: Owner,
    spec: PagerDutyIntegrationSpec,
    stored: SecretState | None,
    *,
    policy: EgressPolicy,
    stamp: OwnerStamp,
    limits: CallLimits | None = None,
) -> bool:
    """Delete our subscription in PagerDuty; False when there was nothing of ours to
    delete (gone, or not ours: then it is left in place)."""
    subscription_id = stored.annotations.get(n.ANNOTATION_SUBSCRIPTION_ID) if stored else None
    if not subscription_id or spec.pager_duty.api_token is None:
        return False
    token = await read_api_token(kube, owner.child_namespace, spec)
    try:
        async with PagerDutySubscriptions(
            api_url(spec), token, policy=policy, limits=limits
        ) as client:
            current = await client.get(subscription_id)
            if current is None:
                return False
            service_id = spec.pager_duty.service_id
            if not ours(current, owner, stamp, recorded_id=subscription_id, service_id=service_id):
                logger.warning(
                    "%s/%s: PagerDuty subscription %s is not ours: not deleted",
                    owner.namespace,
                    owner.name,
                    subscription_id,
                )
                return False
            return await client.delete(subscription_id)
    except ClientError as exc:
        raise subscription_failure(exc) from None


async def orphan(
    kube: KubernetesPort,
    owner: Owner,
    spec: PagerDutyIntegrationSpec,
    stored: SecretState | None,
    *,
    policy: EgressPolicy,
    stamp: OwnerStamp,
    limits: CallLimits | None = None,
) -> str | None:
    """Leave our subscription in PagerDuty without our stamp (``spec.deletionPolicy:
    Orphan``): only its description changes. Returns its id, None when there was nothing
    of ours (gone, or not ours: then it is not touched)."""
    subscription_id = stored.annotations.get(n.ANNOTATION_SUBSCRIPTION_ID) if stored else None
    if not subscription_id or spec.pager_duty.api_token is None:
        return None
    token = await read_api_token(kube, owner.child_namespace, spec)
    try:
        async with PagerDutySubscriptions(
            api_url(spec), token, policy=policy, limits=limits
        ) as client:
            current = await client.get(subscription_id)
            if current is None:
                return None
            service_id = spec.pager_duty.service_id
            if not ours(current, owner, stamp, recorded_id=subscription_id, service_id=service_id):
                return None
            await client.update_description(subscription_id, orphaned_description(owner))
            return subscription_id
    except ClientError as exc:
        raise subscription_failure(exc) from None
