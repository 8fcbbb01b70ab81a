"""The Secrets an integration references (routing key, API tokens): read by name, on demand.

Why not a watch: a watch of every Secret needs ``list``/``watch`` on all Secrets and hands
the operator every value in its namespaces (Helm release Secrets, other teams' keys).
The operator instead ``get``s the few Secrets an integration names, at each reconcile,
and keeps only what reconciling needs (:class:`.observed.SecretInfo`: key names, and
whether the routing key has the shape of one; the values are dropped here).

A changed Secret (a rotated token, a missing one created, a fixed routing key) is seen
by a periodic check per integration (``PAGERBRIDGE_SECRET_CHECK_SECONDS``, default 30):
it ``get``s the same names and compares their ``resourceVersion`` with what the last
reconcile saw; only a difference queues a reconcile. The relay needs no such signal: the
kubelet updates mounted Secret files in place and the relay reads them again.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pagerbridge.api.contract import is_routing_key
from pagerbridge.clients.kubernetes import KubernetesError, NotFound, Resource
from pagerbridge.controller.errors import KubernetesUnavailable
from pagerbridge.controller.kube_port import KubernetesPort
from pagerbridge.controller.state.observed import SecretInfo

SECRETS = Resource.builtin("Secret")
ABSENT = ""  # the version recorded for a Secret that does not exist


@dataclass(frozen=True)
class UserSecrets:
    infos: dict[str, SecretInfo]  # existing Secrets only, by name
    versions: dict[str, str]  # every referenced name -> resourceVersion (ABSENT if missing)


def secret_info(body: Mapping[str, object], routing_keys: Iterable[str]) -> SecretInfo:
    """Key names, and which of ``routing_keys`` hold a routing-key-shaped value.

    Only the keys named in ``routing_keys`` are decoded; the values go no further."""
    data = body.get("data") or {}
    assert isinstance(data, Mapping)
    shaped = set()
    for key in routing_keys:
        encoded = data.get(key)
        if encoded is None:
            continue
        try:
            if is_routing_key(base64.b64decode(str(encoded)).decode().strip()):
                shaped.add(key)
        except (binascii.Error, UnicodeDecodeError):
            continue
    keys = frozenset(str(key) for key in data)
    return SecretInfo(keys=keys, routing_key_shaped=frozenset(shaped))


def version_of(body: Mapping[str, object] | None) -> str:
    if body is None:
        return ABSENT
    meta = body.get("metadata") or {}
    assert isinstance(meta, Mapping)
    return str(meta.get("resourceVersion", "")) or ABSENT


async def _get(kube: KubernetesPort, namespace: str, name: str) -> dict[str, object] | None:
    try:
        body: dict[str, object] = await kube.get(SECRETS, namespace, name)
    except NotFound:
        return None
    except KubernetesError as exc:
        raise KubernetesUnavailable(str(exc)) from None
    return body


async def read(
    kube: KubernetesPort, namespace: str, refs: Mapping[str, Iterable[str]]
) -> UserSecrets:
    """``refs``: Secret name -> its keys that must hold a routing key (may be empty)."""
    infos: dict[str, SecretInfo] = {}
    versions: dict[str, str] = {}
    for name in sorted(refs):
        body = await _get(kube, namespace, name)
        versions[name] = version_of(body)
        if body is not None:
            infos[name] = secret_info(body, refs[name])
    return UserSecrets(infos, versions)


async def changed(kube: KubernetesPort, namespace: str, seen: Mapping[str, str]) -> bool:
    """Whether any Secret of ``seen`` (name -> version) was created, changed or deleted."""
    for name in sorted(seen):
        if version_of(await _get(kube, namespace, name)) != seen[name]:
            return True
    return False
