"""httpcore's per-operation ``import sniffio`` (:mod:`pagerbridge.clients._asynclib`): with
``sniffio`` absent it must fail at once and httpcore must still find asyncio; an installed
``sniffio`` is never shadowed."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import httpcore._synchronization as synchronization

import pagerbridge.clients  # noqa: F401  (applies the marking)
from pagerbridge.clients import _asynclib


def test_httpcore_still_runs_on_asyncio() -> None:
    async def library() -> str:
        return synchronization.current_async_library()

    assert asyncio.run(library()) == "asyncio"


def test_an_absent_sniffio_is_marked_absent_and_an_installed_one_left_alone() -> None:
    code = (
        "import sys, importlib.util\n"
        "installed = importlib.util.find_spec('sniffio') is not None\n"
        "import pagerbridge.clients\n"
        "marked = 'sniffio' in sys.modules and sys.modules['sniffio'] is None\n"
        "assert marked != installed, (marked, installed)\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"
    assert _asynclib.mark_sniffio_absent() is False  # already decided: nothing more to do
