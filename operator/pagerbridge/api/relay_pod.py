"""Where and how a relay pod runs: pull Secrets, scheduling, labels, resources.

One model, :class:`RelayPodSettings`, read in two places:

* the operator-wide defaults, from the Helm chart's ``relay`` values (passed to the
  operator as JSON in ``PAGERBRIDGE_RELAY_DEFAULTS``), and
* ``spec.relay`` of each PagerDutyIntegration (``RelaySpec`` extends this model),

and combined by :func:`effective`: a field set on the integration replaces the default,
except ``podLabels`` and ``podAnnotations``, which are merged (the integration's keys win).
An unset field (absent, ``None``) inherits; an empty list or map set on the integration
means "none" (e.g. ``tolerations: []`` drops the default tolerations).

Affinity terms and label selectors are passed to the API server as they are; it validates
them when the operator applies the relay Deployment.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field

from pagerbridge.api._base import CamelModel
from pagerbridge.api.common import LocalObjectReference

MAX_ITEMS = 32
# A label key (optional DNS prefix + name) or value, bounded for the CEL cost estimator.
LabelKey = Annotated[str, Field(max_length=317)]
LabelValue = Annotated[str, Field(max_length=63)]
# Resources of a relay container when neither the integration nor the operator sets any.
DEFAULT_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "50m", "memory": "64Mi"},
    "limits": {"memory": "256Mi"},
}
_DEFAULT_RESOURCES_TEXT = "; ".join(
    f"{kind} " + ", ".join(f"{name} {amount}" for name, amount in amounts.items())
    for kind, amounts in DEFAULT_RESOURCES.items()
)


class ResourceRequirements(CamelModel):
    """Container resources, as in Kubernetes (quantities such as 100m, 128Mi)."""

    requests: dict[str, str] = Field(
        default_factory=dict,
        max_length=8,
        description="Resources reserved for the relay container, e.g. cpu: 50m, memory: 64Mi.",
    )
    limits: dict[str, str] = Field(
        default_factory=dict,
        max_length=8,
        description="Most the relay container may use, e.g. memory: 256Mi.",
    )


class TolerationOperator(StrEnum):
    EXISTS = "Exists"
    EQUAL = "Equal"


class TaintEffect(StrEnum):
    ALL = ""  # as in Kubernetes: matches every effect
    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


class Toleration(CamelModel):
    """A Kubernetes Toleration."""

    key: str | None = Field(default=None, max_length=317, description="Taint key.")
    operator: TolerationOperator | None = Field(
        default=None, description="Exists or Equal (default Equal)."
    )
    value: str | None = Field(default=None, max_length=63, description="Taint value.")
    effect: TaintEffect | None = Field(default=None, description="Taint effect; unset: all.")
    toleration_seconds: int | None = Field(
        default=None, description="How long a NoExecute taint is tolerated."
    )


class SelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


class WhenUnsatisfiable(StrEnum):
    DO_NOT_SCHEDULE = "DoNotSchedule"
    SCHEDULE_ANYWAY = "ScheduleAnyway"


class InclusionPolicy(StrEnum):
    HONOR = "Honor"
    IGNORE = "Ignore"


class LabelSelectorRequirement(CamelModel):
    key: LabelKey = Field(description="Label key the requirement applies to.")
    operator: SelectorOperator = Field(
        description="In, NotIn, Exists or DoesNotExist: how the key relates to values."
    )
    values: list[LabelValue] | None = Field(
        default=None,
        max_length=MAX_ITEMS,
        description="Values for In and NotIn; empty for Exists and DoesNotExist.",
    )


class LabelSelector(CamelModel):
    match_labels: dict[str, str] | None = Field(
        default=None, max_length=MAX_ITEMS, description="Labels a pod must all carry."
    )
    match_expressions: list[LabelSelectorRequirement] | None = Field(
        default=None, max_length=MAX_ITEMS, description="Requirements a pod must all meet."
    )


class TopologySpreadConstraint(CamelModel):
    """A Kubernetes TopologySpreadConstraint."""

    max_skew: int = Field(ge=1, description="Largest allowed difference between domains.")
    topology_key: str = Field(max_length=317, description="Node label of the domains.")
    when_unsatisfiable: WhenUnsatisfiable = Field(description="What to do when no node fits.")
    label_selector: LabelSelector | None = Field(
        default=None,
        description="Pods counted; unset: this integration's relay pods.",
    )
    min_domains: int | None = Field(
        default=None,
        ge=1,
        description="Minimum number of eligible domains (DoNotSchedule only; default: unset).",
    )
    match_label_keys: list[LabelKey] | None = Field(
        default=None,
        max_length=MAX_ITEMS,
        description="Pod label keys whose values further select the pods counted.",
    )
    node_affinity_policy: InclusionPolicy | None = Field(
        default=None,
        description="Honor or Ignore the pod's node affinity when counting (default Honor).",
    )
    node_taints_policy: InclusionPolicy | None = Field(
        default=None,
        description="Honor or Ignore node taints when counting (default Ignore).",
    )


class Affinity(CamelModel):
    """A Kubernetes Affinity; the terms below each kind are validated by the API server."""

    node_affinity: dict[str, Any] | None = Field(default=None, description="Node affinity.")
    pod_affinity: dict[str, Any] | None = Field(default=None, description="Pod affinity.")
    pod_anti_affinity: dict[str, Any] | None = Field(default=None, description="Pod anti-affinity.")


class RelayPodSettings(CamelModel):
    """Pod-level settings of a relay; every field is optional (unset: inherit)."""

    image_pull_secrets: list[LocalObjectReference] | None = Field(
        default=None,
        max_length=MAX_ITEMS,
        description="docker-registry Secrets (in the integration's namespace) used to pull "
        "the relay image.",
    )
    node_selector: dict[str, str] | None = Field(
        default=None, max_length=MAX_ITEMS, description="Node labels the relay pods must match."
    )
    tolerations: list[Toleration] | None = Field(
        default=None, max_length=MAX_ITEMS, description="Tolerations of the relay pods."
    )
    affinity: Affinity | None = Field(default=None, description="Affinity of the relay pods.")
    topology_spread_constraints: list[TopologySpreadConstraint] | None = Field(
        default=None,
        max_length=MAX_ITEMS,
        description="Topology spread constraints of the relay pods (a constraint without "
        "labelSelector counts this integration's relay pods).",
    )
    priority_class_name: str | None = Field(
        default=None,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="PriorityClass of the relay pods.",
    )
    pod_labels: dict[str, str] | None = Field(
        default=None,
        max_length=MAX_ITEMS,
        description="Extra labels of the relay pods, merged over the operator-wide ones; "
        "the operator's own labels win.",
    )
    pod_annotations: dict[str, str] | None = Field(
        default=None,
        max_length=MAX_ITEMS,
        description="Extra annotations of the relay pods, merged over the operator-wide "
        "ones; the operator's own annotations win.",
    )
    resources: ResourceRequirements | None = Field(
        default=None,
        description=f"Relay container resources (default: {_DEFAULT_RESOURCES_TEXT}).",
    )


MERGED_FIELDS = ("pod_labels", "pod_annotations")


def effective(defaults: RelayPodSettings, override: RelayPodSettings) -> RelayPodSettings:
    """The settings a relay pod gets: ``override`` (the integration's) over ``defaults``."""
    values: dict[str, Any] = {}
    for name in RelayPodSettings.model_fields:
        default, own = getattr(defaults, name), getattr(override, name)
        if name in MERGED_FIELDS and default is not None and own is not None:
            values[name] = {**default, **own}
        else:
            values[name] = own if own is not None else default
    return RelayPodSettings(**values)
