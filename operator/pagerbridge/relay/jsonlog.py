"""The relay's logs: the shared JSON schema of :mod:`pagerbridge.jsonlog` (one for the
operator and the relay), with the redactor the relay fills with its loaded secrets."""

from __future__ import annotations

from pagerbridge.jsonlog import REDACTOR, JsonFormatter, Redactor, configure

__all__ = ["REDACTOR", "JsonFormatter", "Redactor", "configure"]
