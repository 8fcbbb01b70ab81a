"""Pausing an integration: the annotation ``pagerbridge.io/paused: "true"`` freezes it.

While paused the operator writes nothing for the integration (children, the PagerDuty
subscription, BigPanda's integration, the token rotation, the finalizer's cleanup) except
its status, which these pure functions compute from the current conditions:

* ``Paused`` True, reason ``ReconcilePaused``; its ``lastTransitionTime`` is when the
  operator first saw the pause (kept stable while it lasts).
* ``Ready`` keeps its status, reason and transition time, as Crossplane keeps ``Ready``
  of a paused resource (it sets ``Synced=False ReconcilePaused``; ``Paused`` is that
  signal here): Ready describes the data path (BigPanda → relay → PagerDuty), which a
  pause leaves running as it is, and a planned freeze must not page anyone nor fail every
  ``kubectl wait`` and GitOps health check. It is no longer re-checked, so its message
  says so (``Paused since <time>; last known: ...``), and ``status.observedGeneration``
  stays at the last generation reconciled (kstatus reads a spec change made meanwhile as
  not yet reconciled). An integration paused before its first reconcile has Ready
  Unknown, reason ``ReconcilePaused``.

Unpausing removes ``Paused`` (:func:`without_paused`) and reconciles everything again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pagerbridge.api import ConditionReason as Reason
from pagerbridge.controller import names as n
from pagerbridge.controller.render import conditions as c
from pagerbridge.controller.render.conditions import ConditionUpdate

PAUSED_MESSAGE = (
    f'{n.ANNOTATION_PAUSED} is "true": the operator writes nothing for this integration '
    "(relay children, PagerDuty subscription, BigPanda integration, token rotation, "
    "deletion clean-up) until the annotation is removed; the relay keeps running as it is"
)
_NOTE = "Paused since {since}: not re-checked; last known: "


def paused(annotations: Mapping[str, str]) -> bool:
    return annotations.get(n.ANNOTATION_PAUSED, "").strip().lower() in n.TRUE_VALUES


def without_paused(conditions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [cond for cond in conditions if cond.get("type") != c.PAUSED]


def last_known(message: str) -> str:
    """Ready's message without the pause note (idempotent)."""
    if message.startswith("Paused since ") and ": not re-checked; last known: " in message:
        return message.split(": not re-checked; last known: ", 1)[1]
    return message


def held_conditions(
    current: list[dict[str, Any]], generation: int | None, now: str
) -> list[dict[str, Any]]:
    """The conditions of a paused integration (see the module doc)."""
    update = ConditionUpdate(c.PAUSED, c.TRUE, Reason.RECONCILE_PAUSED, PAUSED_MESSAGE)
    conditions = c.apply_conditions(current, [update], generation, now)
    held = c.find(conditions, c.PAUSED)
    assert held is not None
    since = str(held["lastTransitionTime"])
    ready = c.find(conditions, c.READY)
    if ready is None:
        first = ConditionUpdate(
            c.READY,
            c.UNKNOWN,
            Reason.RECONCILE_PAUSED,
            f"Paused since {since}, before the first reconcile",
        )
        return c.apply_conditions(conditions, [first], generation, now)
    ready["message"] = _NOTE.format(since=since) + last_known(str(ready.get("message", "")))
    return conditions
