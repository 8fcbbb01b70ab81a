"""Async clients for PagerDuty (Events API v2, REST API v2) and BigPanda (Incidents API v2,
Webhook v2 integrations), shared by the relay and the operator. One module per API concept;
failures are the classes of :mod:`pagerbridge.clients.errors`.

Below the relay and the controller: imports only :mod:`pagerbridge.api`, never a program."""

# Before any httpx/httpcore use: see :mod:`._asynclib` (a failed import per lock operation);
# ._sniffio does it without importing httpcore (the relay never needs it).
from pagerbridge.clients import _sniffio  # noqa: F401
