"""Small building blocks shared by the custom resources: references and conditions."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import Field

from pagerbridge.api._base import CamelModel

# A Kubernetes object name (RFC 1123 DNS subdomain).
ObjectName = Annotated[
    str,
    Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"),
]
# A key inside a Secret's data.
SecretDataKey = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]


class SecretKeyRef(CamelModel):
    """Points at one key of a Secret in the custom resource's own namespace."""

    name: ObjectName = Field(description="Name of the Secret.")
    key: SecretDataKey = Field(description="Key inside the Secret's data.")


class LocalObjectReference(CamelModel):
    """Names another object in the same namespace."""

    name: ObjectName = Field(description="Name of the referenced object.")


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class ConditionReason(StrEnum):
    """Every condition reason the operator writes: the machine-readable half of the
    status API (``kubectl get pdi`` shows it; GitOps tools and alerts match on it).

    One place so a reason is never misspelled in one module and right in another; the
    values are the API and never change. Grouped by the condition that carries them.
    """

    # Ready (and Reconciling, which follows it)
    READY = "Ready"
    IDLE = "Idle"  # Reconciling False: no rollout in progress
    # SecretsResolved, and what makes the integration wait for its user
    SECRETS_FOUND = "SecretsFound"
    SECRET_NOT_FOUND = "SecretNotFound"
    INVALID_KEY = "InvalidKey"
    INVALID_SPEC = "InvalidSpec"
    DATABASE_NOT_CONFIGURED = "DatabaseNotConfigured"
    URL_NOT_ALLOWED = "URLNotAllowed"
    NAME_CONFLICT = "NameConflict"
    IMAGE_NOT_ALLOWED = "ImageNotAllowed"
    SERVICE_TYPE_NOT_ALLOWED = "ServiceTypeNotAllowed"
    WEBHOOK_SCOPE_NOT_ALLOWED = "WebhookScopeNotAllowed"
    EXPOSE_NOT_ALLOWED = "ExposeNotAllowed"
    INGRESS_CLASS_NOT_ALLOWED = "IngressClassNotAllowed"
    GATEWAY_NOT_ALLOWED = "GatewayNotAllowed"
    HOST_NOT_ALLOWED = "HostNotAllowed"
    CLUSTER_ISSUER_NOT_ALLOWED = "ClusterIssuerNotAllowed"
    ACCOUNT_NOT_FOUND = "AccountNotFound"  # accountRef names no account
    ACCOUNT_NOT_ALLOWED = "AccountNotAllowed"  # the account does not select the namespace
    ACCOUNT_NOT_READY = "AccountNotReady"  # the account lacks what the integration needs
    ACCOUNTS_DISABLED = "AccountsDisabled"  # no account namespace configured
    RECONCILE_FAILED = "ReconcileFailed"
    KUBERNETES_UNAVAILABLE = "KubernetesUnavailable"  # metrics only: never a condition
    # SubscriptionReady
    NOT_CONFIGURED = "NotConfigured"
    SUBSCRIBED = "Subscribed"
    SUBSCRIPTION_FAILED = "SubscriptionFailed"
    # RoutingKeyReady (pagerDuty.routingKey.managed)
    ROUTING_KEY_MANAGED = "RoutingKeyManaged"
    ROUTING_KEY_FAILED = "RoutingKeyFailed"
    API_TOKEN_REQUIRED = "ApiTokenRequired"
    # SubscriptionActive
    ACTIVE = "Active"
    REENABLED = "Reenabled"
    SUBSCRIPTION_REPAIRED = "SubscriptionRepaired"
    UPSTREAM_MALFORMED = "UpstreamMalformed"
    # RelayAvailable
    RELAY_READY = "RelayReady"
    RELAY_STARTING = "RelayStarting"
    RELAY_UNAVAILABLE = "RelayUnavailable"
    OUTBOX_NOT_OWNED = "OutboxNotOwned"  # the relay refused its PostgreSQL outbox
    UNKNOWN = "Unknown"
    # BigPandaWebhookConfigured (Managed mode)
    CONFIGURED = "Configured"
    BIGPANDA_UNAVAILABLE = "BigPandaUnavailable"
    BIGPANDA_UNAUTHORIZED = "BigPandaUnauthorized"
    BIGPANDA_REJECTED = "BigPandaRejected"
    # OutboxDurable
    POSTGRESQL = "PostgreSQL"
    PERSISTENT_VOLUME = "PersistentVolume"
    EPHEMERAL_STORAGE = "EphemeralStorage"
    # RelayPubliclyReachable
    PUBLIC_URL = "PublicUrl"
    CLUSTER_INTERNAL_URL = "ClusterInternalUrl"
    INGRESS = "Ingress"  # exposed by the operator's Ingress
    HTTP_ROUTE = "HTTPRoute"  # exposed by the operator's HTTPRoute
    GATEWAY_API_NOT_INSTALLED = "GatewayAPINotInstalled"
    # Paused (annotation pagerbridge.io/paused); also Ready's reason when paused before the
    # first reconcile
    RECONCILE_PAUSED = "ReconcilePaused"
    # SubscriptionReady or BigPandaWebhookConfigured: an adopt id that does not exist
    ADOPTION_TARGET_NOT_FOUND = "AdoptionTargetNotFound"
    # Ready of an override or mapping
    APPLIED = "Applied"
    CONFLICT = "Conflict"
    INTEGRATION_NOT_READY = "IntegrationNotReady"
    INTEGRATION_NOT_FOUND = "IntegrationNotFound"


class Condition(CamelModel):
    """A status condition, in the shape of ``metav1.Condition``."""

    type: str = Field(
        max_length=316,
        description="Condition type: Ready (the summary kubectl wait and GitOps tools read), "
        "Reconciling, Paused (set only while the annotation pagerbridge.io/paused is true), or a "
        "detail such as SecretsResolved, RelayAvailable, SubscriptionReady, "
        "BigPandaWebhookConfigured, OutboxDurable, RelayPubliclyReachable.",
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="Machine-readable CamelCase cause of the status, e.g. SecretNotFound.",
    )
    message: str = Field(
        default="",
        max_length=32768,
        description="What happened and what to do, for humans (default empty).",
    )
    last_transition_time: datetime = Field(
        description="When the status last changed (not when the reason or message did)."
    )
    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description="metadata.generation of the object when the condition was set.",
    )


class AccountRef(CamelModel):
    """Names a cluster-scoped account (ClusterPagerDutyAccount, ClusterBigPandaAccount)."""

    name: ObjectName = Field(description="Name of the cluster-scoped account.")
