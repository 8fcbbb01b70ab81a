"""Operator configuration, read once from the environment (``PAGERBRIDGE_*``).

``PAGERBRIDGE_RELAY_DEFAULTS`` holds the operator-wide relay pod settings as JSON (the Helm
chart writes its ``relay`` values there); ``spec.relay`` of each integration overrides
them (:mod:`pagerbridge.api.relay_pod`). A malformed value stops the operator at start.

The egress and cost bounds (``PAGERBRIDGE_EGRESS_*``, ``PAGERBRIDGE_CALL_*``,
``PAGERBRIDGE_RECONCILE_DEADLINE_SECONDS``, ``PAGERBRIDGE_NAMESPACE_CONCURRENCY``) and the
relay policy (``PAGERBRIDGE_RELAY_IMAGE_PREFIXES``, ``PAGERBRIDGE_RELAY_SERVICE_TYPES``)
and the expose policy (``PAGERBRIDGE_EXPOSE_*``, :mod:`.expose_policy`) and the relays'
NetworkPolicy (``PAGERBRIDGE_RELAY_NETWORK_POLICY``, :mod:`.policy.network`) are the
cluster admin's, set from the Helm values: no CR can widen them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from pydantic import ValidationError

from pagerbridge import DEFAULT_IMAGE
from pagerbridge.api import RelayPodSettings, SecretKeyRef
from pagerbridge.clients._http import CallLimits
from pagerbridge.clients.egress import DEFAULT_ALLOWED_HOSTS, EgressPolicy
from pagerbridge.controller.policy import network
from pagerbridge.controller.policy.expose import ExposePolicy
from pagerbridge.controller.policy.relay import RelayPolicy

RELAY_DEFAULTS_ENV = "PAGERBRIDGE_RELAY_DEFAULTS"
# The default database of storage PostgreSQL: a Secret name (and key, default "uri") that
# each integration finds in its own namespace; never a Secret of the operator's namespace,
# so no tenant is handed credentials the platform team did not give its namespace. The
# name may hold "{name}", the integration's name ("{name}-outbox-db"): one Secret, so one
# PostgreSQL role, per integration, the supported set-up (docs/relay.md).
RELAY_DATABASE_SECRET_ENV = "PAGERBRIDGE_RELAY_DATABASE_SECRET"
RELAY_DATABASE_KEY_ENV = "PAGERBRIDGE_RELAY_DATABASE_SECRET_KEY"


class SettingsError(ValueError):
    """The operator's environment is malformed; the message names the variable."""


def relay_network_policy(text: str | None) -> network.RelayNetworkPolicy:
    try:
        return network.RelayNetworkPolicy.parse(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise SettingsError(f"{network.ENV}: {where}: {first['msg']}") from None


def relay_pod_defaults(text: str | None) -> RelayPodSettings:
    if not text:
        return RelayPodSettings()
    try:
        return RelayPodSettings.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
        raise SettingsError(f"{RELAY_DEFAULTS_ENV}: {problems}") from None


INTEGRATION_PLACEHOLDER = "{name}"


@dataclass(frozen=True)
class DatabaseDefault:
    """The default database Secret of storage PostgreSQL: a name, ``{name}`` standing for
    the integration's name, and the key of its URI."""

    template: str
    key: str = "uri"

    @property
    def per_integration(self) -> bool:
        return INTEGRATION_PLACEHOLDER in self.template

    def for_integration(self, integration: str) -> SecretKeyRef:
        """The Secret key of ``integration`` (raises ValidationError when the name it makes
        is not a Secret name, e.g. too long)."""
        return SecretKeyRef(
            name=self.template.replace(INTEGRATION_PLACEHOLDER, integration), key=self.key
        )


def relay_database_default(name: str | None, key: str | None) -> DatabaseDefault | None:
    if not name:
        return None
    try:
        default = DatabaseDefault(name, key or "uri")
        default.for_integration("x")  # a valid Secret name once filled in
        return default
    except ValidationError as exc:
        problems = "; ".join(error["msg"] for error in exc.errors())
        raise SettingsError(
            f"{RELAY_DATABASE_SECRET_ENV}/{RELAY_DATABASE_KEY_ENV}: {problems}"
        ) from None


# Environment variables of the egress policy (the chart renders them from egress.*; the
# dev kit and tests set them to reach simulators on 127.0.0.1 over http).
ENV_EGRESS_ALLOWED_HOSTS = "PAGERBRIDGE_EGRESS_ALLOWED_HOSTS"  # comma-separated host[:port]
ENV_EGRESS_ALLOWED_NETWORKS = "PAGERBRIDGE_EGRESS_ALLOWED_NETWORKS"  # comma-separated CIDRs
ENV_EGRESS_ALLOW_HTTP = "PAGERBRIDGE_EGRESS_ALLOW_HTTP"  # "true": http:// URLs allowed
# The account namespace: the Secrets of ClusterPagerDutyAccounts and ClusterBigPandaAccounts
# and the relays of the integrations using them live there (empty: accounts are off).
ENV_ACCOUNT_NAMESPACE = "PAGERBRIDGE_ACCOUNT_NAMESPACE"
ENV_CLUSTER_ID = "PAGERBRIDGE_CLUSTER_ID"  # pins the cluster identity of ownership stamps


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _list(value: str | None, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    if value is None:
        return default
    return tuple(item.strip() for item in value.split(",") if item.strip())


@dataclass(frozen=True)
class OperatorSettings:
    relay_image: str = DEFAULT_IMAGE
    image_pull_policy: str = "IfNotPresent"
    relay_pod_defaults: RelayPodSettings = field(default_factory=RelayPodSettings)
    workers: int = 64  # concurrent reconciles
    resync_seconds: float = 300.0  # periodic re-check of children and subscription
    secret_check_seconds: float = 30.0  # referenced Secrets re-read by name (0: never)
    subscription_verify_seconds: float = 300.0
    token_rotation_grace_seconds: float = 120.0
    watch_server_timeout: int = 300
    watch_client_timeout: int = 330
    # After the API server answers again: every watch re-established and every reconcile
    # that failed on it re-run within this many seconds (see runtime/reconnect.py).
    api_reconnect_seconds: float = 2.0
    egress: EgressPolicy = field(default_factory=EgressPolicy)
    call_limits: CallLimits = field(default_factory=CallLimits)
    reconcile_deadline_seconds: float = 120.0  # one reconcile, all its calls together
    namespace_concurrency: int = 4  # reconciles of one namespace running at once
    relay_policy: RelayPolicy = field(default_factory=RelayPolicy)
    relay_database: DatabaseDefault | None = None  # default database Secret, storage PostgreSQL
    # This cluster's identity in the ownership stamps of external objects (see
    # :mod:`.ownership`); empty: the kube-system Namespace UID, read once at start.
    cluster_id: str = ""
    expose_policy: ExposePolicy = field(default_factory=ExposePolicy)
    relay_network_policy: network.RelayNetworkPolicy = field(
        default_factory=network.RelayNetworkPolicy
    )
    # Shared accounts (:mod:`.accounts`): where their Secrets and relays live; "" = off.
    account_namespace: str = ""

    @classmethod
    def from_env(cls) -> OperatorSettings:
        env = os.environ
        return cls(
            relay_image=env.get("PAGERBRIDGE_RELAY_IMAGE", DEFAULT_IMAGE),
            image_pull_policy=env.get("PAGERBRIDGE_IMAGE_PULL_POLICY", "IfNotPresent"),
            relay_pod_defaults=relay_pod_defaults(env.get(RELAY_DEFAULTS_ENV)),
            workers=int(env.get("PAGERBRIDGE_WORKERS", "64")),
            resync_seconds=float(env.get("PAGERBRIDGE_RESYNC_SECONDS", "300")),
            secret_check_seconds=float(env.get("PAGERBRIDGE_SECRET_CHECK_SECONDS", "30")),
            subscription_verify_seconds=float(
                env.get("PAGERBRIDGE_SUBSCRIPTION_VERIFY_SECONDS", "300")
            ),
            token_rotation_grace_seconds=float(
                env.get("PAGERBRIDGE_TOKEN_ROTATION_GRACE_SECONDS", "120")
            ),
            watch_server_timeout=int(env.get("PAGERBRIDGE_WATCH_SERVER_TIMEOUT", "300")),
            watch_client_timeout=int(env.get("PAGERBRIDGE_WATCH_CLIENT_TIMEOUT", "330")),
            api_reconnect_seconds=float(env.get("PAGERBRIDGE_API_RECONNECT_SECONDS", "2")),
            egress=EgressPolicy.parse(
                _list(env.get(ENV_EGRESS_ALLOWED_HOSTS), DEFAULT_ALLOWED_HOSTS),
                _list(env.get(ENV_EGRESS_ALLOWED_NETWORKS)),
                allow_http=_flag(env.get(ENV_EGRESS_ALLOW_HTTP)),
            ),
            call_limits=CallLimits(
                deadline=float(env.get("PAGERBRIDGE_CALL_DEADLINE_SECONDS", "30")),
                max_response_bytes=int(env.get("PAGERBRIDGE_CALL_MAX_RESPONSE_BYTES", "1048576")),
                max_pages=int(env.get("PAGERBRIDGE_CALL_MAX_PAGES", "20")),
                max_items=int(env.get("PAGERBRIDGE_CALL_MAX_ITEMS", "1000")),
            ),
            reconcile_deadline_seconds=float(
                env.get("PAGERBRIDGE_RECONCILE_DEADLINE_SECONDS", "120")
            ),
            namespace_concurrency=int(env.get("PAGERBRIDGE_NAMESPACE_CONCURRENCY", "4")),
            relay_policy=RelayPolicy.parse(
                _list(env.get("PAGERBRIDGE_RELAY_IMAGE_PREFIXES")),
                _list(env.get("PAGERBRIDGE_RELAY_SERVICE_TYPES"), ("ClusterIP",)),
                _list(env.get("PAGERBRIDGE_WEBHOOK_SCOPES"), ("Service", "Team")),
            ),
            relay_database=relay_database_default(
                env.get(RELAY_DATABASE_SECRET_ENV), env.get(RELAY_DATABASE_KEY_ENV)
            ),
            cluster_id=env.get(ENV_CLUSTER_ID, "").strip(),
            expose_policy=ExposePolicy.parse(
                _list(env.get("PAGERBRIDGE_EXPOSE_INGRESS_CLASSES")),
                _list(env.get("PAGERBRIDGE_EXPOSE_GATEWAYS")),
                _list(env.get("PAGERBRIDGE_EXPOSE_HOST_SUFFIXES")),
                _list(env.get("PAGERBRIDGE_EXPOSE_CLUSTER_ISSUERS")),
            ),
            relay_network_policy=relay_network_policy(env.get(network.ENV)),
            account_namespace=env.get(ENV_ACCOUNT_NAMESPACE, "").strip(),
        )
