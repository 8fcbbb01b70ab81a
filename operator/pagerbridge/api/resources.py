"""The custom resource kinds: names, models and printer columns, in one table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from pagerbridge.api.account import (
    AccountStatus,
    ClusterBigPandaAccountSpec,
    ClusterPagerDutyAccountSpec,
    account_printer_columns,
)
from pagerbridge.api.integration import (
    PagerDutyIntegrationSpec,
    PagerDutyIntegrationStatus,
    printer_columns,
)
from pagerbridge.api.key_override import PagerDutyKeyOverrideSpec, ReferenceStatus
from pagerbridge.api.tag_mapping import PagerDutyTagMappingSpec, reference_printer_columns

GROUP = "pagerbridge.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


@dataclass(frozen=True)
class ResourceKind:
    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    spec_model: type[BaseModel]
    status_model: type[BaseModel]
    description: str
    namespaced: bool = True

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"

    def columns(self) -> list[dict[str, Any]]:
        if self.kind == "PagerDutyIntegration":
            return printer_columns()
        if not self.namespaced:
            return account_printer_columns()
        return reference_printer_columns()


INTEGRATION = ResourceKind(
    kind="PagerDutyIntegration",
    plural="pagerdutyintegrations",
    singular="pagerdutyintegration",
    short_names=("pdi",),
    spec_model=PagerDutyIntegrationSpec,
    status_model=PagerDutyIntegrationStatus,
    description="A BigPanda → PagerDuty connection, run by a relay Deployment.",
)
KEY_OVERRIDE = ResourceKind(
    kind="PagerDutyKeyOverride",
    plural="pagerdutykeyoverrides",
    singular="pagerdutykeyoverride",
    short_names=("pdko",),
    spec_model=PagerDutyKeyOverrideSpec,
    status_model=ReferenceStatus,
    description="A BigPanda alert tag whose value overrides the PagerDuty routing key.",
)
TAG_MAPPING = ResourceKind(
    kind="PagerDutyTagMapping",
    plural="pagerdutytagmappings",
    singular="pagerdutytagmapping",
    short_names=("pdtm",),
    spec_model=PagerDutyTagMappingSpec,
    status_model=ReferenceStatus,
    description="BigPanda tags copied into PagerDuty event fields.",
)

PAGERDUTY_ACCOUNT = ResourceKind(
    kind="ClusterPagerDutyAccount",
    plural="clusterpagerdutyaccounts",
    singular="clusterpagerdutyaccount",
    short_names=("cpda",),
    spec_model=ClusterPagerDutyAccountSpec,
    status_model=AccountStatus,
    description="PagerDuty credentials held once, in the operator's account namespace, for "
    "the integrations of the namespaces it selects (pagerDuty.accountRef).",
    namespaced=False,
)
BIGPANDA_ACCOUNT = ResourceKind(
    kind="ClusterBigPandaAccount",
    plural="clusterbigpandaaccounts",
    singular="clusterbigpandaaccount",
    short_names=("cbpa",),
    spec_model=ClusterBigPandaAccountSpec,
    status_model=AccountStatus,
    description="BigPanda credentials held once, in the operator's account namespace, for "
    "the integrations of the namespaces it selects (bigPanda.accountRef).",
    namespaced=False,
)
ACCOUNT_KINDS: tuple[ResourceKind, ...] = (PAGERDUTY_ACCOUNT, BIGPANDA_ACCOUNT)

ALL_KINDS: tuple[ResourceKind, ...] = (INTEGRATION, KEY_OVERRIDE, TAG_MAPPING, *ACCOUNT_KINDS)
