"""Reconcile step: why the relay is not ready, in its own words, when it says so (a refused
outbox).

The Deployment tells the operator only how many relay pods are ready. A relay on
PostgreSQL that refuses an outbox another role owns or can write
(:mod:`pagerbridge.relay.outbox.ownership`) keeps running unready, with the reason in its
``/readyz`` (``"outbox": "outbox refused: ..."``, one line naming the object, its owner and
the relay's role). While the relay is not ready, this step reads that answer through the
API server's pod proxy (``GET /api/v1/namespaces/NS/pods/POD:9090/proxy/readyz``, the path
``pagerbridge outbox`` takes; RBAC ``list`` pods and ``get`` pods/proxy) and turns a refusal
into ``RelayAvailable=False``, reason ``OutboxNotOwned``, with the relay's line as message.

At most one look per :data:`PROBE_INTERVAL` per integration (and one reconcile then, to
look again), only for storage PostgreSQL and only while the relay is not ready; anything
else (no pod, forbidden, unreachable, not JSON, not a refusal) leaves the Deployment's
verdict as it is (a failure is logged).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from urllib.parse import quote

from pagerbridge.api import ConditionReason as Reason
from pagerbridge.api import PagerDutyIntegrationSpec
from pagerbridge.api.contract import RELAY_INTERNAL_PORT, RELAY_READINESS_PATH
from pagerbridge.api.integration import RelayStorage
from pagerbridge.clients.kubernetes import KubernetesError, Resource
from pagerbridge.controller import names as n
from pagerbridge.controller.kube_port import KubernetesPort
from pagerbridge.controller.render import conditions as c
from pagerbridge.controller.render.children import Owner
from pagerbridge.controller.state.memory import IntegrationMemory
from pagerbridge.controller.steps.children import RelayResult

logger = logging.getLogger(__name__)

PODS = Resource.builtin("Pod")
PROBE_INTERVAL = 30.0
REFUSED_PREFIX = "outbox refused: "
MAX_MESSAGE = 1024


async def refused(kube: KubernetesPort, owner: Owner) -> tuple[bool, str | None]:
    """(a running relay pod answered, the refusal line of its ``/readyz`` or None)."""
    listing = await kube.list(
        PODS, owner.child_namespace, label_selector=n.selector_labels(owner.names)
    )
    pods = sorted(
        (
            p
            for p in listing.get("items", [])
            if (p.get("status") or {}).get("phase") == "Running"
            and not p["metadata"].get("deletionTimestamp")
        ),
        key=lambda p: str(p["metadata"]["name"]),
    )
    answered = False
    for pod in pods[:2]:  # replicas refuse alike: two looks are enough
        name = quote(str(pod["metadata"]["name"]), safe="")
        path = f"{PODS.path(owner.child_namespace)}/{name}:{RELAY_INTERNAL_PORT}/proxy"
        response = await kube.request("GET", path + RELAY_READINESS_PATH)
        if response.status_code in (401, 403):  # the API server's refusal, not the relay's
            logger.warning(
                "cannot read the relay's readiness through the API server: %s",
                response.text[:300],
                extra={"object": f"{owner.namespace}/{owner.name}"},
            )
            return True, None
        try:
            body = json.loads(response.text)
        except ValueError:
            continue
        if not isinstance(body, dict) or "ready" not in body:
            continue  # the API server's own answer (pod not reachable yet), not the relay's
        answered = True
        outbox = body.get("outbox")
        if isinstance(outbox, str) and outbox.startswith(REFUSED_PREFIX):
            return True, outbox[:MAX_MESSAGE]
    return answered, None


async def explain(
    kube: KubernetesPort,
    owner: Owner,
    spec: PagerDutyIntegrationSpec | None,
    memory: IntegrationMemory,
    relay: RelayResult,
    requeue_after: Callable[[float], None],
) -> RelayResult:
    """``relay`` with ``RelayAvailable`` saying why, when the relay refused its outbox; looks
    again PROBE_INTERVAL later while the relay stays unready (no event would say when)."""
    condition = relay.condition
    if (
        spec is None
        or spec.relay.effective_storage is not RelayStorage.POSTGRESQL
        or condition is None
        or condition.status == c.TRUE
    ):
        memory.relay_refusal = None
        return relay
    requeue_after(PROBE_INTERVAL)
    now = time.monotonic()
    if memory.relay_probed is None or now - memory.relay_probed >= PROBE_INTERVAL:
        try:
            answered, memory.relay_refusal = await refused(kube, owner)
        except KubernetesError as exc:
            answered, memory.relay_refusal = True, None
            logger.warning(
                "cannot read the relay's readiness through the API server: %s",
                exc,
                extra={"object": f"{owner.namespace}/{owner.name}"},
            )
        if answered:  # else no relay answered yet: look again at the next reconcile
            memory.relay_probed = now
    if memory.relay_refusal is None:
        return relay
    return RelayResult(
        c.ConditionUpdate(
            c.RELAY_AVAILABLE, c.FALSE, Reason.OUTBOX_NOT_OWNED, memory.relay_refusal
        ),
        relay=relay.relay,
    )
