"""httpcore's per-operation ``import sniffio`` made cheap (see :mod:`._asynclib` for why),
in a module of its own that imports neither httpx nor httpcore: the package imports it
first, and the relay, whose upstream calls go through aiohttp
(:mod:`pagerbridge.relay.outbound.http_pool`), then never loads httpcore at all (issue 30:
idle RSS, httpcore with h11 and h2 is about 2.5 MiB)."""

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
