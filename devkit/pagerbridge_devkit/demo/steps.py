"""What a demo step is, how it fails, and how it waits for an effect.

A step is an action plus a check that its observable effect happened, within a deadline.
Its result (ok or failed, duration, what was seen) ends up in the summary table; a failed
step names the logs worth reading.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


class StepFailed(Exception):
    """The step's effect did not show up (in time); the message says what was expected."""


@dataclass(frozen=True)
class Step:
    title: str
    action: Callable[[], str]  # returns what was seen, one fact per line
    logs: tuple[str, ...] = ()  # names of the logs relevant when this step fails
    section: str = ""  # a heading printed before this step, when it opens a new part


@dataclass
class StepResult:
    title: str
    ok: bool
    seconds: float
    detail: str = ""
    logs: tuple[str, ...] = field(default=())


def wait_for(
    predicate: Callable[[], T | None], what: str, timeout: float, interval: float = 0.2
) -> T:
    """Poll ``predicate`` until it returns something truthy; StepFailed after ``timeout``.

    ``predicate`` may raise :class:`StepFailed` itself to stop early (e.g. a process died).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise StepFailed(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
