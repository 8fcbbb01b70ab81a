"""What the operator keeps of a Secret an integration references (pure parts)."""

from __future__ import annotations

import base64
from typing import Any

from pagerbridge.clients.kubernetes import Resource
from pagerbridge.controller.state.user_secrets import (
    ABSENT,
    SharedReads,
    changed,
    read,
    secret_info,
    version_of,
)

from .fake_kube import FakeKube
from .objects import NS, secret

ROUTING_KEY = "0123456789abcdef0123456789abcdef"


class CountingKube(FakeKube):
    gets = 0

    async def get(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any]:
        self.gets += 1
        return await super().get(resource, namespace, name)


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def test_only_the_routing_keys_are_decoded_and_no_value_is_kept() -> None:
    body = {
        "metadata": {"name": "pd", "resourceVersion": "7"},
        "data": {
            "routing-key": _b64(ROUTING_KEY),
            "api-token": _b64(ROUTING_KEY),  # key-shaped, but not asked about
            "garbage": "%%%",  # never decoded, so no error
        },
    }
    info = secret_info(body, ["routing-key"])
    assert info.keys == {"routing-key", "api-token", "garbage"}
    assert info.routing_key_shaped == {"routing-key"}
    assert ROUTING_KEY not in repr(info)
    assert secret_info(body, []).routing_key_shaped == frozenset()
    assert secret_info(body, ["garbage", "missing"]).routing_key_shaped == frozenset()


def test_versions_tell_absent_from_present() -> None:
    assert version_of(None) == ABSENT
    assert version_of({"metadata": {"resourceVersion": "42"}}) == "42"


async def test_reads_are_shared_when_sent_after_the_trigger_and_checks_for_a_window() -> None:
    """Integrations naming the same Secret share one ``get``: a reconcile takes a read sent
    since its trigger, a check one at most ``window`` old; a change made meanwhile is seen
    by the first reconcile triggered after it and by the first check a window later."""
    kube = CountingKube()
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY}), NS)
    now = [100.0]
    shared = SharedReads(1.0, clock=lambda: now[0])
    refs = {"pd": ["routing-key"]}
    first = await read(kube, NS, refs, shared, not_before=100.0)
    again = await read(kube, NS, refs, shared, not_before=99.0)  # triggered earlier
    assert kube.gets == 1
    assert again == first
    assert first.infos["pd"].routing_key_shaped == {"routing-key"}
    other_keys = await read(kube, NS, {"pd": []}, shared, not_before=0.0)
    assert kube.gets == 2  # other routing keys asked about: read again
    assert other_keys.versions == first.versions
    assert await changed(kube, NS, first.versions, shared) is False
    assert kube.gets == 2  # the check took the read of a moment ago

    bad = {"data": {"routing-key": _b64("not-a-key")}}
    await kube.merge_patch(FakeKube.resource("Secret"), NS, "pd", bad)
    now[0] = 100.5
    assert await changed(kube, NS, first.versions, shared) is False  # within the window
    stale = await read(kube, NS, refs, shared, not_before=100.0)
    assert stale == first  # triggered before the change: the shared read still does
    fresh = await read(kube, NS, refs, shared, not_before=100.5)  # triggered after it
    assert kube.gets == 3
    assert fresh.versions != first.versions
    assert fresh.infos["pd"].routing_key_shaped == frozenset()
    now[0] = 102.0
    assert await changed(kube, NS, first.versions, shared) is True
    assert kube.gets == 4
    assert await changed(kube, NS, fresh.versions) is False  # unshared: always a read
    assert kube.gets == 5
    assert ROUTING_KEY not in repr(shared._reads)  # no value is kept
