"""Models at the bottom of PagerBridge: custom resource specs and statuses (with the
condition reasons), the RelayConfig contract and CRD generation. Nothing here talks to the
network, and nothing here imports another PagerBridge package (only the version).

The names below are loaded on first use (PEP 562): ``import pagerbridge.api.contract`` (the
relay's constants) must not build every custom resource model first (issue 30: idle RSS)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from pagerbridge.api.endpoints import Region
    from pagerbridge.api.integration import (
        BigPandaSpec,
        BigPandaTrigger,
        BigPandaWebhookSpec,
        BigPandaWebhookStatus,
        DeletionPolicy,
        PagerDutyIntegrationSpec,
        PagerDutyIntegrationStatus,
        PagerDutySpec,
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

_MODULES = {
    "AccountStatus": "pagerbridge.api.account",
    "ClusterBigPandaAccountSpec": "pagerbridge.api.account",
    "ClusterPagerDutyAccountSpec": "pagerbridge.api.account",
    "LabelSelector": "pagerbridge.api.account",
    "AccountRef": "pagerbridge.api.common",
    "Condition": "pagerbridge.api.common",
    "ConditionReason": "pagerbridge.api.common",
    "ConditionStatus": "pagerbridge.api.common",
    "LocalObjectReference": "pagerbridge.api.common",
    "SecretKeyRef": "pagerbridge.api.common",
    "BigPandaSpec": "pagerbridge.api.integration",
    "BigPandaTrigger": "pagerbridge.api.integration",
    "BigPandaWebhookSpec": "pagerbridge.api.integration",
    "BigPandaWebhookStatus": "pagerbridge.api.integration",
    "DeletionPolicy": "pagerbridge.api.integration",
    "PagerDutyIntegrationSpec": "pagerbridge.api.integration",
    "PagerDutyIntegrationStatus": "pagerbridge.api.integration",
    "PagerDutySpec": "pagerbridge.api.integration",
    "Region": "pagerbridge.api.endpoints",
    "RelaySpec": "pagerbridge.api.integration",
    "SyncSpec": "pagerbridge.api.integration",
    "WebhookHeader": "pagerbridge.api.integration",
    "WebhookMode": "pagerbridge.api.integration",
    "PagerDutyKeyOverrideSpec": "pagerbridge.api.key_override",
    "ReferenceStatus": "pagerbridge.api.key_override",
    "BigPandaRelayConfig": "pagerbridge.api.relay_config",
    "PagerDutyRelayConfig": "pagerbridge.api.relay_config",
    "RelayConfig": "pagerbridge.api.relay_config",
    "SyncConfig": "pagerbridge.api.relay_config",
    "RelayPodSettings": "pagerbridge.api.relay_pod",
    "ACCOUNT_KINDS": "pagerbridge.api.resources",
    "ALL_KINDS": "pagerbridge.api.resources",
    "API_VERSION": "pagerbridge.api.resources",
    "BIGPANDA_ACCOUNT": "pagerbridge.api.resources",
    "GROUP": "pagerbridge.api.resources",
    "INTEGRATION": "pagerbridge.api.resources",
    "KEY_OVERRIDE": "pagerbridge.api.resources",
    "PAGERDUTY_ACCOUNT": "pagerbridge.api.resources",
    "TAG_MAPPING": "pagerbridge.api.resources",
    "VERSION": "pagerbridge.api.resources",
    "ResourceKind": "pagerbridge.api.resources",
    "DEFAULT_SEVERITY_MAP": "pagerbridge.api.severity",
    "BigPandaStatus": "pagerbridge.api.severity",
    "PagerDutySeverity": "pagerbridge.api.severity",
    "PagerDutyTagMappingSpec": "pagerbridge.api.tag_mapping",
    "TagMapping": "pagerbridge.api.tag_mapping",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


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
