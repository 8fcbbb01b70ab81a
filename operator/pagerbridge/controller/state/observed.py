"""What the operator has observed of the cluster: small frozen records built from watch
events, and the ``World`` the reconciler reads them from.

kopf indices hold these records (one per watched object) so a reconcile makes few reads of
its own; each record keeps only what reconciling needs. Only the operator's own Secrets
are watched (a server-side label selector); their records hold key names and our
annotations, never values. The Secrets an integration references are read by name when
needed instead (:mod:`.user_secrets`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pagerbridge.api import INTEGRATION, KEY_OVERRIDE, TAG_MAPPING
from pagerbridge.api import ConditionReason as Reason
from pagerbridge.controller.names import (
    ANNOTATION_TENANT_NAME as TENANT_NAME,
)
from pagerbridge.controller.names import (
    LABEL_TENANT_NAMESPACE as TENANT_NAMESPACE,
)
from pagerbridge.controller.names import (
    LABEL_TENANT_UID as TENANT_UID,
)

Body = Mapping[str, Any]


@dataclass(frozen=True)
class SecretInfo:
    """What the operator may know about a Secret: key names and shape checks, no values."""

    keys: frozenset[str]
    routing_key_shaped: frozenset[str] = frozenset()


@dataclass(frozen=True)
class IntegrationInfo:
    namespace: str
    name: str
    uid: str
    generation: int
    spec: Mapping[str, Any]
    status: Mapping[str, Any]
    annotations: Mapping[str, str]
    deleting: bool
    finalizers: tuple[str, ...] = ()
    resource_version: str = ""


@dataclass(frozen=True)
class RefInfo:
    """A key override or tag mapping, as far as reconciling its integration needs."""

    kind: str
    namespace: str
    name: str
    uid: str
    generation: int
    integration: str
    spec: Mapping[str, Any]
    status: Mapping[str, Any]


@dataclass(frozen=True)
class AccountInfo:
    """A ClusterPagerDutyAccount or ClusterBigPandaAccount (cluster-scoped)."""

    kind: str
    name: str
    uid: str
    generation: int
    spec: Mapping[str, Any]
    status: Mapping[str, Any]


def account_info(kind: str, body: Body) -> AccountInfo:
    meta = _meta(body)
    return AccountInfo(
        kind=kind,
        name=str(meta["name"]),
        uid=str(meta.get("uid", "")),
        generation=int(meta.get("generation", 0)),
        spec=dict(body.get("spec", {}) or {}),
        status=dict(body.get("status", {}) or {}),
    )


def namespace_labels(body: Body) -> dict[str, str]:
    return {str(k): str(v) for k, v in (_meta(body).get("labels", {}) or {}).items()}


@dataclass(frozen=True)
class SecretState:
    namespace: str
    name: str
    info: SecretInfo
    owner: str | None  # owning PagerDutyIntegration, when a child
    annotations: Mapping[str, str] = field(default_factory=dict)
    owner_uid: str = ""  # that integration's UID (names alone prove no ownership)
    uid: str = ""


@dataclass(frozen=True)
class ChildState:
    kind: str
    namespace: str
    name: str
    owner: str
    resource_version: str
    generation: int = 0
    owner_namespace: str = ""  # of the owning integration (the account namespace's: a tenant's)
    replicas: int = 0
    ready_replicas: int = 0
    observed_generation: int = 0
    annotations: Mapping[str, str] = field(default_factory=dict)
    created: str = ""  # metadata.creationTimestamp (RFC 3339)
    progress_deadline_seconds: int = 600  # Deployment spec.progressDeadlineSeconds
    progressing: tuple[str, str] | None = None  # Deployment condition Progressing: status, reason
    uid: str = ""
    owner_uid: str = ""  # of the owning integration (names alone prove no ownership)


def _meta(body: Body) -> Mapping[str, Any]:
    meta: Mapping[str, Any] = body.get("metadata", {})
    return meta


def _tenant(body: Body) -> tuple[str, str, str] | None:
    """(namespace, name, UID) of the tenant integration of a child in the account
    namespace (labels and annotation, see :mod:`pagerbridge.controller.names`)."""
    meta = _meta(body)
    labels = meta.get("labels", {}) or {}
    annotations = meta.get("annotations", {}) or {}
    namespace, uid = labels.get(TENANT_NAMESPACE), labels.get(TENANT_UID)
    name = annotations.get(TENANT_NAME)
    if namespace and uid and name:
        return str(namespace), str(name), str(uid)
    return None


def owner_integration(body: Body) -> str | None:
    for ref in _meta(body).get("ownerReferences", []) or []:
        if ref.get("kind") == INTEGRATION.kind and str(ref.get("apiVersion", "")).startswith(
            "pagerbridge.io/"
        ):
            return str(ref["name"])
    tenant = _tenant(body)
    return tenant[1] if tenant is not None else None


def owner_namespace(body: Body) -> str:
    """The namespace of the owning integration: the object's own, or (a child in the
    account namespace) its tenant's."""
    tenant = None if owner_integration_uid_ref(body) else _tenant(body)
    return tenant[0] if tenant is not None else str(_meta(body).get("namespace", ""))


def owner_integration_uid_ref(body: Body) -> str:
    for ref in _meta(body).get("ownerReferences", []) or []:
        if ref.get("kind") == INTEGRATION.kind and str(ref.get("apiVersion", "")).startswith(
            "pagerbridge.io/"
        ):
            return str(ref.get("uid", ""))
    return ""


def owner_integration_uid(body: Body) -> str:
    uid = owner_integration_uid_ref(body)
    if uid:
        return uid
    tenant = _tenant(body)
    return tenant[2] if tenant is not None else ""


def integration_info(body: Body) -> IntegrationInfo:
    meta = _meta(body)
    return IntegrationInfo(
        namespace=str(meta["namespace"]),
        name=str(meta["name"]),
        uid=str(meta.get("uid", "")),
        generation=int(meta.get("generation", 0)),
        spec=dict(body.get("spec", {})),
        status=dict(body.get("status", {}) or {}),
        annotations=dict(meta.get("annotations", {}) or {}),
        deleting=meta.get("deletionTimestamp") is not None,
        finalizers=tuple(str(f) for f in meta.get("finalizers", []) or []),
        resource_version=str(meta.get("resourceVersion", "")),
    )


def ref_info(kind: str, body: Body) -> RefInfo:
    meta = _meta(body)
    spec = dict(body.get("spec", {}))
    return RefInfo(
        kind=kind,
        namespace=str(meta["namespace"]),
        name=str(meta["name"]),
        uid=str(meta.get("uid", "")),
        generation=int(meta.get("generation", 0)),
        integration=str((spec.get("integrationRef") or {}).get("name", "")),
        spec=spec,
        status=dict(body.get("status", {}) or {}),
    )


def secret_state(body: Body) -> SecretState:
    """One of the operator's own Secrets: key names, owner and our annotations. Nothing
    is decoded (the values never leave the watch event)."""
    meta = _meta(body)
    data: Mapping[str, str] = body.get("data", {}) or {}
    annotations = {
        key: value
        for key, value in (meta.get("annotations", {}) or {}).items()
        if key.startswith("pagerbridge.io/")
    }
    return SecretState(
        namespace=str(meta["namespace"]),
        name=str(meta["name"]),
        info=SecretInfo(keys=frozenset(data)),
        owner=owner_integration(body),
        annotations=annotations,
        owner_uid=owner_integration_uid(body),
        uid=str(meta.get("uid", "")),
    )


def child_state(kind: str, body: Body) -> ChildState | None:
    owner = owner_integration(body)
    if owner is None:
        return None
    meta = _meta(body)
    spec = body.get("spec", {}) or {}
    status = body.get("status", {}) or {}
    return ChildState(
        kind=kind,
        namespace=str(meta["namespace"]),
        name=str(meta["name"]),
        owner=owner,
        owner_namespace=owner_namespace(body),
        resource_version=str(meta.get("resourceVersion", "")),
        generation=int(meta.get("generation", 0)),
        replicas=int(spec.get("replicas", 1) if kind == "Deployment" else 0),
        ready_replicas=int(status.get("readyReplicas", 0) or 0),
        observed_generation=int(status.get("observedGeneration", 0) or 0),
        annotations={
            k: v
            for k, v in (meta.get("annotations", {}) or {}).items()
            if k.startswith("pagerbridge.io/")
        },
        created=str(meta.get("creationTimestamp", "") or ""),
        progress_deadline_seconds=int(spec.get("progressDeadlineSeconds", 600) or 600),
        progressing=next(
            (
                (str(cond.get("status", "")), str(cond.get("reason", "")))
                for cond in status.get("conditions", []) or []
                if cond.get("type") == "Progressing"
            ),
            None,
        ),
        uid=str(meta.get("uid", "")),
        owner_uid=owner_integration_uid(body),
    )


REF_KINDS = (KEY_OVERRIDE.kind, TAG_MAPPING.kind)
CHILD_KINDS = ("ConfigMap", "Service", "PersistentVolumeClaim", "PodDisruptionBudget", "Deployment")


class World(Protocol):
    """Read access to the observed cluster state (kopf indices in the operator)."""

    def integration(self, namespace: str, name: str) -> IntegrationInfo | None: ...

    def refs_to(self, kind: str, namespace: str, integration: str) -> list[RefInfo]: ...

    def ref(self, kind: str, namespace: str, name: str) -> RefInfo | None: ...

    def secret(self, namespace: str, name: str) -> SecretState | None: ...

    def child(self, kind: str, namespace: str, owner: str) -> ChildState | None:
        """The child of ``kind`` of integration ``namespace``/``owner``, wherever it is
        (the integration's namespace, or the account namespace)."""
        ...

    def account(self, kind: str, name: str) -> AccountInfo | None:
        """A shared account (None: absent, or accounts off: not watched)."""
        ...

    def namespace_labels(self, name: str) -> Mapping[str, str] | None:
        """A Namespace's labels (None: not seen; watched only with accounts on)."""
        ...

    def integrations(self) -> list[IntegrationInfo]:
        """Every integration observed."""
        ...


@dataclass(frozen=True)
class RelayState:
    """The relay Deployment as the ``RelayAvailable`` condition sees it."""

    reason: Reason  # RelayReady, RelayStarting or RelayUnavailable
    message: str
    recheck_after: float | None = None  # starting with no controller to flip it: look again

    @property
    def ready(self) -> bool:
        return self.reason == Reason.RELAY_READY


def _age(created: str, now: datetime) -> float:
    try:
        return (now - datetime.fromisoformat(created.replace("Z", "+00:00"))).total_seconds()
    except ValueError:
        return 0.0


def relay_state(deployment: ChildState | None, now: datetime) -> RelayState:
    """Ready, starting (a rollout in progress, not failed) or unavailable (a real failure).

    Follows the Deployment controller's own verdict: ``Progressing`` True with a rollout
    reason is starting; ``Progressing`` False (``ProgressDeadlineExceeded``) is a failure,
    and so is a completed rollout (``NewReplicaSetAvailable``) that lost its ready
    replicas. Without a ``Progressing`` condition yet, the Deployment's age decides against
    ``progressDeadlineSeconds``.
    """
    if deployment is None:
        return RelayState(Reason.RELAY_STARTING, "relay Deployment being created")
    name, deadline = deployment.name, deployment.progress_deadline_seconds
    if deployment.replicas == 0:
        return RelayState(Reason.RELAY_UNAVAILABLE, f"Deployment {name} is scaled to 0 replicas")
    counts = f"{deployment.ready_replicas}/{deployment.replicas} relay replicas ready"
    rolled_out = deployment.observed_generation >= deployment.generation
    if rolled_out and deployment.ready_replicas >= deployment.replicas:
        return RelayState(
            Reason.RELAY_READY,
            f"Deployment {name}: {deployment.ready_replicas} relay replica(s) ready",
        )
    if deployment.progressing is not None and deployment.progressing[0] == "False":
        return RelayState(
            Reason.RELAY_UNAVAILABLE,
            f"Deployment {name} exceeded its progress deadline ({deadline}s): {counts} "
            f"({deployment.progressing[1]})",
        )
    if not rolled_out:
        return RelayState(Reason.RELAY_STARTING, f"Deployment {name} is rolling out")
    if deployment.progressing is not None:
        if deployment.progressing[1] == "NewReplicaSetAvailable":
            return RelayState(Reason.RELAY_UNAVAILABLE, f"Deployment {name}: {counts}")
        return RelayState(Reason.RELAY_STARTING, f"Deployment {name} is rolling out: {counts}")
    remaining = deadline - _age(deployment.created, now)
    if remaining > 0:
        return RelayState(
            Reason.RELAY_STARTING,
            f"Deployment {name} is starting: {counts}",
            recheck_after=remaining,
        )
    return RelayState(
        Reason.RELAY_UNAVAILABLE, f"Deployment {name} not available after {deadline}s: {counts}"
    )
