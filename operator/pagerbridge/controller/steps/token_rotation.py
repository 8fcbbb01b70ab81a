"""Rotating the generated inbound webhook token on request, without refusing a webhook.

The token is never rotated by accident: only a new value of the integration annotation
``pagerbridge.io/rotate-token`` (any string, e.g. a date) starts a rotation. The relay
accepts every token listed in its token file (one per line), so the rotation runs in
three steps, each ``grace`` seconds apart (the time a kubelet needs to update mounted
Secret files; ``PAGERBRIDGE_TOKEN_ROTATION_GRACE_SECONDS``, default 120):

1. the Secret holds ``old`` and ``new``; BigPanda (Managed mode) still sends ``old``;
2. after ``grace``: BigPanda is switched to ``new`` (both still accepted);
3. after twice ``grace``: the Secret holds only ``new``.

In Manual mode the user switches BigPanda to the new token (``pagerbridge webhook-config
--reveal``) within that window. The progress lives in the token Secret's annotations, so an
operator restart resumes where it stopped. :func:`plan` is pure.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pagerbridge.api import GROUP
from pagerbridge.clients.kubernetes import Resource
from pagerbridge.controller.kube_port import KubernetesPort

ANNOTATION_REQUEST = f"{GROUP}/rotate-token"  # on the integration (user) and the Secret (done)
ANNOTATION_PHASE = f"{GROUP}/rotation-phase"
ANNOTATION_SINCE = f"{GROUP}/rotation-since"
BOTH = "both"
DONE = "done"


@dataclass(frozen=True)
class RotationStep:
    tokens: list[str] | None  # new Secret content, None: unchanged
    annotations: dict[str, str] | None  # Secret annotations to set
    bigpanda_token: str  # the token BigPanda must send now
    requeue_after: float | None


def plan(
    request: str | None,
    tokens: list[str],
    annotations: Mapping[str, str],
    now: float,
    grace: float,
    new_token: Callable[[], str],
) -> RotationStep:
    current = tokens[-1]
    if request and request != annotations.get(ANNOTATION_REQUEST):
        return RotationStep(
            tokens=[current, new_token()],
            annotations={
                ANNOTATION_REQUEST: request,
                ANNOTATION_PHASE: BOTH,
                ANNOTATION_SINCE: f"{now:.3f}",
            },
            bigpanda_token=current,
            requeue_after=grace,
        )
    if annotations.get(ANNOTATION_PHASE) == BOTH and len(tokens) > 1:
        elapsed = now - float(annotations.get(ANNOTATION_SINCE, "0"))
        if elapsed < grace:
            return RotationStep(None, None, tokens[0], grace - elapsed)
        if elapsed < 2 * grace:
            return RotationStep(None, None, current, 2 * grace - elapsed)
        return RotationStep([current], {ANNOTATION_PHASE: DONE}, current, None)
    return RotationStep(None, None, current, None)


def decode_tokens(secret: Mapping[str, object], key: str) -> list[str]:
    data = secret.get("data") or {}
    assert isinstance(data, dict)
    text = base64.b64decode(str(data.get(key, ""))).decode()
    return [line.strip() for line in text.splitlines() if line.strip()]


async def write(
    kube: KubernetesPort, namespace: str, name: str, key: str, step: RotationStep
) -> None:
    patch: dict[str, object] = {}
    if step.tokens is not None:
        content = "\n".join(step.tokens) + "\n"
        patch["data"] = {key: base64.b64encode(content.encode()).decode()}
    if step.annotations:
        patch["metadata"] = {"annotations": step.annotations}
    if patch:
        await kube.merge_patch(Resource.builtin("Secret"), namespace, name, patch)
