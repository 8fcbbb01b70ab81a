"""Lifecycle of the managed routing key (``pagerDuty.routingKey.managed: true``).

The operator creates an Events API v2 integration on ``pagerDuty.serviceId`` through
PagerDuty's REST API (see :mod:`pagerbridge.clients.pagerduty_service_integrations`) and
writes its ``integration_key`` into the Secret ``<name>-pd-routing-key`` it owns (key
``routing-key``; ownerReference to the integration), which the relay mounts as its
routing key file: the relay's configuration has the same shape as with a user's Secret.
The Secret's annotations record the integration id, its service and a digest of the key
(never the key), so a reconcile needs no PagerDuty call while they agree with the spec.

Never adopt (see :mod:`.ownership`): ours carry the owner stamp in their ``name``
(``PagerBridge <ns>/<name> routing key (pagerbridge-owner=<cluster>/<uid>)``), the one
text field PagerDuty lets a client set on an integration. Only an integration whose stamp
is ours is renamed or deleted. One carrying our name without a stamp is a
``NameConflict`` (someone made it by hand, or it was orphaned): left as it is.

Crash safety: PagerDuty has no idempotency key, so before creating, the service's
integrations are listed and one stamped by us is taken back (its key read again) rather
than a second one created. A crash between the create and the Secret write therefore
leaves nothing behind but the integration the next reconcile finds. Duplicates of ours (a
race between two operators of one cluster) are deleted, the oldest id kept.

Drift: a periodic verification (``verify=True``) reads the recorded integration; one
deleted in PagerDuty is created again (a new key: the Secret is rewritten and the relay,
which reads its mounted files again, sends the new one), a Secret deleted by hand is
written again from PagerDuty's answer, and a key PagerDuty holds that differs from the
digest is written again.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from pagerbridge.api import PagerDutyIntegrationSpec
from pagerbridge.api.contract import is_routing_key, pagerduty_api_url
from pagerbridge.clients._http import CallLimits
from pagerbridge.clients.egress import EgressPolicy
from pagerbridge.clients.errors import ClientError, MalformedResponse, Rejected
from pagerbridge.clients.kubernetes import KubernetesError, NotFound, Resource
from pagerbridge.clients.pagerduty_service_integrations import (
    PagerDutyServiceIntegrations,
    ServiceIntegration,
)
from pagerbridge.controller import names as n
from pagerbridge.controller.errors import (
    KubernetesUnavailable,
    NameConflict,
    routing_key_failure,
)
from pagerbridge.controller.external.subscription import read_api_token, read_owned_secret
from pagerbridge.controller.kube_port import KubernetesPort
from pagerbridge.controller.ownership import OwnerStamp, owned_by, write_child
from pagerbridge.controller.render.children import Owner, render_routing_key_secret
from pagerbridge.controller.state.observed import SecretState, secret_state

logger = logging.getLogger(__name__)

SECRETS = Resource.builtin("Secret")


def managed(spec: PagerDutyIntegrationSpec) -> bool:
    routing = spec.pager_duty.routing_key
    return routing is not None and bool(routing.managed)


def unstamped_name(owner: Owner) -> str:
    """Our integration's name without the stamp (what an orphaned one is renamed to)."""
    return f"PagerBridge {owner.namespace}/{owner.name} routing key"


def integration_name(owner: Owner, stamp: OwnerStamp) -> str:
    return f"{unstamped_name(owner)} ({stamp.text})"


def key_digest(key: str) -> str:
    """What the Secret's annotation records of the key: enough to notice a change, not to
    recover it (a SHA-256 prefix of 32 random characters)."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


# -- pure decisions ------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """What our Secret says: the integration, its service, whether it holds a key."""

    integration_id: str | None
    service_id: str | None
    digest: str | None
    has_key: bool

    @classmethod
    def of(cls, stored: SecretState | None) -> Recorded:
        if stored is None:
            return cls(None, None, None, False)
        marks = stored.annotations
        return cls(
            marks.get(n.ANNOTATION_ROUTING_KEY_INTEGRATION) or None,
            marks.get(n.ANNOTATION_ROUTING_KEY_SERVICE) or None,
            marks.get(n.ANNOTATION_ROUTING_KEY_DIGEST) or None,
            n.ROUTING_KEY_KEY in stored.info.keys,
        )

    def current(self, service_id: str) -> bool:
        """The Secret holds the key of an integration on ``service_id``: nothing to call."""
        return bool(self.integration_id) and self.service_id == service_id and self.has_key


@dataclass(frozen=True)
class Sorted:
    """A service's integrations, as far as this integration is concerned."""

    mine: ServiceIntegration | None  # ours (the oldest id when several)
    duplicates: tuple[str, ...] = ()  # more of ours: deleted
    unstamped: str | None = None  # an integration with our name and no stamp (NameConflict)


def sort_out(integrations: Sequence[ServiceIntegration], owner: Owner, stamp: OwnerStamp) -> Sorted:
    """Which integrations are ours (our stamp in the name), and whether one that is not
    ours carries our name; another owner's stamp is another owner's business."""
    ours = sorted(
        (i for i in integrations if OwnerStamp.find(i.label) == stamp), key=lambda i: i.id
    )
    bare = unstamped_name(owner)
    unstamped = next(
        (i.id for i in integrations if OwnerStamp.find(i.label) is None and i.label == bare),
        None,
    )
    if not ours:
        return Sorted(None, unstamped=unstamped)
    return Sorted(ours[0], tuple(i.id for i in ours[1:]), unstamped)


def ours(integration: ServiceIntegration | None, stamp: OwnerStamp) -> bool:
    return integration is not None and OwnerStamp.find(integration.label) == stamp


# -- effects -------------------------------------------------------------------------


@dataclass(frozen=True)
class RoutingKeyOutcome:
    integration_id: str
    service_id: str
    created: bool = False  # a new integration (first time, or after a deletion)
    recreated: bool = False  # ... because the recorded one was deleted in PagerDuty
    restored: bool = False  # the Secret written again from PagerDuty's key
    duplicates: tuple[str, ...] = ()  # extra integrations of ours, deleted
    checked: bool = False  # PagerDuty was read by this call


def _client(
    spec: PagerDutyIntegrationSpec, token: str, policy: EgressPolicy, limits: CallLimits | None
) -> PagerDutyServiceIntegrations:
    return PagerDutyServiceIntegrations(
        pagerduty_api_url(spec.pager_duty), token, policy=policy, limits=limits
    )


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
) -> RoutingKeyOutcome:
    """Make sure the service has our Events API v2 integration and our Secret its key.

    ``stored``: our routing key Secret from the index (its owner UID checked by the
    caller); None: read by name here, a namesake not ours being a ``NameConflict`` raised
    before PagerDuty is called. ``spec.pagerDuty.apiToken`` must be set (the caller says
    ``ApiTokenRequired`` otherwise).
    """
    service_id = spec.pager_duty.service_id
    assert service_id is not None
    if stored is None:
        stored = await read_owned_secret(
            kube, owner, owner.namespace, owner.names.routing_key_secret
        )
    recorded = Recorded.of(stored)
    if recorded.current(service_id) and not verify:
        assert recorded.integration_id is not None
        return RoutingKeyOutcome(recorded.integration_id, service_id)

    token = await read_api_token(kube, owner.namespace, spec)
    recreated = False
    try:
        async with _client(spec, token, policy, limits) as client:
            if recorded.integration_id and recorded.service_id == service_id:
                current = await client.get(service_id, recorded.integration_id)
                if ours(current, stamp):
                    assert current is not None
                    return await _hold(
                        kube, owner, client, service_id, current, recorded, stored, checked=True
                    )
                recreated = current is None  # deleted out of band (else: not ours any more)
            elif recorded.integration_id and recorded.service_id:  # serviceId changed
                old = await client.get(recorded.service_id, recorded.integration_id)
                if ours(old, stamp):
                    await client.delete(recorded.service_id, recorded.integration_id)

            found = sort_out(await client.list(service_id), owner, stamp)
            for duplicate in found.duplicates:
                await client.delete(service_id, duplicate)
            if found.mine is not None:  # ours, not (or no longer) in the Secret: take it back
                outcome = await _hold(
                    kube, owner, client, service_id, found.mine, recorded, stored, checked=True
                )
                return dataclasses.replace(outcome, duplicates=found.duplicates)
            if found.unstamped is not None:
                raise NameConflict(
                    f"PagerDuty service {service_id} already has an integration "
                    f"{found.unstamped} named {unstamped_name(owner)!r} that was not created by "
                    "this PagerDutyIntegration (no ownership stamp): it is left untouched; "
                    "rename or delete it in PagerDuty"
                )
            created = await client.create(service_id, integration_name(owner, stamp))
            try:
                outcome = await _hold(
                    kube, owner, client, service_id, created, recorded, stored, checked=True
                )
            except NameConflict:
                await client.delete(service_id, created.id)  # its key has nowhere to go
                raise
    except ClientError as exc:
        raise routing_key_failure(exc) from None
    return dataclasses.replace(outcome, created=True, recreated=recreated, restored=False)


async def _hold(
    kube: KubernetesPort,
    owner: Owner,
    client: PagerDutyServiceIntegrations,
    service_id: str,
    integration: ServiceIntegration,
    recorded: Recorded,
    stored: SecretState | None,
    *,
    checked: bool,
) -> RoutingKeyOutcome:
    """Our integration: write its key into the Secret unless the Secret holds it already."""
    key = integration.integration_key
    if not key:  # a listing may give references only: read the integration itself
        full = await client.get(service_id, integration.id)
        key = full.integration_key if full is not None else None
    if not key or not is_routing_key(key):
        raise MalformedResponse(
            f"PagerDuty integration {integration.id} has no Events API v2 integration key"
        )
    digest = key_digest(key)
    same = (
        recorded.has_key
        and recorded.integration_id == integration.id
        and recorded.service_id == service_id
        and recorded.digest == digest
    )
    if not same:
        await _store_secret(kube, owner, key, integration.id, service_id, digest, stored)
    return RoutingKeyOutcome(integration.id, service_id, restored=not same, checked=checked)


async def _store_secret(
    kube: KubernetesPort,
    owner: Owner,
    key: str,
    integration_id: str,
    service_id: str,
    digest: str,
    stored: SecretState | None,
) -> None:
    manifest = render_routing_key_secret(owner, key, integration_id, service_id, digest)
    manifest["data"] = {
        name: base64.b64encode(value.encode()).decode()
        for name, value in manifest.pop("stringData").items()
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
    *,
    policy: EgressPolicy,
    stamp: OwnerStamp,
    limits: CallLimits | None = None,
) -> bool:
    """Delete our integration(s) in PagerDuty; False when there was nothing of ours."""
    return bool(await _each_of_ours(kube, owner, spec, policy, stamp, limits, orphan=False))


async def orphan(
    kube: KubernetesPort,
    owner: Owner,
    spec: PagerDutyIntegrationSpec,
    *,
    policy: EgressPolicy,
    stamp: OwnerStamp,
    limits: CallLimits | None = None,
) -> str | None:
    """``deletionPolicy: Orphan``: rename ours to :func:`unstamped_name` (no stamp), so it
    keeps routing events and is never ours again; the id(s) left, None when none."""
    left = await _each_of_ours(kube, owner, spec, policy, stamp, limits, orphan=True)
    return ", ".join(left) if left else None


async def _each_of_ours(
    kube: KubernetesPort,
    owner: Owner,
    spec: PagerDutyIntegrationSpec,
    policy: EgressPolicy,
    stamp: OwnerStamp,
    limits: CallLimits | None,
    *,
    orphan: bool,
) -> list[str]:
    """Delete (or rename without our stamp) each integration of ours; the ids done.

    The recorded service (our Secret's annotation) and the spec's are both searched by
    stamp, so an integration whose Secret was never written (a crash) is found too.
    """
    if spec.pager_duty.api_token is None:
        return []
    recorded = Recorded.of(await _own_secret(kube, owner))
    services = {s for s in (recorded.service_id, spec.pager_duty.service_id) if s}
    if not services:
        return []
    token = await read_api_token(kube, owner.namespace, spec)
    done: list[str] = []
    try:
        async with _client(spec, token, policy, limits) as client:
            for service_id in sorted(services):
                try:
                    listing = await client.list(service_id)
                except Rejected as exc:
                    if exc.status == 404:  # the service itself is gone, and ours with it
                        continue
                    raise
                found = sort_out(listing, owner, stamp)
                mine = [found.mine.id] if found.mine is not None else []
                for integration_id in [*mine, *found.duplicates]:
                    if orphan:
                        await client.rename(service_id, integration_id, unstamped_name(owner))
                        done.append(integration_id)
                    elif await client.delete(service_id, integration_id):
                        done.append(integration_id)
    except ClientError as exc:
        raise routing_key_failure(exc) from None
    return done


async def _own_secret(kube: KubernetesPort, owner: Owner) -> SecretState | None:
    """Our routing key Secret, or None (absent, or a namesake that is not ours)."""
    try:
        current = await kube.get(SECRETS, owner.namespace, owner.names.routing_key_secret)
    except NotFound:
        return None
    except KubernetesError as exc:
        raise KubernetesUnavailable(str(exc)) from None
    return secret_state(current) if owned_by(current, owner.uid) else None
