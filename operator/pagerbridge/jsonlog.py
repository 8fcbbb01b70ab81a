"""Structured JSON logs that cannot print a secret: one schema for the operator and the relay.

Every record becomes one JSON line (``ts``, ``level``, ``logger``, ``msg`` and the
``extra`` fields; kopf's per-object records add ``k8s_ref``). Both programs call
:func:`configure`; nothing else installs a handler. A :class:`Redactor` knows the secret
values currently loaded (routing key, tokens, webhook secrets), and patterns of secrets
too many to remember one by one (the relay's override keys), and replaces any occurrence
with ``[REDACTED]``, as a last line of defence behind the habit of never logging them.

Redaction works on the record's values, before they are encoded: a secret holding a quote,
a backslash, a newline, a control character or non-ASCII text is escaped by the JSON
encoder, so a search of the encoded line would miss it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


REDACTED = "[REDACTED]"


class Redactor:
    """Holds the secret values to scrub from log lines (replaced on every config reload)
    and the patterns of secrets (each match scrubbed whole)."""

    def __init__(self) -> None:
        self._secrets: tuple[str, ...] = ()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def set_patterns(self, patterns: Iterable[str]) -> None:
        """Regular expressions of secrets (replacing the previous ones)."""
        joined = "|".join(f"(?:{p})" for p in patterns)
        with self._lock:
            self._pattern = re.compile(joined) if joined else None

    def set_secrets(self, values: Iterable[str]) -> None:
        # Longest first, so a secret containing another is scrubbed whole.
        cleaned = sorted({v for v in values if v and len(v) >= 4}, key=len, reverse=True)
        with self._lock:
            self._secrets = tuple(cleaned)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
        return text

    def scrub_value(self, value: Any) -> Any:
        """A log field with every string in it scrubbed (dicts, lists and tuples walked;
        anything else but numbers, booleans and None becomes its scrubbed ``str``)."""
        if isinstance(value, str):
            return self.scrub(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, dict):
            return {self.scrub(str(k)): self.scrub_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.scrub_value(v) for v in value]
        return self.scrub(str(value))


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
        # Scrubbed before encoding (the encoder escapes quotes, backslashes, control chars).
        return json.dumps(self.redactor.scrub_value(entry), ensure_ascii=False)


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
