"""What a person watching the demo sees: progress lines, masked secrets, the summary.

Plain text, flushed line by line (the demo is often piped into a log). Secret values are
never printed whole: :func:`mask` keeps the last four characters, enough to tell two keys
apart.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from pagerbridge_devkit.demo.steps import StepResult

INDENT = "        "


def mask(secret: str) -> str:
    """``****b7c8``: the last four characters of a secret, never more."""
    return "****" + secret[-4:] if len(secret) >= 12 else "****"


class Printer:
    """Writes progress; a reader that went away (``pagerbridge demo | head``) only stops
    the output, never the demo or its cleanup."""

    def __init__(self, stream: TextIO = sys.stdout) -> None:
        self.stream = stream
        self.gone = False

    def line(self, text: str = "") -> None:
        if self.gone:
            return
        try:
            print(text, file=self.stream, flush=True)
        except OSError:  # BrokenPipeError, or the terminal closed
            self.gone = True
            _silence(self.stream)

    def detail(self, text: str) -> None:
        for line in text.splitlines():
            self.line(INDENT + line)

    def section(self, heading: str) -> None:
        self.line(f"\n== {heading}")

    def step_started(self, number: int, total: int, title: str) -> None:
        self.line(f"[{number:2d}/{total}] {title} ...")

    def step_done(self, result: StepResult) -> None:
        if result.detail:
            self.detail(result.detail)
        mark = "ok" if result.ok else "FAILED"
        self.line(f"{INDENT}{mark} ({result.seconds:.1f} s)")

    def log_tails(self, tails: Iterable[tuple[str, Path, list[str]]]) -> None:
        for name, path, lines in tails:
            self.line(f"\nlast lines of the {name} log ({path}):")
            for line in lines:
                self.line("  | " + line)

    def summary(self, results: list[StepResult], total: int) -> None:
        self.line("\nsummary")
        width = max([len(r.title) for r in results] + [4])
        self.line(f"  {'#':>2}  {'step':<{width}}  {'result':<7}  {'seconds':>7}")
        self.line(f"  {'--':>2}  {'-' * width}  {'-' * 7}  {'-' * 7}")
        for number, result in enumerate(results, 1):
            mark = "ok" if result.ok else "FAILED"
            self.line(f"  {number:>2}  {result.title:<{width}}  {mark:<7}  {result.seconds:>7.1f}")
        skipped = total - len(results)
        if skipped:
            self.line(f"      ({skipped} later step(s) not run)")
        self.line(f"  total {sum(r.seconds for r in results):.1f} s")


def _silence(stream: TextIO) -> None:
    """Point the stream's descriptor at /dev/null, so the interpreter's final flush of
    what is still buffered does not fail again at exit."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)


def tail(path: Path, lines: int = 15) -> list[str]:
    """The last ``lines`` lines of a log file (empty when it does not exist)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]
