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


class Condition(CamelModel):
    """A status condition, in the shape of ``metav1.Condition``."""

    type: str = Field(
        max_length=316,
        description="Condition type: Ready (the summary kubectl wait and GitOps tools read), "
        "Reconciling, or a detail such as SecretsResolved, RelayAvailable, SubscriptionReady, "
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
