"""Reading one Secret key's value, for the few calls that need a credential (PagerDuty
REST, BigPanda API). Values are returned to the caller only, never logged or stored."""

from __future__ import annotations

import base64

from pagerbridge.clients.kubernetes import KubernetesError, NotFound, Resource
from pagerbridge.controller.errors import KubernetesUnavailable, SecretNotFound
from pagerbridge.controller.kube_port import KubernetesPort

SECRETS = Resource.builtin("Secret")


async def read_secret_key(
    kube: KubernetesPort, namespace: str, name: str, key: str, what: str
) -> str:
    try:
        secret = await kube.get(SECRETS, namespace, name)
    except NotFound:
        raise SecretNotFound(f"Secret {namespace}/{name} (for {what}) not found") from None
    except KubernetesError as exc:
        raise KubernetesUnavailable(str(exc)) from None
    encoded = (secret.get("data") or {}).get(key)
    if encoded is None:
        raise SecretNotFound(f"Secret {namespace}/{name} has no key {key!r} (for {what})")
    return base64.b64decode(encoded).decode().strip()
