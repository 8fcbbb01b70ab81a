"""The two severity vocabularies and the default mapping between them.

BigPanda incidents carry a ``status`` of critical, warning, unknown or ok; PagerDuty Events
API v2 takes a ``severity`` of critical, error, warning or info.
"""

from __future__ import annotations

from enum import StrEnum


class BigPandaStatus(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    UNKNOWN = "unknown"
    OK = "ok"


class PagerDutySeverity(StrEnum):
    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


DEFAULT_SEVERITY_MAP: dict[BigPandaStatus, PagerDutySeverity] = {
    BigPandaStatus.CRITICAL: PagerDutySeverity.CRITICAL,
    BigPandaStatus.WARNING: PagerDutySeverity.WARNING,
    BigPandaStatus.UNKNOWN: PagerDutySeverity.ERROR,
    BigPandaStatus.OK: PagerDutySeverity.INFO,
}
