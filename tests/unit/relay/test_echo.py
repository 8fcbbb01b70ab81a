"""Echo rules (relay.incidents.echo): the markers that keep the relay from sending its own
changes back."""

from __future__ import annotations

from pagerbridge.relay.incidents import echo


def test_echo_markers():
    note = echo.note_text("hello", "alice")
    comment = echo.comment_text("hi", "bob")
    assert echo.is_relay_text(note)
    assert echo.is_relay_text(comment)
    assert not echo.is_relay_text("hello")
    assert echo.wrote_comment_key("i", comment) == echo.wrote_comment_key("i", comment + " \n")
    assert len(echo.note_text("x" * 30000, None)) <= echo.MAX_NOTE_LENGTH
