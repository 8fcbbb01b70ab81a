"""Models at the bottom of PagerBridge: custom resource specs and statuses (with the
condition reasons), the RelayConfig contract and CRD generation. Nothing here talks to the
network, and nothing here imports another PagerBridge package (only the version)."""

from pagerbridge.api.account import (
    AccountStatus,
    ClusterBigPandaAccountSpec,
    ClusterPagerDutyAccountSpec,
    LabelSelector,
)
from pagerbridge.api.common import (
    AccountRef,
    Condition,
    ConditionReason,
    ConditionStatus,
    LocalObjectReference,
    SecretKeyRef,
)
from pagerbridge.api.integration import (
    BigPandaSpec,
    BigPandaTrigger,
    BigPandaWebhookSpec,
    BigPandaWebhookStatus,
    DeletionPolicy,
    PagerDutyIntegrationSpec,
    PagerDutyIntegrationStatus,
    PagerDutySpec,
    Region,
    RelaySpec,
    SyncSpec,
    WebhookHeader,
    WebhookMode,
)
from pagerbridge.api.key_override import PagerDutyKeyOverrideSpec, ReferenceStatus
from pagerbridge.api.relay_config import (
    BigPandaRelayConfig,
    PagerDutyRelayConfig,
    RelayConfig,
    SyncConfig,
)
from pagerbridge.api.relay_pod import RelayPodSettings
from pagerbridge.api.resources import (
    ACCOUNT_KINDS,
    ALL_KINDS,
    API_VERSION,
    BIGPANDA_ACCOUNT,
    GROUP,
    INTEGRATION,
    KEY_OVERRIDE,
    PAGERDUTY_ACCOUNT,
    TAG_MAPPING,
    VERSION,
    ResourceKind,
)
from pagerbridge.api.severity import DEFAULT_SEVERITY_MAP, BigPandaStatus, PagerDutySeverity
from pagerbridge.api.tag_mapping import PagerDutyTagMappingSpec, TagMapping

__all__ = [
    "ACCOUNT_KINDS",
    "ALL_KINDS",
    "API_VERSION",
    "BIGPANDA_ACCOUNT",
    "DEFAULT_SEVERITY_MAP",
    "GROUP",
    "INTEGRATION",
    "KEY_OVERRIDE",
    "PAGERDUTY_ACCOUNT",
    "TAG_MAPPING",
    "VERSION",
    "AccountRef",
    "AccountStatus",
    "BigPandaRelayConfig",
    "BigPandaSpec",
    "BigPandaStatus",
    "BigPandaTrigger",
    "BigPandaWebhookSpec",
    "BigPandaWebhookStatus",
    "ClusterBigPandaAccountSpec",
    "ClusterPagerDutyAccountSpec",
    "Condition",
    "ConditionReason",
    "ConditionStatus",
    "DeletionPolicy",
    "LabelSelector",
    "LocalObjectReference",
    "PagerDutyIntegrationSpec",
    "PagerDutyIntegrationStatus",
    "PagerDutyKeyOverrideSpec",
    "PagerDutyRelayConfig",
    "PagerDutySeverity",
    "PagerDutySpec",
    "PagerDutyTagMappingSpec",
    "ReferenceStatus",
    "Region",
    "RelayConfig",
    "RelayPodSettings",
    "RelaySpec",
    "ResourceKind",
    "SecretKeyRef",
    "SyncConfig",
    "SyncSpec",
    "TagMapping",
    "WebhookHeader",
    "WebhookMode",
]
