"""httpcore asks which async library runs it by importing ``sniffio`` on every lock,
semaphore and connection-pool operation (``httpcore._synchronization.current_async_library``),
falling back to asyncio when the import fails. ``sniffio`` is not installed here (anyio 4
no longer needs it), so every one of those calls searched ``sys.path`` for a module that is
not there: about 30 µs each, several per request, measured at about 1 s of CPU in the
operator's 300-integration benchmark (``tests/bench/operator_scale.py --profile``) and a
share of the relay's CPU per delivered event.

Marking the absent module as absent (``sys.modules["sniffio"] = None``, which makes
``import sniffio`` raise ``ImportError`` at once, as documented for the import system)
gives httpcore the same answer, asyncio, in about 1 µs. An installed ``sniffio`` is left
alone and used.
"""

from __future__ import annotations

import importlib.util
import sys


def mark_sniffio_absent() -> bool:
    """True when ``sniffio`` is not installed and is now marked absent."""
    if "sniffio" in sys.modules or importlib.util.find_spec("sniffio") is not None:
        return False
    sys.modules["sniffio"] = None  # type: ignore[assignment]
    return True


mark_sniffio_absent()
