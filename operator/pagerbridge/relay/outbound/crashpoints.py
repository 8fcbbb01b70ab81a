"""Named instants at which a test can have the relay SIGKILL itself (inert otherwise).

Exactly-once claims ("one PagerDuty note per BigPanda comment whatever instant the relay is
killed at") can only be tested by killing the process at each of those instants, which an
outside ``kill`` hits by luck at best. The delivery code therefore names them:

==============================  =========================================================
``<kind>:attempt_begun``        an attempt is recorded; its upstream calls are about to
                                start (a process killed here: a crash-looping job)
``pd_note:before_post``         the note job is about to POST the note to PagerDuty
``pd_note:after_post``          PagerDuty answered the POST; nothing recorded yet
``bp_comment:before_post``      a BigPanda comment job is about to POST the comment
``bp_comment:after_post``       BigPanda answered the POST; nothing recorded yet
``<kind>:before_commit``        a delivery succeeded; its completion is not committed
``<kind>:after_commit``         the completion (job deleted) is committed
==============================  =========================================================

The hook is **inert unless** the environment variable ``PAGERBRIDGE_RELAY_CRASH_AT`` is set
when the relay starts, to ``<point>`` or ``<point>@<n>`` (the n-th time the point is reached,
default 1). Nothing in the product sets it; only tests do (``tests/unit/relay``). When it is
unset, :func:`reached` is a single ``None`` comparison.
"""

from __future__ import annotations

import os
import signal

ENV = "PAGERBRIDGE_RELAY_CRASH_AT"


def _parse(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    point, _, count = value.partition("@")
    return point, int(count) if count else 1


_TARGET = _parse(os.environ.get(ENV))
_seen = 0


def reached(point: str) -> None:
    """SIGKILL this process if ``point`` is the configured crash point (its n-th time)."""
    global _seen
    if _TARGET is None or point != _TARGET[0]:
        return
    _seen += 1
    if _seen >= _TARGET[1]:
        os.kill(os.getpid(), signal.SIGKILL)
