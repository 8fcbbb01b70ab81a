"""BigPanda simulator: incidents, outbound webhooks (classic and Webhook v2), Incidents
API v2 and the Webhook v2 integrations API. See :mod:`.app`."""

from pagerbridge.sandbox.bigpanda.app import (
    DEFAULT_API_TOKEN,
    DEFAULT_API_USER,
    DEFAULT_ENVIRONMENT_ID,
    BigPandaSimulator,
)
from pagerbridge.sandbox.bigpanda.store import AlreadyResolved, IncidentNotFound, SimIncident
from pagerbridge.sandbox.bigpanda.workflow import TRIGGER_FIELD

__all__ = [
    "DEFAULT_API_TOKEN",
    "DEFAULT_API_USER",
    "DEFAULT_ENVIRONMENT_ID",
    "TRIGGER_FIELD",
    "AlreadyResolved",
    "BigPandaSimulator",
    "IncidentNotFound",
    "SimIncident",
]
