"""Writing ``status`` (integrations, overrides, mappings) and announcing each ``Ready``
transition as an Event.

The one place a status becomes JSON: it receives the typed models :mod:`.assemble` built
and serialises them by alias (camelCase), as a merge patch (a field the model does not
set is left as written, a field set to None is removed).

The indices may lag behind our own last write, so a write is compared with what this
process last wrote too (ignoring transition times): a stale view neither rewrites nor
re-announces. What was written lives in the integration's memory (for an integration)
or here (for an override or mapping); a recreated object (new uid) starts afresh.

An integration's written conditions are also its ``pagerbridge_integration_condition``
series (:class:`.metrics.ConditionGauge`), dropped by :meth:`StatusWriter.forget_integration`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from pagerbridge.api import (
    GROUP,
    INTEGRATION,
    KEY_OVERRIDE,
    TAG_MAPPING,
    VERSION,
    PagerDutyIntegrationStatus,
    ReferenceStatus,
)
from pagerbridge.api._base import CamelModel
from pagerbridge.clients.kubernetes import NotFound, Resource
from pagerbridge.controller.events import post_event
from pagerbridge.controller.kube_port import KubernetesPort
from pagerbridge.controller.metrics import ConditionGauge
from pagerbridge.controller.render import conditions as c
from pagerbridge.controller.render.status import quiet_start
from pagerbridge.controller.state.memory import IntegrationMemory, Written
from pagerbridge.controller.state.observed import RefInfo
from pagerbridge.controller.steps.context import involved

logger = logging.getLogger(__name__)

RESOURCES = {
    kind.kind: Resource.custom(GROUP, VERSION, kind.plural)
    for kind in (INTEGRATION, KEY_OVERRIDE, TAG_MAPPING)
}


def serialise(status: CamelModel) -> dict[str, Any]:
    """The merge patch of a status model: camelCase, only the fields it sets (None: remove)."""
    return status.model_dump(mode="json", by_alias=True, exclude_unset=True)


def differs(current: Mapping[str, Any] | Any, desired: dict[str, Any]) -> bool:
    """True when some desired status field is not already what the object has."""
    if not isinstance(current, Mapping):
        return True
    return any(current.get(key) != value for key, value in desired.items())


def essence(status: dict[str, Any]) -> str:
    """A status without condition transition times, for "did anything change?"."""
    conditions = [
        {k: v for k, v in condition.items() if k != "lastTransitionTime"}
        for condition in status.get("conditions", [])
    ]
    return json.dumps({**status, "conditions": conditions}, sort_keys=True)


class StatusWriter:
    def __init__(self, kube: KubernetesPort, gauge: ConditionGauge | None = None) -> None:
        self.kube = kube
        self.gauge = gauge if gauge is not None else ConditionGauge()
        self._refs: dict[tuple[str, str, str, str], Written] = {}  # (kind, ns, name, uid)

    async def integration(
        self,
        memory: IntegrationMemory,
        namespace: str,
        name: str,
        uid: str,
        current: Any,
        status: PagerDutyIntegrationStatus,
    ) -> None:
        last = memory.written[1] if memory.written and memory.written[0] == uid else None
        desired = serialise(status)
        written = await self._write(INTEGRATION.kind, namespace, name, uid, current, desired, last)
        if written is None:
            self.gauge.remove(namespace, name)
            return
        memory.written = (uid, written)
        self.gauge.set(namespace, name, written[1])

    def forget_integration(self, namespace: str, name: str) -> None:
        """The integration is gone (or going): its condition series go too."""
        self.gauge.remove(namespace, name)

    async def ref(self, ref: RefInfo, status: ReferenceStatus) -> None:
        """The status of an override or mapping (see :func:`.assemble.reference_status`)."""
        desired = serialise(status)
        key = (ref.kind, ref.namespace, ref.name, ref.uid)
        written = await self._write(
            ref.kind, ref.namespace, ref.name, ref.uid, ref.status, desired, self._refs.get(key)
        )
        if written is not None:
            self._refs[key] = written

    def forget_ref(self, kind: str, namespace: str, name: str) -> None:
        for key in [k for k in self._refs if k[:3] == (kind, namespace, name)]:
            self._refs.pop(key, None)

    async def _write(
        self,
        kind: str,
        namespace: str,
        name: str,
        uid: str,
        current: Any,
        desired: dict[str, Any],
        last: Written | None,
    ) -> Written | None:
        """Write when needed; what is now written (None: unknown, the object is gone)."""
        now = essence(desired)
        if last is not None and last[0] == now:
            return last
        if not differs(current, desired):
            return (now, list(desired["conditions"]))
        try:
            await self.kube.merge_patch(
                RESOURCES[kind], namespace, name, {"status": desired}, subresource="status"
            )
        except NotFound:
            return None
        before = last[1] if last is not None else list(current.get("conditions") or [])
        for condition in c.transitions(before, desired["conditions"]):
            logger.info(
                "condition %s=%s (%s)",
                condition["type"],
                condition["status"],
                condition["reason"],
                extra={"object": f"{kind} {namespace}/{name}", "detail": condition["message"]},
            )
            if condition["type"] != c.READY:
                continue
            if quiet_start(before, desired["conditions"]):
                continue  # a new relay starting up is not news
            await post_event(
                self.kube,
                involved(uid, namespace, name, kind),
                reason=str(condition["reason"]),
                message=str(condition["message"]),
                warning=condition["status"] == c.FALSE,  # Unknown: a rollout, not a fault
            )
        return (now, list(desired["conditions"]))
