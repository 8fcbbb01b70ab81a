"""BigPanda simulator: incidents, outbound webhooks (classic and Webhook v2), Incidents
API v2 and the Webhook v2 integrations API. See :mod:`.app`."""

from pagerbridge.clients.bigpanda_integrations import TRIGGER_FIELD
from pagerbridge_devkit.sandbox.bigpanda.app import (
    DEFAULT_API_TOKEN,
    DEFAULT_API_USER,
    DEFAULT_ENVIRONMENT_ID,
    BigPandaSimulator,
)
from pagerbridge_devkit.sandbox.bigpanda.store import AlreadyResolved, IncidentNotFound, SimIncident

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
