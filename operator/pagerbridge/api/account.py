"""``ClusterPagerDutyAccount`` and ``ClusterBigPandaAccount``: credentials held once, used
by integrations of many namespaces.

Why cluster-scoped kinds whose Secrets live in one admin namespace: a pod mounts only
Secrets of its own namespace, and whoever may edit a namespace may read every Secret
there. So an account's credentials stay in the operator's account namespace (the operator
setting ``PAGERBRIDGE_ACCOUNT_NAMESPACE``, Helm value ``accounts.namespace``, like
cert-manager's cluster resource namespace), and the relay of an integration that uses an
account runs there too; nothing of a tenant's reaches a Secret of that namespace.

The namespace is an operator setting, not a field of the account: a field would let
whoever writes an account point the operator at any namespace's Secrets (and need Secret
and Deployment grants everywhere); one namespace named at install keeps the grant there.

Who may use an account: the namespaces its ``namespaceSelector`` (a metav1.LabelSelector)
selects, plus those it lists in ``namespaces``. Neither given: no namespace (an empty
selector ``{}`` selects every namespace, as in Kubernetes).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any

from pydantic import ConfigDict, Field

from pagerbridge.api._base import CamelModel
from pagerbridge.api.common import Condition, SecretKeyRef
from pagerbridge.api.integration import BIGPANDA_API_URL, Email, HttpUrl, Region

# A label key (optional DNS prefix, then a name part) and a label value, as Kubernetes has them.
LabelKey = Annotated[
    str,
    Field(
        min_length=1,
        max_length=317,
        pattern=r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
    ),
]
LabelValue = Annotated[
    str, Field(max_length=63, pattern=r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
]
NamespaceName = Annotated[
    str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
]


class SelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


class LabelSelectorRequirement(CamelModel):
    """One ``matchExpressions`` entry of a metav1.LabelSelector."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "(self.operator in ['In', 'NotIn']) == "
                    "(has(self.values) && size(self.values) > 0)",
                    "message": "operator In and NotIn need values; Exists and DoesNotExist "
                    "take none",
                }
            ]
        }
    )

    key: LabelKey = Field(description="The label key the requirement applies to.")
    operator: SelectorOperator = Field(description="In, NotIn, Exists or DoesNotExist.")
    values: list[LabelValue] | None = Field(
        default=None,
        max_length=64,
        description="Label values: one or more for In and NotIn, none for Exists and DoesNotExist.",
    )

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        values = set(self.values or ())
        if self.operator is SelectorOperator.IN:
            return present and labels[self.key] in values
        if self.operator is SelectorOperator.NOT_IN:
            return not present or labels[self.key] not in values
        if self.operator is SelectorOperator.EXISTS:
            return present
        return not present


class LabelSelector(CamelModel):
    """A metav1.LabelSelector: every matchLabels pair and every matchExpressions entry must
    hold (an empty selector selects everything)."""

    match_labels: dict[str, LabelValue] | None = Field(
        default=None, max_length=64, description="Labels that must have exactly these values."
    )
    match_expressions: list[LabelSelectorRequirement] | None = Field(
        default=None, max_length=64, description="Requirements that must all hold."
    )

    def matches(self, labels: Mapping[str, str]) -> bool:
        for key, value in (self.match_labels or {}).items():
            if labels.get(key) != value:
                return False
        return all(req.matches(labels) for req in self.match_expressions or ())


class AccountUsers(CamelModel):
    """Who may use an account (shared by both account kinds)."""

    namespace_selector: LabelSelector | None = Field(
        default=None,
        description="Namespaces (by their labels) whose integrations may use this account. "
        "An empty selector {} selects every namespace. Unset, with namespaces unset too: "
        "no namespace may. A namespace relabelled out of it loses the account: its "
        "integrations go Ready=False (AccountNotAllowed) and their relays are stopped.",
    )
    namespaces: list[NamespaceName] | None = Field(
        default=None,
        max_length=256,
        description="Namespaces (by name) whose integrations may use this account, in "
        "addition to those namespaceSelector selects.",
    )

    def allows(self, namespace: str, labels: Mapping[str, str]) -> bool:
        """Whether an integration in ``namespace`` (with its ``labels``) may use it."""
        if namespace in (self.namespaces or ()):
            return True
        return self.namespace_selector is not None and self.namespace_selector.matches(labels)


SECRET_IN_ACCOUNT_NAMESPACE = (
    " The Secret is in the operator's account namespace (Helm value accounts.namespace), "
    "never a tenant's."
)


class ClusterPagerDutyAccountSpec(AccountUsers):
    """A PagerDuty account (REST token, default routing key) that integrations of the
    selected namespaces use instead of Secrets of their own."""

    api_token: SecretKeyRef | None = Field(
        default=None,
        description="REST API key: notes, resolve-back look-ups and webhook subscriptions of "
        "every integration using the account." + SECRET_IN_ACCOUNT_NAMESPACE,
    )
    routing_key: SecretKeyRef | None = Field(
        default=None,
        description="Default Events API v2 integration (routing) key of the integrations "
        "using the account; needed by every one of them (key overrides still apply per "
        "incident)." + SECRET_IN_ACCOUNT_NAMESPACE,
    )
    from_email: Email | None = Field(
        default=None,
        description="Email of a PagerDuty user, the REST API 'From' header; an integration's "
        "own pagerDuty.fromEmail wins.",
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


class ClusterBigPandaAccountSpec(AccountUsers):
    """A BigPanda organisation (API token, default environment) that integrations of the
    selected namespaces use instead of Secrets of their own."""

    api_token: SecretKeyRef = Field(
        description="BigPanda API key (bearer token): resolve and comment write-backs and "
        "Managed webhook integrations of every integration using the account."
        + SECRET_IN_ACCOUNT_NAMESPACE
    )
    environment_id: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[A-Za-z0-9_\-]+$",
        description="Default BigPanda environment for write-backs; an integration's own "
        "bigPanda.environmentId wins.",
    )
    api_url: HttpUrl | None = Field(
        default=None, description=f"BigPanda API base URL (default {BIGPANDA_API_URL})."
    )


class AccountStatus(CamelModel):
    """Status of an account; written by the operator only."""

    model_config = ConfigDict(frozen=False)

    observed_generation: int | None = Field(
        default=None, description="metadata.generation the operator last checked."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready: True when every Secret key the account names exists in the "
        "account namespace (reason SecretsFound), else False (SecretNotFound).",
    )
    integrations: int | None = Field(
        default=None, description="How many PagerDutyIntegrations use the account."
    )


def account_printer_columns() -> list[dict[str, Any]]:
    """``kubectl get cpda/cbpa`` columns."""
    return [
        {
            "name": "Ready",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        },
        {"name": "Integrations", "type": "integer", "jsonPath": ".status.integrations"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
