"""The status of a shared account: Ready when every Secret key it names exists in the
account namespace, and how many integrations use it.

Only key names are looked at (:mod:`..state.user_secrets`): no value leaves the read. The
status is written only when it changed, so a quiet account costs one ``get`` per Secret
per trigger (an account event, or an integration naming it).
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ValidationError

from pagerbridge.api import (
    GROUP,
    VERSION,
    AccountStatus,
    ResourceKind,
    SecretKeyRef,
)
from pagerbridge.api import ConditionReason as Reason
from pagerbridge.clients.kubernetes import KubernetesError, NotFound, Resource
from pagerbridge.controller.errors import KubernetesUnavailable
from pagerbridge.controller.kube_port import KubernetesPort
from pagerbridge.controller.render import conditions as c
from pagerbridge.controller.render.conditions import ConditionUpdate
from pagerbridge.controller.state import user_secrets
from pagerbridge.controller.state.observed import AccountInfo

logger = logging.getLogger(__name__)


def resource(kind: ResourceKind) -> Resource:
    return Resource(GROUP, VERSION, kind.plural, False)


def secret_refs(spec: BaseModel) -> list[tuple[str, SecretKeyRef]]:
    """Every Secret key an account names, with its field (``spec.apiToken``...)."""
    refs = []
    for field, value in (("spec.apiToken", "api_token"), ("spec.routingKey", "routing_key")):
        ref = getattr(spec, value, None)
        if isinstance(ref, SecretKeyRef):
            refs.append((field, ref))
    return refs


async def ready(
    kube: KubernetesPort, kind: ResourceKind, info: AccountInfo, namespace: str
) -> ConditionUpdate:
    """Ready of one account, from the key names of its Secrets in ``namespace``."""
    try:
        spec = kind.spec_model.model_validate(info.spec)
    except ValidationError as exc:
        return ConditionUpdate(
            c.READY, c.FALSE, Reason.INVALID_SPEC, f"spec does not validate: {exc.error_count()}"
        )
    if not namespace:
        return ConditionUpdate(
            c.READY, c.FALSE, Reason.ACCOUNTS_DISABLED, "the operator has no account namespace"
        )
    refs = secret_refs(spec)
    read = await user_secrets.read(kube, namespace, {ref.name: () for _, ref in refs})
    missing = [
        f"Secret {namespace}/{ref.name} key {ref.key!r} (for {field}) not found"
        for field, ref in refs
        if ref.name not in read.infos or ref.key not in read.infos[ref.name].keys
    ]
    if missing:
        return ConditionUpdate(c.READY, c.FALSE, Reason.SECRET_NOT_FOUND, "; ".join(missing))
    return ConditionUpdate(
        c.READY, c.TRUE, Reason.SECRETS_FOUND, f"all referenced Secret keys found in {namespace}"
    )


async def write(
    kube: KubernetesPort, kind: ResourceKind, info: AccountInfo, namespace: str, users: int
) -> None:
    condition = await ready(kube, kind, info, namespace)
    current: list[dict[str, Any]] = list(info.status.get("conditions") or [])
    conditions = c.apply_conditions(current, [condition], info.generation, c.now_rfc3339())
    status = AccountStatus.model_validate(
        {"observed_generation": info.generation, "conditions": conditions, "integrations": users}
    )
    desired = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    if desired == {k: v for k, v in info.status.items() if k in desired} and set(
        info.status
    ) <= set(desired):
        return
    try:
        await kube.merge_patch(
            resource(kind), None, info.name, {"status": desired}, subresource="status"
        )
    except NotFound:
        return
    except KubernetesError as exc:
        logger.warning("status of %s %s not written: %s", kind.kind, info.name, exc)
        raise KubernetesUnavailable(str(exc)) from None
