"""PagerDuty simulator: Events API v2, REST API v2 subset and Webhooks v3, on one port.

Faithful to PagerDuty's official OpenAPI documents (shipped in ``specs/``) and to its
developer documentation; see :mod:`.simulator` for the Python handle.
"""

from pagerbridge_devkit.sandbox.pagerduty.simulator import (
    DEFAULT_API_TOKEN,
    DEFAULT_ROUTING_KEY,
    DEFAULT_SERVICE_ID,
    DEFAULT_USER_EMAIL,
    PagerDutySimulator,
)
from pagerbridge_devkit.sandbox.pagerduty.state import SimIncident, SimNote
from pagerbridge_devkit.sandbox.pagerduty.webhooks import DeliveryAttempt, sign

__all__ = [
    "DEFAULT_API_TOKEN",
    "DEFAULT_ROUTING_KEY",
    "DEFAULT_SERVICE_ID",
    "DEFAULT_USER_EMAIL",
    "DeliveryAttempt",
    "PagerDutySimulator",
    "SimIncident",
    "SimNote",
    "sign",
]
