"""What the operator keeps of a Secret an integration references (pure parts)."""

from __future__ import annotations

import base64

from pagerbridge.controller.state.user_secrets import ABSENT, secret_info, version_of

ROUTING_KEY = "0123456789abcdef0123456789abcdef"


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
