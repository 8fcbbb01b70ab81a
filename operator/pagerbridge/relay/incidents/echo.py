"""Echo-loop prevention: how the relay recognises its own writes when they come back.

Both systems notify the relay of *every* change, including the ones the relay itself made,
so without care a comment would bounce BigPanda → PagerDuty → BigPanda forever. Two
independent signals, each enough on its own:

1. **Markers in the text.** A note the relay writes to PagerDuty ends with
   :data:`NOTE_MARKER`; a comment it writes to BigPanda ends with :data:`COMMENT_MARKER`.
   A PagerDuty note carrying either marker is never turned into a BigPanda comment, and a
   BigPanda comment carrying either marker is never turned into a PagerDuty note. Markers
   survive a relay that lost its database (new volume, another replica) and are visible to
   humans ("synced by PagerBridge").
2. **Durable memory** (the outbox's ``seen`` table): after writing, the relay remembers the
   PagerDuty note id (``wrote-note:<id>``) and the hash of the BigPanda comment text
   (``wrote-comment:<incident>:<sha256>``). This catches an echo even if a human or the
   other system altered the marker's whitespace.

Resolves: when the relay resolves one side *because of* the other, it remembers that
(``resolved-pd:<bp id>`` after sending PagerDuty a resolve triggered by BigPanda,
``resolved-bp:<bp id>`` after resolving BigPanda because of PagerDuty). The notification the
resolved side then sends back is recognised and not forwarded, so a resolve started on
either side produces exactly one resolve on the other and stops. Without the memory
(another replica) the loop still ends after one extra hop: BigPanda answers 409 to a second
resolve (counted as success) and PagerDuty ignores a resolve of a resolved incident. A new
trigger for the incident clears both memories, so a reopened incident syncs again.
"""

from __future__ import annotations

import hashlib

NOTE_MARKER = "[synced from BigPanda by PagerBridge]"
COMMENT_MARKER = "[synced from PagerDuty by PagerBridge]"
_MARKERS = (NOTE_MARKER, COMMENT_MARKER)
MAX_NOTE_LENGTH = 25000  # PagerDuty note content limit


def is_relay_text(text: str) -> bool:
    """True when the text was written by a PagerBridge relay (either direction)."""
    return any(marker in text for marker in _MARKERS)


def note_text(comment: str, author: str | None) -> str:
    """PagerDuty note content for a BigPanda comment."""
    who = f" by {author}" if author else ""
    suffix = f"\n\n(BigPanda comment{who}) {NOTE_MARKER}"
    return comment[: MAX_NOTE_LENGTH - len(suffix)] + suffix


def comment_text(text: str, author: str | None) -> str:
    """BigPanda comment text for a PagerDuty note or action."""
    who = f" by {author}" if author else ""
    return f"{text}\n\n(PagerDuty{who}) {COMMENT_MARKER}"


def text_hash(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).encode()).hexdigest()[:32]


def wrote_note_key(note_id: str) -> str:
    return f"wrote-note:{note_id}"


def wrote_comment_key(incident_id: str, text: str) -> str:
    return f"wrote-comment:{incident_id}:{text_hash(text)}"


def resolved_pd_key(incident_id: str) -> str:
    return f"resolved-pd:{incident_id}"


def mirrored_resolve_key(pd_incident_id: str, by_repair: bool = False) -> str:
    """A PagerDuty incident's resolve was written to BigPanda (resolved is final there),
    by any job, or (``by_repair``) by the repair sweep's."""
    return f"{'repaired' if by_repair else 'mirrored'}-resolve:{pd_incident_id}"


def resolved_bp_key(incident_id: str) -> str:
    return f"resolved-bp:{incident_id}"
