"""The Secrets an integration references (routing key, API tokens): read by name, on demand.

Why not a watch: a watch of every Secret needs ``list``/``watch`` on all Secrets and hands
the operator every value in its namespaces (Helm release Secrets, other teams' keys).
The operator instead ``get``s the few Secrets an integration names, at each reconcile,
and keeps only what reconciling needs (:class:`.observed.SecretInfo`: key names, and
whether the routing key has the shape of one; the values are dropped here).

A changed Secret (a rotated token, a missing one created, a fixed routing key) is seen
by a periodic check per integration (``PAGERBRIDGE_SECRET_CHECK_SECONDS``, default 30):
it ``get``s the same names and compares their ``resourceVersion`` with what the last
reconcile saw; only a difference queues a reconcile (integrations naming the same Secret
share reads: :class:`SharedReads`). The relay needs no such signal: the
kubelet updates mounted Secret files in place and the relay reads them again.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from pagerbridge.api.contract import is_routing_key
from pagerbridge.clients.kubernetes import KubernetesError, NotFound, Resource
from pagerbridge.controller.errors import KubernetesUnavailable
from pagerbridge.controller.kube_port import KubernetesPort
from pagerbridge.controller.state.observed import SecretInfo

SECRETS = Resource.builtin("Secret")
ABSENT = ""  # the version recorded for a Secret that does not exist
MAX_SHARED = 4096  # SharedReads entries before the old ones are dropped


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
    kube: KubernetesPort,
    namespace: str,
    refs: Mapping[str, Iterable[str]],
    shared: SharedReads | None = None,
    not_before: float = 0.0,
) -> UserSecrets:
    """``refs``: Secret name -> its keys that must hold a routing key (may be empty);
    ``shared`` with ``not_before``: a shared read sent since then will do."""
    infos: dict[str, SecretInfo] = {}
    versions: dict[str, str] = {}
    for name in sorted(refs):
        version, info = await _read_one(
            kube, namespace, name, frozenset(refs[name]), shared, not_before
        )
        versions[name] = version
        if info is not None:
            infos[name] = info
    return UserSecrets(infos, versions)


@dataclass
class _Read:
    started: float  # monotonic time the GET was sent
    version: str
    infos: dict[frozenset[str], SecretInfo | None]  # routing keys asked -> what was kept


class SharedReads:
    """Reads of the referenced Secrets, shared between the integrations that name the same
    Secret, by when each ``get`` was sent. Nothing of a value is kept (only
    :class:`.observed.SecretInfo`, per set of routing keys asked about).

    A reconcile takes a read sent after its latest trigger (``not_before``), so it never
    sees a Secret older than what made it run (a check that noticed a change queues it);
    the periodic check takes a read at most ``window`` seconds old, so a change is seen at
    most ``window`` later than by a check of its own (the reconciler uses a tenth of
    ``secret_check_seconds``, at most a second). Three hundred integrations referencing
    one routing-key Secret then read it about once per burst of reconciles and once a
    ``window`` for their checks, not once each."""

    def __init__(self, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self._reads: dict[tuple[str, str], _Read] = {}

    def lookup(self, namespace: str, name: str, not_before: float) -> _Read | None:
        read = self._reads.get((namespace, name))
        return read if read is not None and read.started >= not_before else None

    def store(self, namespace: str, name: str, read: _Read) -> None:
        known = self._reads.get((namespace, name))
        if known is not None and known.started > read.started:
            return  # a newer read finished first
        if len(self._reads) >= MAX_SHARED:
            horizon = self.clock() - max(self.window, 60.0)
            self._reads = {k: v for k, v in self._reads.items() if v.started >= horizon}
        self._reads[(namespace, name)] = read


async def _read_one(
    kube: KubernetesPort,
    namespace: str,
    name: str,
    routing_keys: frozenset[str],
    shared: SharedReads | None,
    not_before: float,
) -> tuple[str, SecretInfo | None]:
    if shared is not None:
        known = shared.lookup(namespace, name, not_before)
        if known is not None and routing_keys in known.infos:
            return known.version, known.infos[routing_keys]
    started = shared.clock() if shared is not None else 0.0
    body = await _get(kube, namespace, name)
    version = version_of(body)
    info = secret_info(body, routing_keys) if body is not None else None
    if shared is not None:
        known = shared.lookup(namespace, name, started)
        infos = dict(known.infos) if known is not None and known.version == version else {}
        shared.store(namespace, name, _Read(started, version, {**infos, routing_keys: info}))
    return version, info


async def changed(
    kube: KubernetesPort,
    namespace: str,
    seen: Mapping[str, str],
    shared: SharedReads | None = None,
) -> bool:
    """Whether any Secret of ``seen`` (name -> version) was created, changed or deleted."""
    for name in sorted(seen):
        if shared is not None:
            known = shared.lookup(namespace, name, shared.clock() - shared.window)
            if known is not None:
                if known.version != seen[name]:
                    return True
                continue
            version, _ = await _read_one(kube, namespace, name, frozenset(), shared, 0.0)
        else:
            version = version_of(await _get(kube, namespace, name))
        if version != seen[name]:
            return True
    return False
