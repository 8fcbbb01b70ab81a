"""The inbound token rotation plan: both tokens accepted until BigPanda switched, then
only the new one."""

from __future__ import annotations


def test_token_rotation_plan_keeps_both_tokens_until_bigpanda_switched() -> None:
    from pagerbridge.controller.steps import token_rotation as tr

    start = tr.plan("r1", ["old"], {}, now=100.0, grace=10.0, new_token=lambda: "new")
    assert start.tokens == ["old", "new"]
    assert start.bigpanda_token == "old"
    marks = dict(start.annotations or {})
    early = tr.plan("r1", ["old", "new"], marks, now=105.0, grace=10.0, new_token=lambda: "x")
    assert (early.tokens, early.bigpanda_token) == (None, "old")
    switched = tr.plan("r1", ["old", "new"], marks, now=112.0, grace=10.0, new_token=lambda: "x")
    assert (switched.tokens, switched.bigpanda_token) == (None, "new")
    done = tr.plan("r1", ["old", "new"], marks, now=121.0, grace=10.0, new_token=lambda: "x")
    assert done.tokens == ["new"]
    marks.update(done.annotations or {})
    idle = tr.plan("r1", ["new"], marks, now=500.0, grace=10.0, new_token=lambda: "x")
    assert (idle.tokens, idle.bigpanda_token, idle.requeue_after) == (None, "new", None)
    assert tr.plan(None, ["t"], {}, 0.0, 10.0, lambda: "x").tokens is None  # never by accident
