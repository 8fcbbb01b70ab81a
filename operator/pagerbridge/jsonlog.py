"""Structured JSON logs that cannot print a secret: one schema for the operator and the relay.

Every record becomes one JSON line (``ts``, ``level``, ``logger``, ``msg`` and the
``extra`` fields; kopf's per-object records add ``k8s_ref``). Both programs call
:func:`configure`; nothing else installs a handler. A :class:`Redactor` knows the secret
values currently loaded (routing key, tokens, webhook secrets) and replaces any
occurrence in the rendered line with ``[REDACTED]``, as a last line of defence behind the
habit of never logging them.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class Redactor:
    """Holds the secret values to scrub from log lines (replaced on every config reload)."""

    def __init__(self) -> None:
        self._secrets: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def set_secrets(self, values: Iterable[str]) -> None:
        # Longest first, so a secret containing another is scrubbed whole.
        cleaned = sorted({v for v in values if v and len(v) >= 4}, key=len, reverse=True)
        with self._lock:
            self._secrets = tuple(cleaned)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "[REDACTED]")
        return text


REDACTOR = Redactor()


class JsonFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key != "color_message":
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["error_type"] = record.exc_info[0].__name__
            entry["traceback"] = self.formatException(record.exc_info)
        line = json.dumps(entry, default=str, ensure_ascii=False)
        return self.redactor.scrub(line)


def configure(
    level: str = "INFO",
    redactor: Redactor = REDACTOR,
    levels: dict[str, int] | None = None,
) -> None:
    """Route every logger (ours, uvicorn's, kopf's) through one JSON handler on stderr;
    ``levels`` sets some loggers' own levels (kopf's WARNING unless verbose, say)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(redactor))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "httpcore"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    for name, value in (levels or {}).items():
        logging.getLogger(name).setLevel(value)
