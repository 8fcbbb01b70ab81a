"""What every reconcile step of one integration gets, and what it gives back.

A step (one module of this package: subscription, BigPanda integration, token rotation,
children, exposure) talks to one system and returns a :class:`StepResult`: its condition
and, when it failed, the delay after which to retry; a step that owns part of ``status``
returns a subclass carrying that part as its API model (:mod:`pagerbridge.api`), never a
dict. The reconcile package composes them into one typed status.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pagerbridge.api import GROUP, INTEGRATION, VERSION, PagerDutyIntegrationSpec
from pagerbridge.controller.events import post_event
from pagerbridge.controller.kube_port import KubernetesPort
from pagerbridge.controller.ownership import OwnerStamp
from pagerbridge.controller.render.children import Owner
from pagerbridge.controller.render.conditions import ConditionUpdate
from pagerbridge.controller.settings import OperatorSettings
from pagerbridge.controller.state.memory import IntegrationMemory
from pagerbridge.controller.state.observed import IntegrationInfo, World


@dataclass(frozen=True)
class StepResult:
    condition: ConditionUpdate | None = None
    retry: float | None = None


def involved(uid: str, namespace: str, name: str, kind: str = INTEGRATION.kind) -> dict[str, Any]:
    """The ``involvedObject`` of an Event about one of our objects."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": kind,
        "name": name,
        "namespace": namespace,
        "uid": uid,
    }


@dataclass
class Context:
    """One reconcile of one integration."""

    kube: KubernetesPort
    world: World
    settings: OperatorSettings
    owner: Owner
    spec: PagerDutyIntegrationSpec
    info: IntegrationInfo
    memory: IntegrationMemory
    requeue_after: Callable[[float], None]  # reconcile this integration again later

    @property
    def stamp(self) -> OwnerStamp:
        """What marks external objects as this integration's, in this cluster."""
        return OwnerStamp(self.settings.cluster_id, self.owner.uid)

    async def event(self, reason: str, message: str, *, warning: bool = False) -> None:
        owner = self.owner
        await post_event(
            self.kube,
            involved(owner.uid, owner.namespace, owner.name),
            reason=reason,
            message=message,
            warning=warning,
        )
