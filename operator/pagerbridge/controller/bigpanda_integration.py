"""BigPanda's Webhook v2 integration of one integration, in ``Managed`` mode.

The operator creates the integration in BigPanda with ``base_url`` = relay public URL +
``/v1/bigpanda/webhook``, ``authorization`` = ``Bearer <generated inbound token>``, the
headers equivalent to the key override and tag mappings (``x-bp-config-pdfield``,
``x-bp-config-tag-<tag>``), one event per enabled trigger, and no body template (BigPanda
sends its native incident payload, which the relay parses). It PATCHes only when the
desired ``workflow_config`` differs from what BigPanda holds (no write loops), recreates
it when it disappeared (periodic check), and deletes it through the finalizer.

:func:`desired_workflow` is pure; unit tests call it without BigPanda.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pagerbridge.api import PagerDutyIntegrationSpec
from pagerbridge.api.contract import (
    BIGPANDA_WEBHOOK_PATH,
    bigpanda_api_url,
    bigpanda_config_headers,
)
from pagerbridge.api.integration import WebhookMode
from pagerbridge.clients.bigpanda_integrations import (
    TRIGGER_FIELD,
    BigPandaIntegrations,
    integration_id,
)
from pagerbridge.clients.errors import ClientError, TransientError, Unauthorized
from pagerbridge.clients.kubernetes import KubernetesClient
from pagerbridge.controller.compile import Compiled
from pagerbridge.controller.errors import RetryLater
from pagerbridge.controller.rendering import Owner, relay_base_url
from pagerbridge.controller.secret_values import read_secret_key


class BigPandaWebhookFailed(RetryLater):
    reason = "BigPandaUnavailable"


def failure(exc: ClientError) -> BigPandaWebhookFailed:
    error = BigPandaWebhookFailed(f"BigPanda Webhook v2 integration: {exc}")
    if isinstance(exc, Unauthorized):
        error.reason = "BigPandaUnauthorized"
        error.message = (
            f"BigPanda refused the User API key (HTTP {exc.status}); check bigPanda.apiToken"
        )
        error.retry_after = 60.0
    elif isinstance(exc, TransientError):
        error.retry_after = 15.0
    else:
        error.reason = "BigPandaRejected"
        error.retry_after = 60.0
    return error


def managed(spec: PagerDutyIntegrationSpec) -> bool:
    return spec.big_panda.webhook.mode == WebhookMode.MANAGED


def integration_name(owner: Owner, spec: PagerDutyIntegrationSpec) -> str:
    return spec.big_panda.webhook.integration_name or f"pagerbridge-{owner.namespace}-{owner.name}"


def header_string(pairs: Sequence[tuple[str, str]]) -> str:
    """BigPanda's header syntax: ``"name" : "value", "other" : "v2"``."""
    return ", ".join(f"{json.dumps(name)} : {json.dumps(value)}" for name, value in pairs)


def desired_workflow(
    url: str, token: str, compiled: Compiled, triggers: Sequence[str]
) -> dict[str, Any]:
    pairs = bigpanda_config_headers(
        compiled.config.key_override_tag,
        ((m.tag, m.field) for m in compiled.config.tag_mappings),
    )
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


def digest(workflow: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(workflow, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class WebhookOutcome:
    integration_id: str
    digest: str
    talked: bool  # BigPanda was called (verified or written)
    changed: bool


async def ensure(
    kube: KubernetesClient,
    owner: Owner,
    spec: PagerDutyIntegrationSpec,
    compiled: Compiled,
    *,
    token: str,
    last_digest: str | None,
    verify: bool,
) -> WebhookOutcome:
    """``token``: the inbound token BigPanda must send now (see :mod:`.token_rotation`)."""
    name = integration_name(owner, spec)
    url = relay_base_url(owner, spec) + BIGPANDA_WEBHOOK_PATH
    workflow = desired_workflow(
        url, token, compiled, [t.value for t in spec.big_panda.webhook.triggers]
    )
    wanted = digest(workflow)
    if wanted == last_digest and not verify:
        return WebhookOutcome(integration_id(name), wanted, talked=False, changed=False)
    ref = spec.big_panda.api_token
    assert ref is not None  # the CRD's CEL rule requires it in Managed mode
    api_key = await read_secret_key(
        kube, owner.namespace, ref.name, ref.key, "spec.bigPanda.apiToken"
    )
    try:
        async with BigPandaIntegrations(bigpanda_api_url(spec.big_panda), api_key) as client:
            current = await client.get(name)
            if current is None:
                await client.create(name, workflow)
                return WebhookOutcome(integration_id(name), wanted, talked=True, changed=True)
            if digest(current.get("workflow_config") or {}) != wanted:
                await client.update(name, workflow)
                return WebhookOutcome(integration_id(name), wanted, talked=True, changed=True)
    except ClientError as exc:
        raise failure(exc) from None
    return WebhookOutcome(integration_id(name), wanted, talked=True, changed=False)


async def remove(kube: KubernetesClient, owner: Owner, spec: PagerDutyIntegrationSpec) -> bool:
    ref = spec.big_panda.api_token
    if ref is None:
        return False
    api_key = await read_secret_key(
        kube, owner.namespace, ref.name, ref.key, "spec.bigPanda.apiToken"
    )
    try:
        async with BigPandaIntegrations(bigpanda_api_url(spec.big_panda), api_key) as client:
            return await client.delete(integration_name(owner, spec))
    except ClientError as exc:
        raise failure(exc) from None
