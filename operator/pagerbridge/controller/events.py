"""Kubernetes Events for condition transitions (``kubectl describe`` shows them).

Messages come from conditions, which name Secrets and keys but never hold their values.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from pagerbridge.clients.kubernetes import KubernetesError, Resource
from pagerbridge.controller.kube_port import KubernetesPort
from pagerbridge.controller.render.conditions import now_rfc3339

logger = logging.getLogger(__name__)
EVENTS = Resource.builtin("Event")
INSTANCE = socket.gethostname()


async def post_event(
    kube: KubernetesPort,
    involved: dict[str, Any],
    *,
    reason: str,
    message: str,
    warning: bool,
) -> None:
    """Best effort: an Event that cannot be posted is logged, never fails a reconcile.

    Every Event is a log line too (INFO, WARNING for a warning): the operator's default
    log tells the same story as ``kubectl describe`` (side effects with their ids,
    Ready transitions), even where Events are not kept or not allowed."""
    logger.log(
        logging.WARNING if warning else logging.INFO,
        message[:1024],
        extra={
            "event": reason,
            "object": f"{involved.get('kind', '')} {involved['namespace']}/{involved['name']}",
        },
    )
    now = now_rfc3339()
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{involved['name']}.", "namespace": involved["namespace"]},
        "involvedObject": involved,
        "reason": reason,
        "message": message[:1024],
        "type": "Warning" if warning else "Normal",
        "source": {"component": "pagerbridge"},
        "reportingComponent": "pagerbridge",
        "reportingInstance": INSTANCE,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    try:
        await kube.create(event, EVENTS)
    except KubernetesError as exc:
        logger.warning("could not post event %s: %s", reason, exc)
