"""The operator <-> relay contract beyond the RelayConfig document: each fact defined once.

The controller renders and advertises these (status, the Managed BigPanda integration, the
PagerDuty subscription), the relay serves and parses them, and the simulators speak them;
all three import them from here.

- the two public webhook paths of a relay;
- BigPanda's ``x-bp-config-*`` request headers (key override and tag mappings) and a
  builder for them;
- the shape of an Events API v2 routing key;
- the RelayConfig fields the relay applies without a restart;
- the effective base URLs of PagerDuty and BigPanda (region defaults);
- the relay's command line and the environment variable selecting a PostgreSQL outbox;
- the relay's two ports (public webhooks, internal endpoints) and the internal paths,
  the admin API among them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from pagerbridge.api.endpoints import BIGPANDA_API_URL, PAGERDUTY_API_URLS, PAGERDUTY_EVENTS_URLS

if TYPE_CHECKING:  # the relay imports this module without the custom resource models
    from pagerbridge.api.integration import BigPandaSpec, PagerDutySpec

# Where BigPanda's webhook and PagerDuty's Webhooks v3 subscription deliver, on the relay.
BIGPANDA_WEBHOOK_PATH: Final = "/v1/bigpanda/webhook"
PAGERDUTY_WEBHOOK_PATH: Final = "/v1/pagerduty/webhook"

# BigPanda webhook headers: the alert tag whose value overrides the routing key, and one
# header per tag mapping (``x-bp-config-tag-<tag>: <PagerDuty field>``).
KEY_OVERRIDE_HEADER: Final = "x-bp-config-pdfield"
TAG_MAPPING_HEADER_PREFIX: Final = "x-bp-config-tag-"

# Events API v2 integration (routing) keys: 32 letters and digits.
ROUTING_KEY_PATTERN: Final = r"[A-Za-z0-9]{32}"
_ROUTING_KEY_RE: Final = re.compile(ROUTING_KEY_PATTERN)

# RelayConfig fields (JSON names) the relay applies on a config reload. Any other change
# needs a restart, so the operator rolls the relay pods for it (its config-hash omits these).
HOT_RELOADED_FIELDS: Final = (
    "keyOverrideTag",
    "tagMappings",
    "links",
    "images",
    "severityMap",
    "sync",
)


def is_routing_key(value: str) -> bool:
    """True for a string shaped like an Events API v2 routing key (no surrounding spaces)."""
    return _ROUTING_KEY_RE.fullmatch(value) is not None


def bigpanda_config_headers(
    key_override_tag: str | None, tag_mappings: Iterable[tuple[str, str]]
) -> list[tuple[str, str]]:
    """The ``x-bp-config-*`` header pairs equivalent to a key override and tag mappings."""
    pairs: list[tuple[str, str]] = []
    if key_override_tag:
        pairs.append((KEY_OVERRIDE_HEADER, key_override_tag))
    pairs.extend((TAG_MAPPING_HEADER_PREFIX + tag, field) for tag, field in tag_mappings)
    return pairs


def pagerduty_events_url(spec: PagerDutySpec) -> str:
    """The Events API v2 base URL: the explicit one, else the region's."""
    return spec.events_url or PAGERDUTY_EVENTS_URLS[spec.region]


def pagerduty_api_url(spec: PagerDutySpec) -> str:
    """The REST API v2 base URL: the explicit one, else the region's."""
    return spec.api_url or PAGERDUTY_API_URLS[spec.region]


def bigpanda_api_url(spec: BigPandaSpec) -> str:
    """BigPanda's API base URL: the explicit one, else BigPanda's public one."""
    return spec.api_url or BIGPANDA_API_URL


# The relay's command line, as the operator renders it into the relay container and the
# dev kit's harness kubelet runs it
# (``pagerbridge relay --config FILE --host H --port P --internal-port I``).
RELAY_PROGRAM: Final = "pagerbridge"
RELAY_SUBCOMMAND: Final = "relay"
RELAY_CONFIG_FLAG: Final = "--config"
RELAY_HOST_FLAG: Final = "--host"
RELAY_PORT_FLAG: Final = "--port"
RELAY_INTERNAL_PORT_FLAG: Final = "--internal-port"

# The relay listens on two ports. The public one serves only the two webhook paths above
# (what a Service, Ingress or HTTPRoute exposes to BigPanda and PagerDuty); everything else
# answers 404 there. The internal one serves probes, metrics, the OpenAPI document and the
# authenticated admin API: for the kubelet, Prometheus and ``pagerbridge outbox`` only.
RELAY_PUBLIC_PORT: Final = 8080
RELAY_INTERNAL_PORT: Final = 9090
RELAY_PUBLIC_PORT_NAME: Final = "http"
RELAY_INTERNAL_PORT_NAME: Final = "internal"
RELAY_LIVENESS_PATH: Final = "/healthz"
RELAY_READINESS_PATH: Final = "/readyz"
RELAY_METRICS_PATH: Final = "/metrics"
RELAY_OPENAPI_PATH: Final = "/openapi.json"
# Admin API (internal port). The token of the integration's admin Secret goes in
# ``Authorization: Bearer <token>`` or, through the API server's pod proxy (where the
# Authorization header authenticates to the API server itself), in this header.
RELAY_ADMIN_TOKEN_HEADER: Final = "x-pagerbridge-admin-token"
RELAY_ADMIN_PENDING_PATH: Final = "/admin/v1/pending"
RELAY_ADMIN_DEAD_LETTERS_PATH: Final = "/admin/v1/dead-letters"
RELAY_ADMIN_REPLAY_PATH: Final = "/admin/v1/dead-letters/{job_id}/replay"  # POST
# What the repair sweep's next pass would repair (read only; issue 27).
RELAY_ADMIN_DRIFT_PATH: Final = "/admin/v1/drift"

# When this variable is set in the relay's environment, its outbox lives in the PostgreSQL
# database it names (a libpq connection URI, from a Secret the operator references) and
# several replicas may share it; otherwise the outbox is the embedded SQLite file.
OUTBOX_DSN_ENV: Final = "PAGERBRIDGE_OUTBOX_DSN"
# The PostgreSQL schema holding one integration's outbox (created by the relay), so that
# integrations may share a database without sharing tables.
OUTBOX_SCHEMA_ENV: Final = "PAGERBRIDGE_OUTBOX_SCHEMA"


def outbox_schema(namespace: str, integration: str) -> str:
    """The outbox schema of an integration: stable across re-creation of the resource (a
    GitOps prune and re-apply finds its pending work), unambiguous (``/`` never appears in
    a namespace or name), and a valid unquoted PostgreSQL identifier."""
    digest = hashlib.sha256(f"{namespace}/{integration}".encode()).hexdigest()[:20]
    return f"pagerbridge_{digest}"


def relay_command(
    config_file: str,
    host: str,
    port: int = RELAY_PUBLIC_PORT,
    internal_port: int = RELAY_INTERNAL_PORT,
) -> list[str]:
    """The relay container's command: serve ``config_file``'s webhooks on ``host:port`` and
    its internal endpoints on ``host:internal_port``."""
    return [
        RELAY_PROGRAM,
        RELAY_SUBCOMMAND,
        RELAY_CONFIG_FLAG,
        config_file,
        RELAY_HOST_FLAG,
        host,
        RELAY_PORT_FLAG,
        str(port),
        RELAY_INTERNAL_PORT_FLAG,
        str(internal_port),
    ]
