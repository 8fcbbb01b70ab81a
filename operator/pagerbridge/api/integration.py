"""``PagerDutyIntegration``: one BigPanda → PagerDuty connection and its relay.

Cross-field rules live in ``x-kubernetes-validations`` (CEL) so the API server itself
rejects an inconsistent manifest with the message written here.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, Field, JsonValue, model_validator

from pagerbridge.api._base import CamelModel
from pagerbridge.api.common import (
    AccountRef,
    Condition,
    ObjectName,
    SecretDataKey,
    SecretKeyRef,
)
from pagerbridge.api.endpoints import BASE_URL_MESSAGE as BASE_URL_MESSAGE  # re-exported
from pagerbridge.api.endpoints import BASE_URL_PATTERN as BASE_URL_PATTERN
from pagerbridge.api.endpoints import BIGPANDA_API_URL as BIGPANDA_API_URL
from pagerbridge.api.endpoints import PAGERDUTY_API_URLS as PAGERDUTY_API_URLS
from pagerbridge.api.endpoints import PAGERDUTY_EVENTS_URLS as PAGERDUTY_EVENTS_URLS
from pagerbridge.api.endpoints import Email as Email
from pagerbridge.api.endpoints import HttpUrl as HttpUrl
from pagerbridge.api.endpoints import Region as Region
from pagerbridge.api.expose import RelayExpose
from pagerbridge.api.flapping import DETAIL_KEY_PATTERN as DETAIL_KEY_PATTERN
from pagerbridge.api.flapping import RESERVED_DETAILS as RESERVED_DETAILS
from pagerbridge.api.flapping import FlappingDetail as FlappingDetail
from pagerbridge.api.flapping import FlappingSpec as FlappingSpec
from pagerbridge.api.pagerduty_events import PagerDutyEvents
from pagerbridge.api.relay_pod import RelayPodSettings
from pagerbridge.api.severity import DEFAULT_SEVERITY_MAP, BigPandaStatus, PagerDutySeverity


class DeletionPolicy(StrEnum):
    """What deleting the integration does to the objects it made outside the cluster."""

    DELETE = "Delete"
    ORPHAN = "Orphan"


DELETION_POLICY_DESCRIPTION = (
    "What deleting this integration does to the objects the operator made outside the "
    "cluster: the PagerDuty webhook subscription, the BigPanda Webhook v2 integration "
    "(Managed mode) and a managed routing key. Delete (default): they are deleted. Orphan: "
    "they are left in place, still delivering where they did, with the operator's "
    "ownership stamp removed (an Orphaned Event names each), so no integration takes "
    "them over unless it adopts them explicitly. The Kubernetes children (relay, "
    "Secrets) are deleted either way. The annotation pagerbridge.io/skip-cleanup: "
    '"true" is the escape hatch of a stuck deletion: nothing is called at all, and the '
    "objects are left as they are, stamp included."
)


class WebhookScopeType(StrEnum):
    SERVICE = "Service"
    TEAM = "Team"
    ACCOUNT = "Account"


class WebhookScope(CamelModel):
    """Which incidents PagerDuty's webhook subscription covers (one PagerDuty filter)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.type) || self.type != 'Team' || has(self.teamId)",
                    "message": "webhookScope.type Team needs webhookScope.teamId",
                }
            ]
        }
    )

    type: WebhookScopeType = Field(
        default=WebhookScopeType.SERVICE,
        description="Service (default): pagerDuty.serviceId only. Team: every service of "
        "teamId, e.g. the default key's and the key overrides' services. Account: every "
        "service. Incidents the relay did not create are ignored whatever the scope. Bounded "
        "by the cluster admin (Helm value relayPolicy.allowedWebhookScopes).",
    )
    team_id: str | None = Field(
        default=None,
        max_length=32,
        pattern=r"^[A-Z0-9]+$",
        description="PagerDuty team whose services the subscription covers (type Team).",
    )


ROUTING_KEY_SHAPE_MESSAGE = (
    "pagerDuty.routingKey needs either name and key (a Secret key holding the routing key) "
    "or managed: true (the operator creates the key), not both"
)


_MANAGED = "(has(self.managed) && self.managed)"
# A Secret reference missing name or key is reported on that field, as the API server
# reports a required one ("spec.pagerDuty.routingKey.key: Required value"), which it was
# before managed keys existed; both kinds at once get the shape message.
ROUTING_KEY_RULES: list[JsonValue] = [
    {
        "rule": f"{_MANAGED} || has(self.{field})",
        "fieldPath": f".{field}",
        "reason": "FieldValueRequired",
        "message": f"a Secret reference needs {field} (or managed: true instead of name and key)",
    }
    for field in ("name", "key")
]
ROUTING_KEY_RULES.append(
    {
        "rule": f"!{_MANAGED} || (!has(self.name) && !has(self.key))",
        "message": ROUTING_KEY_SHAPE_MESSAGE,
    }
)


class RoutingKeySpec(CamelModel):
    """The default routing key: a key of a Secret the user fills (``name``, ``key``), or
    ``managed: true``: the operator creates an Events API v2 integration on
    ``pagerDuty.serviceId`` and keeps its key in a Secret it owns."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": ROUTING_KEY_RULES})

    name: ObjectName | None = Field(
        default=None, description="Name of the Secret holding the routing key (not with managed)."
    )
    key: SecretDataKey | None = Field(
        default=None, description="Key inside that Secret's data (not with managed)."
    )
    managed: bool | None = Field(
        default=None,
        description="true: the operator creates an Events API v2 integration on "
        "pagerDuty.serviceId through the REST API (needs pagerDuty.apiToken), writes its key "
        "into the Secret <name>-pd-routing-key it owns, recreates it if it is deleted in "
        "PagerDuty, and deletes it with the integration. Not with name and key.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> RoutingKeySpec:
        if self.managed:
            if self.name is not None or self.key is not None:
                raise ValueError(ROUTING_KEY_SHAPE_MESSAGE)
        elif self.name is None or self.key is None:
            raise ValueError(ROUTING_KEY_SHAPE_MESSAGE)
        return self

    @property
    def secret_ref(self) -> SecretKeyRef | None:
        """The user's Secret key; None when the key is managed."""
        if self.managed or self.name is None or self.key is None:
            return None
        return SecretKeyRef(name=self.name, key=self.key)


class SubscriptionAdoption(CamelModel):
    """An existing PagerDuty webhook subscription to take over."""

    subscription_id: str = Field(
        max_length=32,
        pattern=r"^[A-Z0-9]+$",
        description="PagerDuty's id of the webhook subscription to adopt (e.g. PXXXXXX). It "
        "must carry no other PagerBridge integration's ownership stamp (NameConflict "
        "otherwise); a missing id is AdoptionTargetNotFound. PagerDuty shows a signing "
        "secret only at creation and has no call to rotate it, so the operator replaces "
        "the adopted subscription: it stamps it, creates this integration's own (the spec's "
        "URL, filter and events, a new signing secret), then deletes the adopted one.",
    )


class WebhookSubscriptionSpec(CamelModel):
    """The PagerDuty webhook subscription the operator manages (with pagerDuty.serviceId)."""

    adopt: SubscriptionAdoption | None = Field(
        default=None,
        description="Take over an existing subscription instead of starting afresh "
        "(opt-in; never done otherwise). Needs pagerDuty.serviceId.",
    )


class PagerDutySpec(CamelModel):
    """How to reach PagerDuty."""

    routing_key: RoutingKeySpec | None = Field(
        default=None,
        description="Default Events API v2 integration (routing) key of the PagerDuty "
        "service: a Secret key (name, key), or managed: true. Required unless accountRef is "
        "set (the account's key is used then).",
    )
    account_ref: AccountRef | None = Field(
        default=None,
        description="A ClusterPagerDutyAccount whose credentials (REST token, default routing "
        "key, URLs) this integration uses instead of Secrets of its own; it must allow this "
        "namespace (else Ready=False, AccountNotAllowed). The relay then runs in the "
        "operator's account namespace, where tenants cannot read the credentials. Excludes "
        "routingKey, apiToken, region, eventsUrl, apiUrl, bigPanda.apiToken and "
        "bigPanda.apiUrl, and the relay settings that would let the relay read other "
        "Secrets there or pass for another pod (image, imagePullSecrets, podLabels, "
        "podAnnotations, storage PostgreSQL).",
    )
    api_token: SecretKeyRef | None = Field(
        default=None,
        description="REST API key. Needed for notes, resolve-back look-ups and the webhook "
        "subscription.",
    )
    from_email: Email | None = Field(
        default=None,
        description="Email of a PagerDuty user, sent as the REST API 'From' header.",
    )
    service_id: str | None = Field(
        default=None,
        max_length=32,
        pattern=r"^[A-Z0-9]+$",
        description="PagerDuty service whose incident changes flow back to BigPanda "
        "(a webhook subscription is created for it).",
    )
    webhook_subscription: WebhookSubscriptionSpec | None = Field(
        default=None,
        description="Settings of the webhook subscription itself: adopting an existing one.",
    )
    webhook_scope: WebhookScope = Field(
        default_factory=WebhookScope,
        description="What the webhook subscription covers: the service (default), a team or "
        "the account. Key overrides that route to other services need Team or Account for "
        "their PagerDuty changes to arrive by webhook (the relay's repair sweep brings them "
        "otherwise, within its interval).",
    )
    region: Region = Field(
        default=Region.US,
        description="PagerDuty service region, us or eu (default us): picks the default "
        "eventsUrl and apiUrl.",
    )
    events_url: HttpUrl | None = Field(
        default=None, description="Events API base URL; overrides the region's default."
    )
    api_url: HttpUrl | None = Field(
        default=None, description="REST API base URL; overrides the region's default."
    )


class WebhookMode(StrEnum):
    MANAGED = "Managed"
    MANUAL = "Manual"


class BigPandaTrigger(StrEnum):
    """BigPanda Webhook v2 triggers the relay understands."""

    NEW = "new"
    UPDATED = "updated"
    COMMENTED = "commented"
    CLOSED = "closed"
    REOPEN = "reopen"
    SNOOZED = "snoozed"
    BECOME_FLAPPING = "become-flapping"


DEFAULT_TRIGGERS: tuple[BigPandaTrigger, ...] = (
    BigPandaTrigger.NEW,
    BigPandaTrigger.UPDATED,
    BigPandaTrigger.COMMENTED,
    BigPandaTrigger.CLOSED,
    BigPandaTrigger.REOPEN,
)


class WebhookIntegrationAdoption(CamelModel):
    """An existing BigPanda Webhook v2 integration to take over."""

    webhook_integration_id: str = Field(
        max_length=111,
        pattern=r"^webhook_v2\.[A-Za-z0-9_.\-]{1,100}$",
        description="BigPanda's id of the Webhook v2 integration to adopt: webhook_v2.<name>. "
        "It must carry no other PagerBridge integration's x-pagerbridge-owner stamp "
        "(NameConflict otherwise); a missing id is AdoptionTargetNotFound. The operator "
        "stamps it and writes it to the spec (URL, token, headers, triggers); it keeps its "
        "name, so AutoShare rules that use it keep working.",
    )


class BigPandaWebhookSpec(CamelModel):
    """How BigPanda's outbound webhook gets configured."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.adopt) || !has(self.integrationName)",
                    "message": "webhook.adopt names the integration: leave "
                    "webhook.integrationName unset",
                },
                {
                    "rule": "!has(self.adopt) || (has(self.mode) && self.mode == 'Managed')",
                    "message": "webhook.adopt needs webhook.mode Managed",
                },
            ]
        }
    )

    mode: WebhookMode = Field(
        default=WebhookMode.MANUAL,
        description="Managed: the operator creates and maintains a BigPanda Webhook v2 "
        "integration. Manual (default): status.bigPandaWebhook shows what to enter in BigPanda.",
    )
    integration_name: str | None = Field(
        default=None,
        max_length=100,
        pattern=r"^[a-z0-9][a-z0-9_\-]*$",
        description="Name of the Webhook v2 integration in BigPanda (Managed mode); "
        "defaults to pagerbridge-<namespace>-<name>-<hash of namespace, name and UID>. "
        "An existing integration of that name not created by this one is never changed.",
    )
    triggers: list[BigPandaTrigger] = Field(
        default_factory=lambda: list(DEFAULT_TRIGGERS),
        max_length=16,
        description="BigPanda triggers to enable (Managed mode).",
    )
    adopt: WebhookIntegrationAdoption | None = Field(
        default=None,
        description="Managed mode: take over an existing Webhook v2 integration instead of "
        "creating one (opt-in; never done otherwise).",
    )

    @property
    def adopted_name(self) -> str | None:
        """The name of the integration to adopt (its id without ``webhook_v2.``)."""
        if self.adopt is None:
            return None
        return self.adopt.webhook_integration_id.split(".", 1)[1]


class BigPandaSpec(CamelModel):
    """How to reach BigPanda."""

    api_token: SecretKeyRef | None = Field(
        default=None,
        description="BigPanda API key (bearer token): resolve and comment write-backs, and "
        "the Webhook v2 integration in Managed mode.",
    )
    environment_id: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[A-Za-z0-9_\-]+$",
        description="BigPanda environment used for resolve and comment write-backs.",
    )
    api_url: HttpUrl | None = Field(
        default=None, description=f"BigPanda API base URL (default {BIGPANDA_API_URL})."
    )
    account_ref: AccountRef | None = Field(
        default=None,
        description="A ClusterBigPandaAccount whose API token (and default environment and "
        "URL) this integration uses instead of apiToken; needs pagerDuty.accountRef too (the "
        "relay runs in the account namespace) and must allow this namespace.",
    )
    webhook: BigPandaWebhookSpec = Field(default_factory=BigPandaWebhookSpec)


class SyncSpec(CamelModel):
    """Which directions and kinds of updates are synchronized."""

    resolve: bool = Field(
        default=True,
        description="Resolving in PagerDuty resolves the BigPanda incident (needs "
        "pagerDuty.serviceId and bigPanda.apiToken; default true). BigPanda resolves always "
        "reach PagerDuty.",
    )
    notes: bool | None = Field(
        default=None,
        description="BigPanda comments become PagerDuty notes and back. Unset: on when "
        "pagerDuty.apiToken and pagerDuty.fromEmail are both given, off otherwise; true "
        "requires them; false turns it off.",
    )
    acknowledge: bool = Field(
        default=False,
        description="Deprecated: use pagerDutyEvents.acknowledged. A PagerDuty "
        "acknowledgement adds a BigPanda comment naming who acknowledged (default false); "
        "read while pagerDutyEvents.acknowledged is unset.",
    )
    snooze: bool = Field(
        default=False,
        description="A snoozed BigPanda incident (snooze.snoozed true) acknowledges its "
        "PagerDuty incident (Events API v2 acknowledge), so PagerDuty stops paging; an "
        "unsnooze leaves it acknowledged (see docs/relay.md). In Managed mode the BigPanda "
        "webhook's snoozed trigger is enabled too. Default false.",
    )
    flapping: FlappingSpec | None = Field(
        default=None,
        description="How a flapping BigPanda incident (flapping true) is sent: a severity "
        "and/or a custom detail of your choice. Unset (default): like any other. In Managed "
        "mode the BigPanda webhook's become-flapping trigger is enabled too.",
    )
    pager_duty_events: PagerDutyEvents | None = Field(
        default=None,
        description="Which PagerDuty incident changes become one BigPanda comment each, "
        "saying who did what (each off by default). The operator subscribes PagerDuty's "
        "webhook to exactly the event types turned on here, plus incident.resolved (resolve) "
        "and incident.annotated (notes).",
    )

    @property
    def pagerduty_comment_events(self) -> tuple[str, ...]:
        """The PagerDuty event types that become BigPanda comments (the matrix, with the
        deprecated ``acknowledge`` as its ``acknowledged`` entry while that is unset)."""
        return (self.pager_duty_events or PagerDutyEvents()).enabled(self.acknowledge)


class SeverityMapSpec(CamelModel):
    """BigPanda status → PagerDuty severity."""

    critical: PagerDutySeverity = Field(
        default=DEFAULT_SEVERITY_MAP[BigPandaStatus.CRITICAL],
        description="PagerDuty severity of a critical BigPanda incident (default "
        f"{DEFAULT_SEVERITY_MAP[BigPandaStatus.CRITICAL].value}).",
    )
    warning: PagerDutySeverity = Field(
        default=DEFAULT_SEVERITY_MAP[BigPandaStatus.WARNING],
        description="PagerDuty severity of a warning BigPanda incident (default "
        f"{DEFAULT_SEVERITY_MAP[BigPandaStatus.WARNING].value}).",
    )
    unknown: PagerDutySeverity = Field(
        default=DEFAULT_SEVERITY_MAP[BigPandaStatus.UNKNOWN],
        description="PagerDuty severity of a BigPanda incident of unknown status (default "
        f"{DEFAULT_SEVERITY_MAP[BigPandaStatus.UNKNOWN].value}).",
    )
    ok: PagerDutySeverity = Field(
        default=DEFAULT_SEVERITY_MAP[BigPandaStatus.OK],
        description="PagerDuty severity sent with an ok (resolved) BigPanda incident "
        f"(default {DEFAULT_SEVERITY_MAP[BigPandaStatus.OK].value}).",
    )

    def as_dict(self) -> dict[BigPandaStatus, PagerDutySeverity]:
        return {BigPandaStatus(name): value for name, value in self.model_dump().items()}


class ServiceType(StrEnum):
    CLUSTER_IP = "ClusterIP"
    NODE_PORT = "NodePort"
    LOAD_BALANCER = "LoadBalancer"


class RelayServiceSpec(CamelModel):
    """The relay's Service."""

    type: ServiceType = Field(
        default=ServiceType.CLUSTER_IP,
        description="Service type (default ClusterIP); others only where the cluster admin "
        "allows them (Helm value relayPolicy.allowedServiceTypes).",
    )
    port: int = Field(
        default=80, ge=1, le=65535, description="Port of the relay's webhooks (default 80)."
    )


class RelayStorage(StrEnum):
    """Where the relay keeps its outbox."""

    PERSISTENT = "Persistent"
    EPHEMERAL = "Ephemeral"
    POSTGRESQL = "PostgreSQL"


# Relay replicas an integration may ask for: several only with a shared (PostgreSQL) outbox.
MAX_RELAY_REPLICAS = 10


class DatabaseSpec(CamelModel):
    """The PostgreSQL database of a ``PostgreSQL`` outbox."""

    uri_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key (in the integration's namespace) holding a libpq connection "
        "URI, e.g. postgresql://user:password@host:5432/db?sslmode=verify-full (a "
        "CloudNativePG <cluster>-app Secret has one under key uri). Unset: the operator's "
        "default Secret name and key (Helm values relay.database), looked up in the "
        "integration's namespace. PostgreSQL 13 or later.",
    )


class PersistenceSpec(CamelModel):
    """The PersistentVolumeClaim of a ``Persistent`` outbox."""

    enabled: bool | None = Field(
        default=None,
        description="Deprecated: use relay.storage. When relay.storage is not set, false "
        "means Ephemeral and true (or unset) Persistent.",
    )
    size: str = Field(
        default="1Gi",
        max_length=32,
        pattern=r"^[0-9]+(Ki|Mi|Gi|Ti)$",
        description="Size of the outbox claim (default 1Gi).",
    )
    storage_class_name: str | None = Field(
        default=None,
        max_length=253,
        description="StorageClass of the outbox claim (default: the cluster's default class).",
    )


class RelaySpec(RelayPodSettings):
    """The relay Deployment the operator runs for this integration; its pod settings (pull Secrets, scheduling, labels, resources) override the operator-wide defaults (the Helm chart's relay values)."""  # noqa: E501

    replicas: int = Field(
        default=1,
        ge=0,
        le=MAX_RELAY_REPLICAS,
        description="Relay replicas (default 1). More than one needs storage PostgreSQL: "
        "every replica then accepts and delivers, sharing one outbox, and the relay gets a "
        "PodDisruptionBudget and zero-downtime rolling updates.",
    )
    image: str | None = Field(
        default=None, max_length=512, description="Relay image; defaults to the operator's own."
    )
    service: RelayServiceSpec = Field(
        default_factory=RelayServiceSpec,
        description="The relay's Service (default: ClusterIP on port 80).",
    )
    public_url: HttpUrl | None = Field(
        default=None,
        description="Base URL at which BigPanda and PagerDuty (SaaS, on the internet) reach "
        "the relay: an Ingress, Gateway or load balancer routing to the relay Service. "
        "Required with pagerDuty.serviceId and in Managed mode. Without it the relay has only "
        "its cluster-internal Service address, which BigPanda cannot reach (status condition "
        "RelayPubliclyReachable says so). Default: the address of relay.expose, if set.",
    )
    expose: RelayExpose | None = Field(
        default=None,
        description="An Ingress or Gateway API HTTPRoute the operator creates for the relay's "
        "two webhook paths, within the bounds the cluster admin sets (default: none).",
    )
    storage: RelayStorage | None = Field(
        default=None,
        description="Persistent (default): the outbox is on a PersistentVolumeClaim and the "
        "Deployment is replaced with Recreate, so work accepted but not yet delivered survives "
        "rollouts, evictions, drains and deleted pods, and one pod at a time writes it. "
        "Ephemeral: an emptyDir, kept across container restarts but lost, with every event "
        "not yet delivered, whenever the pod is replaced (condition OutboxDurable=False). "
        "PostgreSQL: the outbox is in a PostgreSQL database (relay.database) shared by all "
        "replicas, which may then be more than one.",
    )
    persistence: PersistenceSpec = Field(default_factory=PersistenceSpec)
    database: DatabaseSpec = Field(
        default_factory=DatabaseSpec, description="The database of storage PostgreSQL."
    )

    @property
    def effective_public_url(self) -> str | None:
        """``publicUrl``, else the address of ``expose``, else None (cluster-internal)."""
        if self.public_url is not None:
            return self.public_url
        return self.expose.public_url if self.expose is not None else None

    @property
    def effective_storage(self) -> RelayStorage:
        if self.storage is not None:
            return self.storage
        if self.persistence.enabled is False:
            return RelayStorage.EPHEMERAL
        return RelayStorage.PERSISTENT


# Shared accounts (pagerDuty.accountRef, bigPanda.accountRef): the relay runs in the
# operator's account namespace, next to the account's Secrets; so no field of the tenant's
# may name a Secret there, run another image beside them, or send the account's tokens to
# another URL.
ACCOUNT_RULES: list[JsonValue] = [
    {
        "rule": "has(self.pagerDuty.routingKey) || has(self.pagerDuty.accountRef)",
        "message": "pagerDuty.routingKey is required unless pagerDuty.accountRef is set",
    },
    {
        "rule": "!has(self.bigPanda.accountRef) || has(self.pagerDuty.accountRef)",
        "message": "bigPanda.accountRef needs pagerDuty.accountRef (a relay using an account "
        "runs in the account namespace, where Secrets of this namespace cannot be mounted)",
    },
    {
        "rule": "!has(self.pagerDuty.accountRef) || (!has(self.pagerDuty.routingKey) "
        "&& !has(self.pagerDuty.apiToken) && !has(self.bigPanda.apiToken))",
        "message": "pagerDuty.accountRef and per-integration Secrets (pagerDuty.routingKey, "
        "pagerDuty.apiToken, bigPanda.apiToken) are mutually exclusive: the account's "
        "credentials are used (set bigPanda.accountRef for BigPanda's token)",
    },
    {
        "rule": "!has(self.pagerDuty.accountRef) || (!has(self.pagerDuty.eventsUrl) "
        "&& !has(self.pagerDuty.apiUrl) && !has(self.bigPanda.apiUrl) "
        "&& (!has(self.pagerDuty.region) || self.pagerDuty.region == 'us'))",
        "message": "with pagerDuty.accountRef the URLs and region come from the accounts: "
        "pagerDuty.region, eventsUrl, apiUrl and bigPanda.apiUrl must be unset",
    },
    {
        "rule": "!has(self.pagerDuty.accountRef) || (!has(self.relay.image) "
        "&& !has(self.relay.imagePullSecrets) && !has(self.relay.database.uriSecretRef) "
        "&& !has(self.relay.podLabels) && !has(self.relay.podAnnotations) "
        "&& (!has(self.relay.storage) || self.relay.storage != 'PostgreSQL'))",
        "message": "with pagerDuty.accountRef the relay runs in the account namespace: "
        "relay.image, relay.imagePullSecrets, relay.podLabels, relay.podAnnotations and "
        "relay.storage PostgreSQL (its database Secret) are the cluster admin's there, not "
        "the integration's",
    },
]

# Cross-field rules, checked by the API server (CEL) and mirrored in the docs.
INTEGRATION_RULES: list[JsonValue] = [
    {
        "rule": "!has(self.sync.notes) || !self.sync.notes || has(self.pagerDuty.accountRef) "
        "|| (has(self.pagerDuty.apiToken) && has(self.pagerDuty.fromEmail))",
        "message": "sync.notes: true needs pagerDuty.apiToken and pagerDuty.fromEmail "
        "(set them, or leave sync.notes unset: notes then sync only when both are given)",
    },
    {
        "rule": "!has(self.pagerDuty.serviceId) || has(self.bigPanda.accountRef) "
        "|| (has(self.pagerDuty.apiToken) "
        "&& has(self.bigPanda.apiToken) && has(self.bigPanda.environmentId))",
        "message": "pagerDuty.serviceId (PagerDuty → BigPanda sync) needs "
        "pagerDuty.apiToken, bigPanda.apiToken and bigPanda.environmentId",
    },
    {
        "rule": "!has(self.pagerDuty.serviceId) || has(self.relay.publicUrl) "
        "|| has(self.relay.expose)",
        "message": "pagerDuty.serviceId needs relay.publicUrl or relay.expose: PagerDuty "
        "delivers its webhooks from the internet and cannot reach the relay's "
        "cluster-internal Service address",
    },
    {
        "rule": "!has(self.pagerDuty.routingKey) || !has(self.pagerDuty.routingKey.managed) "
        "|| !self.pagerDuty.routingKey.managed "
        "|| has(self.pagerDuty.serviceId)",
        "message": "pagerDuty.routingKey.managed needs pagerDuty.serviceId: the service the "
        "operator creates the Events API v2 integration on",
    },
    {
        "rule": "self.relay.replicas <= 1 || "
        "(has(self.relay.storage) && self.relay.storage == 'PostgreSQL')",
        "message": "relay.replicas above 1 needs relay.storage PostgreSQL: replicas share "
        "their outbox there (a Persistent or Ephemeral outbox has one writer)",
    },
    {
        "rule": "!has(self.pagerDuty.webhookSubscription) || "
        "!has(self.pagerDuty.webhookSubscription.adopt) || has(self.pagerDuty.serviceId)",
        "message": "pagerDuty.webhookSubscription.adopt needs pagerDuty.serviceId (the "
        "operator manages a subscription only with it)",
    },
    {
        "rule": "self.bigPanda.webhook.mode != 'Managed' || has(self.bigPanda.apiToken) "
        "|| has(self.bigPanda.accountRef)",
        "message": "bigPanda.webhook.mode Managed needs bigPanda.apiToken (a BigPanda User API "
        "key that may manage integrations)",
    },
    {
        "rule": "self.bigPanda.webhook.mode != 'Managed' || has(self.relay.publicUrl) "
        "|| has(self.relay.expose)",
        "message": "bigPanda.webhook.mode Managed needs relay.publicUrl or relay.expose: "
        "BigPanda shares from the internet and cannot reach the relay's cluster-internal "
        "Service address",
    },
    *ACCOUNT_RULES,
]


class PagerDutyIntegrationSpec(CamelModel):
    """Spec of a ``PagerDutyIntegration``."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": INTEGRATION_RULES})

    pager_duty: PagerDutySpec
    big_panda: BigPandaSpec = Field(default_factory=BigPandaSpec)
    deletion_policy: DeletionPolicy = Field(
        default=DeletionPolicy.DELETE, description=DELETION_POLICY_DESCRIPTION
    )
    sync: SyncSpec = Field(default_factory=SyncSpec)
    severity_map: SeverityMapSpec = Field(default_factory=SeverityMapSpec)
    relay: RelaySpec = Field(default_factory=RelaySpec)

    @property
    def effective_triggers(self) -> list[BigPandaTrigger]:
        """``bigPanda.webhook.triggers`` plus those ``sync`` needs (snoozed, become-flapping)."""
        wanted = list(self.big_panda.webhook.triggers)
        if self.sync.snooze:
            wanted.append(BigPandaTrigger.SNOOZED)
        if self.sync.flapping is not None:
            wanted.append(BigPandaTrigger.BECOME_FLAPPING)
        return list(dict.fromkeys(wanted))

    @property
    def uses_account(self) -> bool:
        """Credentials from a cluster account: the relay runs in the account namespace."""
        return self.pager_duty.account_ref is not None

    @property
    def notes_enabled(self) -> bool:
        """``sync.notes``, or when unset: whether notes' credentials are given."""
        if self.sync.notes is not None:
            return self.sync.notes
        return self.pager_duty.api_token is not None and self.pager_duty.from_email is not None


class WebhookHeader(CamelModel):
    """A custom header to enter in BigPanda: a literal value or a Secret reference."""

    name: str = Field(description="Header name.")
    value: str | None = Field(
        default=None, description="Header value (a placeholder when valueFrom is set)."
    )
    value_from: SecretKeyRef | None = Field(
        default=None, description="The value is in this Secret (never shown in status)."
    )


class BigPandaWebhookStatus(CamelModel):
    """What BigPanda's webhook must look like (Manual) or looks like (Managed)."""

    url: str = Field(description="URL BigPanda posts incidents to.")
    headers: list[WebhookHeader] = Field(
        default_factory=list, description="Custom headers BigPanda sends with each webhook."
    )
    integration_id: str | None = Field(
        default=None, description="Managed mode: BigPanda's id of the Webhook v2 integration."
    )
    last_verified: datetime | None = Field(
        default=None, description="Managed mode: when the operator last confirmed it in BigPanda."
    )
    authorization_digest: str | None = Field(
        default=None,
        description="Managed mode: SHA-256 of the authorization the operator last wrote to "
        "BigPanda (which stores it encrypted and may not return it); never the value.",
    )


class RelayStatus(CamelModel):
    """Where the relay answers, and how many of its pods are ready."""

    service_url: str | None = Field(
        default=None, description="The relay Service's cluster-internal base URL."
    )
    public_url: str | None = Field(
        default=None,
        description="Base URL BigPanda and PagerDuty use: spec.relay.publicUrl, else the "
        "address of spec.relay.expose; unset when the relay is only cluster-internal.",
    )
    ready_replicas: int = Field(default=0, description="Relay pods ready (default 0).")
    exposed_by: str | None = Field(
        default=None,
        description="Kind of the object the operator created for spec.relay.expose "
        "(Ingress or HTTPRoute), named like the relay; unset when not exposed.",
    )


class PagerDutySubscriptionStatus(CamelModel):
    """The PagerDuty Webhooks v3 subscription the operator manages (pagerDuty.serviceId)."""

    id: str | None = Field(default=None, description="PagerDuty's id of the subscription.")
    last_verified: datetime | None = Field(
        default=None, description="When the operator last confirmed it in PagerDuty."
    )


class PagerDutyRoutingKeyStatus(CamelModel):
    """The Events API v2 integration the operator manages (pagerDuty.routingKey.managed)."""

    integration_id: str | None = Field(
        default=None, description="PagerDuty's id of the Events API v2 integration."
    )
    service_id: str | None = Field(default=None, description="The service it belongs to.")
    secret_name: str | None = Field(
        default=None,
        description="The Secret (owned by the operator) whose key routing-key holds the "
        "integration key the relay sends events with.",
    )


class PagerDutyIntegrationStatus(CamelModel):
    """Status of a ``PagerDutyIntegration``; written by the operator only."""

    model_config = ConfigDict(frozen=False)  # merged with the base config

    observed_generation: int | None = Field(
        default=None,
        description="metadata.generation the operator last reconciled; status describes "
        "that generation (kstatus: equal to metadata.generation once caught up).",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready (True when the integration works end to end; else the first "
        "failing detail's reason), Reconciling (True while the relay rolls out) and the "
        "details: SecretsResolved, RoutingKeyReady (managed routing key), "
        "SubscriptionReady, RelayAvailable, "
        "BigPandaWebhookConfigured (Managed mode), OutboxDurable, RelayPubliclyReachable.",
    )
    relay: RelayStatus | None = Field(
        default=None, description="The relay's addresses and ready pods."
    )
    big_panda_webhook: BigPandaWebhookStatus | None = Field(
        default=None,
        description="What BigPanda's webhook must send (Manual) or was set to (Managed).",
    )
    pager_duty_subscription: PagerDutySubscriptionStatus | None = Field(
        default=None, description="The PagerDuty webhook subscription, with pagerDuty.serviceId."
    )
    pager_duty_routing_key: PagerDutyRoutingKeyStatus | None = Field(
        default=None,
        description="The managed routing key (pagerDuty.routingKey.managed): the PagerDuty "
        "integration and the Secret holding its key (never the key).",
    )


def printer_columns() -> list[dict[str, Any]]:
    """``kubectl get pdi`` columns."""
    return [
        {
            "name": "Ready",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        },
        {
            "name": "Reason",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
        },
        {"name": "URL", "type": "string", "jsonPath": ".status.bigPandaWebhook.url"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
