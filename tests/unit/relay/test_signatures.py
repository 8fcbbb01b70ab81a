"""PagerDuty webhook signatures (relay.inbound.signatures): rotation, forgery."""

from __future__ import annotations

from pagerbridge.relay.inbound.signatures import sign, verify


def test_signatures_rotation_and_forgery():
    body = b'{"event": {}}'
    assert verify(sign("s1", body), body, ["s1"])
    assert verify(f"{sign('old', body)},{sign('new', body)}", body, ["new"])
    assert verify(sign("old", body), body, ["new", "old"])
    assert not verify(sign("s1", body), body + b" ", ["s1"])
    assert not verify(sign("s1", body)[:-2], body, ["s1"])
    assert not verify("v0=abc", body, ["s1"])
    assert not verify(None, body, ["s1"])
    assert not verify(sign("s1", body), body, [])
