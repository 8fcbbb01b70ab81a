"""BigPanda's Webhook v2 integration of one integration, in ``Managed`` mode.

The operator creates the integration in BigPanda with ``base_url`` = relay public URL +
``/v1/bigpanda/webhook``, ``authorization`` = ``Bearer <generated inbound token>``, the
headers equivalent to the key override and tag mappings (``x-bp-config-pdfield``,
``x-bp-config-tag-<tag>``), one event per enabled trigger, and no body template (BigPanda
sends its native incident payload, which the relay parses). It recreates the integration
when it disappeared (periodic check), and deletes it through the finalizer.

Never adopt (see :mod:`.ownership`): every event of the integration carries the header
``x-pagerbridge-owner: <cluster>/<integration UID>`` (:data:`OWNER_HEADER`; a documented,
returned field; the relay ignores the header). An integration by our name is PATCHed or
DELETEd only when it carries our stamp; otherwise the condition says ``NameConflict`` and
it is left untouched. The default name is hashed (:func:`.names.external_name`).
Integrations made before stamps existed (upgrade) are recognised once, as *legacy*, when
all hold: the name is the old one (``pagerbridge-<namespace>-<name>`` or
``integrationName``), the integration's ``status.bigPandaWebhook.integrationId`` (written
by the operator) records it, and its ``base_url`` is this integration's relay URL. It keeps
its name (AutoShare rules refer to it) and the next write stamps it.

Drift detection never depends on a field BigPanda may mask. BigPanda stores an event's
``authorization`` encrypted, so a GET may return it masked, encrypted or not at all:
those fields (:data:`SECRET_EVENT_FIELDS`) are never compared. The operator keeps a
digest of what it last wrote there instead (``status.bigPandaWebhook.authorizationDigest``,
a SHA-256, never the value) and PATCHes only when the desired fields BigPanda returns
faithfully differ from the stored ones, when the desired secret fields' digest differs from
the one last written, or after recreating the integration. No write loops, even against
a server that masks.

Adoption is explicit (``bigPanda.webhook.adopt.webhookIntegrationId``): that integration's
name becomes the one managed; it must exist (``AdoptionTargetNotFound``, until status
records it as ours: then a deleted one is recreated like any of ours) and carry no owner
stamp at all (another's: ``NameConflict``). The first write stamps it and brings it to the
spec (Event ``BigPandaIntegrationAdopted``); from then on it is ours like any other.

With ``spec.deletionPolicy: Orphan`` the finalizer calls :func:`orphan` instead of
:func:`remove`: the integration stays as it is (URL, events, headers) minus the owner
header (:func:`unstamped_workflow`), so nothing recognises it as ours again. BigPanda's
PATCH replaces the whole ``workflow_config`` and its answers may mask ``authorization``,
so the events are written back with the token BigPanda sends now (the caller reads it from
the token Secret): the authorization it had, never a masked placeholder.

:func:`desired_workflow` and :func:`unstamped_workflow` are pure; unit tests call them
without BigPanda.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pagerbridge.api import ConditionReason as Reason
from pagerbridge.api import PagerDutyIntegrationSpec
from pagerbridge.api.contract import (
    BIGPANDA_WEBHOOK_PATH,
    bigpanda_api_url,
    bigpanda_config_headers,
)
from pagerbridge.api.integration import WebhookMode
from pagerbridge.clients._http import CallLimits
from pagerbridge.clients.bigpanda_integrations import (
    TRIGGER_FIELD,
    BigPandaIntegrations,
    integration_id,
)
from pagerbridge.clients.egress import EgressPolicy
from pagerbridge.clients.errors import (
    ClientError,
    Conflict,
    EgressRefused,
    MalformedResponse,
    Rejected,
    TransientError,
    Unauthorized,
)
from pagerbridge.controller import names as n
from pagerbridge.controller.errors import (
    RetryLater,
    SecretNotFound,
)
from pagerbridge.controller.kube_port import KubernetesPort
from pagerbridge.controller.ownership import OwnerStamp
from pagerbridge.controller.render.children import Owner, relay_base_url
from pagerbridge.controller.render.compile import Compiled
from pagerbridge.controller.state.secret_values import read_secret_key

logger = logging.getLogger(__name__)


class BigPandaWebhookFailed(RetryLater):
    reason = Reason.BIGPANDA_UNAVAILABLE


def failure(exc: ClientError) -> BigPandaWebhookFailed:
    error = BigPandaWebhookFailed(f"BigPanda Webhook v2 integration: {exc}")
    if isinstance(exc, EgressRefused):
        error.reason = Reason.URL_NOT_ALLOWED
        error.retry_after = 300.0
    elif isinstance(exc, MalformedResponse):
        error.reason = Reason.UPSTREAM_MALFORMED
        error.retry_after = 60.0
    elif isinstance(exc, Unauthorized):
        error.reason = Reason.BIGPANDA_UNAUTHORIZED
        error.message = (
            f"BigPanda refused the User API key (HTTP {exc.status}); check bigPanda.apiToken"
        )
        error.retry_after = 60.0
    elif isinstance(exc, TransientError):
        error.retry_after = 15.0
    else:
        error.reason = Reason.BIGPANDA_REJECTED
        error.retry_after = 60.0
    return error


def managed(spec: PagerDutyIntegrationSpec) -> bool:
    return spec.big_panda.webhook.mode == WebhookMode.MANAGED


class BigPandaNameConflict(BigPandaWebhookFailed):
    reason = Reason.NAME_CONFLICT
    retry_after = 60.0


class BigPandaAdoptionTargetNotFound(BigPandaWebhookFailed):
    reason = Reason.ADOPTION_TARGET_NOT_FOUND
    retry_after = 60.0


OWNER_HEADER = "x-pagerbridge-owner"


class Ownership(Enum):
    """Whose an integration found by our name is (:func:`ownership`)."""

    OURS = "ours"  # carries our stamp
    LEGACY = "legacy"  # ours, made before stamps (see the module doc)
    FOREIGN = "foreign"  # anyone else's: never PATCHed nor DELETEd
    ADOPTED = "adopted"  # unstamped, and named by webhook.adopt: ours from this write on


_OWNER_HEADER_VALUE = re.compile(rf'"{OWNER_HEADER}"\s*:\s*"([^"]*)"')


def integration_name(owner: Owner, spec: PagerDutyIntegrationSpec) -> str:
    """The adopted integration's name, else ``integrationName``, else the unambiguous
    derived name."""
    webhook = spec.big_panda.webhook
    return (
        webhook.adopted_name
        or webhook.integration_name
        or n.external_name(owner.namespace, owner.name, owner.uid)
    )


def legacy_name(owner: Owner, spec: PagerDutyIntegrationSpec) -> str:
    return spec.big_panda.webhook.integration_name or n.legacy_external_name(
        owner.namespace, owner.name
    )


def target_name(owner: Owner, spec: PagerDutyIntegrationSpec, recorded_id: str | None) -> str:
    """The name to manage: the legacy one while status records it, else the new one."""
    legacy = legacy_name(owner, spec)
    if recorded_id is not None and recorded_id == integration_id(legacy):
        return legacy
    return integration_name(owner, spec)


def stamps(workflow: dict[str, Any]) -> set[str]:
    """The owner stamps the events of a workflow carry."""
    found = set()
    for event in workflow.get("events") or []:
        headers = event.get("headers") if isinstance(event, dict) else None
        if isinstance(headers, str):
            found.update(_OWNER_HEADER_VALUE.findall(headers))
    return found


def ownership(current: dict[str, Any], stamp: OwnerStamp, *, legacy_url: str | None) -> Ownership:
    """``legacy_url``: our relay URL when the name and the recorded id qualify as legacy."""
    workflow = current.get("workflow_config") or {}
    found = stamps(workflow)
    if found == {stamp.value}:
        return Ownership.OURS
    if not found and legacy_url is not None:
        config = workflow.get("config") or {}
        if config.get("base_url") == legacy_url:
            return Ownership.LEGACY
    return Ownership.FOREIGN


_OWNER_PAIR = re.compile(rf'\s*"{OWNER_HEADER}"\s*:\s*"[^"]*"\s*,?')


def unstamped_headers(headers: str | None) -> str | None:
    """``headers`` (BigPanda's header syntax) without the owner header; None when nothing
    else is left."""
    if not headers:
        return headers
    left = _OWNER_PAIR.sub("", headers).strip().rstrip(",").strip()
    return left or None


def unstamped_workflow(workflow: dict[str, Any], token: str) -> dict[str, Any]:
    """``workflow`` as BigPanda returned it, without the owner header, every event's
    ``authorization`` set to ``Bearer <token>`` (BigPanda may have returned it masked)."""
    events = []
    for event in workflow.get("events") or []:
        if not isinstance(event, dict):
            continue
        kept = {**event, "authorization": f"Bearer {token}"}
        headers = unstamped_headers(event.get("headers"))
        if headers is None:
            kept.pop("headers", None)
        else:
            kept["headers"] = headers
        events.append(kept)
    return {**workflow, "events": events}


def header_string(pairs: Sequence[tuple[str, str]]) -> str:
    """BigPanda's header syntax: ``"name" : "value", "other" : "v2"``."""
    return ", ".join(f"{json.dumps(name)} : {json.dumps(value)}" for name, value in pairs)


def desired_workflow(
    url: str, token: str, compiled: Compiled, triggers: Sequence[str], stamp: OwnerStamp
) -> dict[str, Any]:
    pairs = bigpanda_config_headers(
        compiled.config.key_override_tag,
        ((m.tag, m.field) for m in compiled.config.tag_mappings),
    )
    pairs.append((OWNER_HEADER, stamp.value))
    events = []
    for trigger in triggers:
        event: dict[str, Any] = {
            TRIGGER_FIELD: f"incident#{trigger}",
            "enabled": True,
            "authorization": f"Bearer {token}",
            "method": "POST",
        }
        if pairs:
            event["headers"] = header_string(pairs)
        events.append(event)
    return {"config": {"base_url": url, "expects_callbacks": False}, "events": events}


# Event fields BigPanda may not return as written (stored encrypted): never compared;
# their digest is remembered instead. Our ``headers`` carry no credential (only the
# x-bp-config-* routing hints), so they are compared like any other field.
SECRET_EVENT_FIELDS = frozenset({"authorization"})


def digest(workflow: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(workflow, sort_keys=True).encode()).hexdigest()


def secret_digest(workflow: dict[str, Any]) -> str:
    """SHA-256 over the secret-bearing fields of each event (for status: never the value)."""
    secret = sorted(
        (
            str(event.get(TRIGGER_FIELD)),
            {k: v for k, v in event.items() if k in SECRET_EVENT_FIELDS},
        )
        for event in workflow.get("events", [])
    )
    return "sha256:" + hashlib.sha256(json.dumps(secret, sort_keys=True).encode()).hexdigest()


# Optional event fields the operator sets or leaves out: compared even when left out (a
# stale one must go), with an empty value read as absent.
OPTIONAL_EVENT_FIELDS = ("headers", "body", "path")


def _field(event: dict[str, Any], key: str) -> Any:
    value = event.get(key)
    return (value or None) if key in OPTIONAL_EVENT_FIELDS else value


def comparable(workflow: dict[str, Any], like: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``workflow`` the operator manages (those ``like``, the desired one,
    sets, and the optional ones), minus the secret ones: what a server's answer is
    compared on (fields it adds itself are ignored)."""
    config = workflow.get("config") or {}
    events = {str(e.get(TRIGGER_FIELD)): e for e in workflow.get("events") or []}
    wanted_events = {str(e.get(TRIGGER_FIELD)): e for e in like.get("events") or []}
    return {
        "config": {k: config.get(k) for k in (like.get("config") or {})},
        "triggers": sorted(events),
        "events": {
            trigger: {
                k: _field(events.get(trigger) or {}, k)
                for k in {*event, *OPTIONAL_EVENT_FIELDS}
                if k not in SECRET_EVENT_FIELDS
            }
            for trigger, event in wanted_events.items()
        },
    }


def in_sync(current: dict[str, Any], desired: dict[str, Any]) -> bool:
    return comparable(current, desired) == comparable(desired, desired)


@dataclass(frozen=True)
class WebhookOutcome:
    integration_id: str
    digest: str
    secret_digest: str  # of the secret fields BigPanda now holds (what we last wrote)
    talked: bool  # BigPanda was called (verified or written)
    changed: bool
    claimed: bool = False  # a legacy (pre-stamp) integration of ours was stamped
    adopted: bool = False  # the integration named by webhook.adopt was taken over


async def ensure(
    kube: KubernetesPort,
    owner: Owner,
    spec: PagerDutyIntegrationSpec,
    compiled: Compiled,
    *,
    token: str,
    last_digest: str | None,
    written_secret: str | None,
    verify: bool,
    policy: EgressPolicy,
    stamp: OwnerStamp,
    recorded_id: str | None = None,
    limits: CallLimits | None = None,
) -> WebhookOutcome:
    """``token``: the inbound token BigPanda must send now (see :mod:`.token_rotation`);
    ``last_digest``: of the whole workflow last confirmed (this process's memory);
    ``written_secret``: :func:`secret_digest` of what was last written to BigPanda;
    ``recorded_id``: ``status.bigPandaWebhook.integrationId``."""
    name = target_name(owner, spec, recorded_id)
    url = relay_base_url(owner, spec) + BIGPANDA_WEBHOOK_PATH
    workflow = desired_workflow(
        url, token, compiled, [t.value for t in spec.effective_triggers], stamp
    )
    wanted = digest(workflow)
    wanted_secret = secret_digest(workflow)
    ident = integration_id(name)
    if wanted == last_digest and wanted_secret == written_secret and not verify:
        return WebhookOutcome(ident, wanted, wanted_secret, talked=False, changed=False)
    ref = spec.big_panda.api_token
    assert ref is not None  # the CRD's CEL rule requires it in Managed mode
    api_key = await read_secret_key(
        kube, owner.child_namespace, ref.name, ref.key, "spec.bigPanda.apiToken"
    )
    try:
        async with BigPandaIntegrations(
            bigpanda_api_url(spec.big_panda), api_key, policy=policy, limits=limits
        ) as client:
            current = await client.get(name)
            adopting = spec.big_panda.webhook.adopted_name == name
            if current is None and adopting and recorded_id != ident:
                raise BigPandaAdoptionTargetNotFound(
                    f"BigPanda Webhook v2 integration {ident} (bigPanda.webhook.adopt) does "
                    "not exist: check the id"
                )
            if current is None:
                try:
                    await client.create(name, workflow)
                except (Rejected, Conflict) as exc:  # taken meanwhile (another operator, a person)
                    current = await client.get(name)
                    if current is None:
                        raise exc from None
                else:
                    return WebhookOutcome(ident, wanted, wanted_secret, talked=True, changed=True)
            legacy = url if recorded_id == ident else None
            verdict = ownership(current, stamp, legacy_url=legacy)
            if verdict is Ownership.FOREIGN and adopting:
                if stamps(current.get("workflow_config") or {}):
                    raise BigPandaNameConflict(
                        f"BigPanda Webhook v2 integration {ident} carries another PagerBridge "
                        "integration's x-pagerbridge-owner stamp: not adopted. Delete that "
                        "integration with deletionPolicy Orphan first"
                    )
                verdict = Ownership.ADOPTED
            if verdict is Ownership.FOREIGN:
                raise name_conflict(ident)
            if (
                verdict is Ownership.OURS
                and wanted_secret == written_secret
                and in_sync(current.get("workflow_config") or {}, workflow)
            ):
                return WebhookOutcome(ident, wanted, wanted_secret, talked=True, changed=False)
            await client.update(name, workflow)
    except ClientError as exc:
        raise failure(exc) from None
    return WebhookOutcome(
        ident,
        wanted,
        wanted_secret,
        talked=True,
        changed=True,
        claimed=verdict is Ownership.LEGACY,
        adopted=verdict is Ownership.ADOPTED,
    )


def name_conflict(ident: str) -> BigPandaNameConflict:
    return BigPandaNameConflict(
        f"BigPanda Webhook v2 integration {ident} already exists and was not created by this "
        "PagerDutyIntegration (no matching x-pagerbridge-owner stamp): it is left untouched. "
        "Set bigPanda.webhook.integrationName to another name, or delete it in BigPanda"
    )


async def remove(
    kube: KubernetesPort,
    owner: Owner,
    spec: PagerDutyIntegrationSpec,
    *,
    policy: EgressPolicy,
    stamp: OwnerStamp,
    recorded_id: str | None = None,
    limits: CallLimits | None = None,
) -> bool:
    """Delete our integration; False when it is gone or not ours (then left in place)."""
    ref = spec.big_panda.api_token
    if ref is None:
        return False
    api_key = await read_secret_key(
        kube, owner.child_namespace, ref.name, ref.key, "spec.bigPanda.apiToken"
    )
    name = target_name(owner, spec, recorded_id)
    ident = integration_id(name)
    legacy = relay_base_url(owner, spec) + BIGPANDA_WEBHOOK_PATH if recorded_id == ident else None
    try:
        async with BigPandaIntegrations(
            bigpanda_api_url(spec.big_panda), api_key, policy=policy, limits=limits
        ) as client:
            current = await client.get(name)
            if current is None:
                return False
            if ownership(current, stamp, legacy_url=legacy) is Ownership.FOREIGN:
                logger.warning(
                    "%s/%s: BigPanda integration %s is not ours: not deleted",
                    owner.namespace,
                    owner.name,
                    ident,
                )
                return False
            return await client.delete(name)
    except ClientError as exc:
        raise failure(exc) from None


async def orphan(
    kube: KubernetesPort,
    owner: Owner,
    spec: PagerDutyIntegrationSpec,
    *,
    token: str | None,
    policy: EgressPolicy,
    stamp: OwnerStamp,
    recorded_id: str | None = None,
    limits: CallLimits | None = None,
) -> str | None:
    """Leave our integration in BigPanda without our stamp (``spec.deletionPolicy:
    Orphan``); its id, None when there was nothing of ours (gone, or not ours: untouched).

    ``token``: the inbound token BigPanda sends now (None: the token Secret is gone, and
    the integration cannot be rewritten without breaking its authorization: it is left
    as it is, stamp included, and :class:`SecretNotFound` says so)."""
    ref = spec.big_panda.api_token
    if ref is None:
        return None
    api_key = await read_secret_key(
        kube, owner.child_namespace, ref.name, ref.key, "spec.bigPanda.apiToken"
    )
    name = target_name(owner, spec, recorded_id)
    ident = integration_id(name)
    legacy = relay_base_url(owner, spec) + BIGPANDA_WEBHOOK_PATH if recorded_id == ident else None
    try:
        async with BigPandaIntegrations(
            bigpanda_api_url(spec.big_panda), api_key, policy=policy, limits=limits
        ) as client:
            current = await client.get(name)
            if current is None:
                return None
            if ownership(current, stamp, legacy_url=legacy) is Ownership.FOREIGN:
                return None
            if token is None:
                raise SecretNotFound(
                    f"Secret {owner.child_namespace}/{owner.names.token_secret} (the token "
                    f"BigPanda sends) is gone: {ident} is left as it is, still stamped"
                )
            workflow = unstamped_workflow(current.get("workflow_config") or {}, token)
            await client.update(name, workflow)
            return ident
    except ClientError as exc:
        raise failure(exc) from None
