"""Render an integration's children: a pure function of (spec, compiled config, names).

Nothing here talks to the API server; the reconciler applies what this returns with
server-side apply. Two rules shape the output:

* A ConfigMap-only change (key override, tag mapping, severity map, sync switches) must
  not roll pods: the relay hot-reloads its config file. The pod template therefore
  carries a hash of only the *restart-relevant* part of the RelayConfig (service URLs,
  file paths, outbox), under ``pagerbridge.io/config-hash``.
* Secret values never appear: Secrets are mounted as files (one volume per referenced
  Secret), and the BigPanda webhook status refers to the token Secret by name and key.

Pod settings (pull Secrets, scheduling, extra labels and annotations, resources) are the
operator-wide defaults with ``spec.relay`` over them (:func:`pagerbridge.api.relay_pod.effective`);
the operator's own labels and annotations always win, so a pod label can never take a pod
out of its Deployment's selector. Unset settings render nothing, so a Deployment rendered
before they existed is unchanged.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from pagerbridge.api import (
    API_VERSION,
    GROUP,
    INTEGRATION,
    PagerDutyIntegrationSpec,
    RelayConfig,
    RelayPodSettings,
)
from pagerbridge.api.contract import (
    BIGPANDA_WEBHOOK_PATH,
    HOT_RELOADED_FIELDS,
    OUTBOX_DSN_ENV,
    OUTBOX_SCHEMA_ENV,
    PAGERDUTY_WEBHOOK_PATH,
    RELAY_INTERNAL_PORT,
    RELAY_INTERNAL_PORT_NAME,
    RELAY_LIVENESS_PATH,
    RELAY_PUBLIC_PORT,
    RELAY_PUBLIC_PORT_NAME,
    RELAY_READINESS_PATH,
    bigpanda_config_headers,
    outbox_schema,
    relay_command,
)
from pagerbridge.api.integration import RelayStorage
from pagerbridge.api.relay_pod import DEFAULT_RESOURCES, effective
from pagerbridge.controller import names as n
from pagerbridge.controller.policy.network import RelayNetworkPolicy, render_policy
from pagerbridge.controller.render.compile import Compiled

Manifest = dict[str, Any]

RUN_AS = 65532  # the distroless "nonroot" user
# Shared outbox, rolling updates: a terminating replica keeps serving this long after it
# is marked for deletion, while Services, kube-proxy and ingress controllers stop sending
# it new webhooks; only then does it get SIGTERM and drain (no webhook is refused).
DRAIN_DELAY_SECONDS = 5


@dataclass(frozen=True)
class Owner:
    """The integration that owns the children.

    ``home``: the account namespace, when the integration uses a shared account; its
    children then live there, named by :func:`.names.shared_base` and labelled with the
    tenant (no ownerReference: one cannot cross namespaces), and the finalizer and the
    orphan sweep delete them instead of the garbage collector."""

    namespace: str
    name: str
    uid: str
    home: str | None = None

    @property
    def shared(self) -> bool:
        return self.home is not None

    @property
    def child_namespace(self) -> str:
        """Where the children (and the Secrets the relay mounts) are."""
        return self.home if self.home is not None else self.namespace

    @property
    def names(self) -> n.ChildNames:
        if self.home is not None:
            return n.ChildNames(n.shared_base(self.namespace, self.name, self.uid))
        return n.ChildNames(self.name)

    @property
    def tenant_names(self) -> n.ChildNames:
        """Names of what the operator writes into the integration's own namespace (the
        copy of the inbound token, for Manual mode)."""
        return n.ChildNames(self.name)

    def in_own_namespace(self) -> Owner:
        """The same integration as the owner of objects in its own namespace."""
        return Owner(self.namespace, self.name, self.uid)

    def metadata(self, name: str, **extra: Any) -> dict[str, Any]:
        """Metadata of one child: its place, our labels, and who owns it."""
        labels = n.child_labels(self.names)
        meta: dict[str, Any] = {"name": name, "namespace": self.child_namespace}
        if self.home is None:
            meta["labels"] = labels
            meta["ownerReferences"] = [self.reference()]
        else:
            meta["labels"] = {**labels, **n.tenant_labels(self.namespace, self.uid)}
            annotations = {n.ANNOTATION_TENANT_NAME: self.name, **extra.pop("annotations", {})}
            meta["annotations"] = annotations
        meta.update(extra)
        return meta

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": INTEGRATION.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


@dataclass(frozen=True)
class RenderSettings:
    image: str
    image_pull_policy: str = "IfNotPresent"
    # Operator-wide relay pod settings; spec.relay overrides them.
    pod_defaults: RelayPodSettings = field(default_factory=RelayPodSettings)
    # The admin's NetworkPolicy for every relay (off: none rendered, none touched).
    network_policy: RelayNetworkPolicy = field(default_factory=RelayNetworkPolicy)


@dataclass(frozen=True)
class Children:
    config_map: Manifest
    deployment: Manifest
    service: Manifest
    outbox_claim: Manifest | None
    disruption_budget: Manifest | None = None
    network_policy: Manifest | None = None

    def applied(self) -> list[Manifest]:
        """Children kept in shape by server-side apply, in apply order (the
        NetworkPolicy before the Deployment: a relay pod never runs unfenced)."""
        items = [self.config_map, self.service]
        if self.network_policy is not None:
            items.append(self.network_policy)
        if self.outbox_claim is not None:
            items.append(self.outbox_claim)
        if self.disruption_budget is not None:
            items.append(self.disruption_budget)
        items.append(self.deployment)
        return items

    def absent(self) -> list[str]:
        """Kinds of children this spec does not have, removed if an older spec made them.
        (An outbox claim is kept: it may hold work not yet delivered.)"""
        return [] if self.disruption_budget is not None else ["PodDisruptionBudget"]


def _metadata(owner: Owner, name: str, **extra: Any) -> dict[str, Any]:
    return owner.metadata(name, **extra)


# On the relay pod template: the resourceVersion of the Secret read into its environment.
ANNOTATION_ENV_SECRET_VERSION = f"{GROUP}/env-secret-version"


def config_hash(config: RelayConfig) -> str:
    """Hash of what the relay reads only at start: a change rolls the pods."""
    document = config.to_json_dict()
    for key in HOT_RELOADED_FIELDS:
        document.pop(key, None)
    text = json.dumps(document, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def render_config_map(owner: Owner, config: RelayConfig) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(owner, owner.names.relay),
        "data": {n.CONFIG_FILE_KEY: config.to_json()},
    }


def _secret_volume(volume: str, secret_name: str, optional: bool = False) -> dict[str, Any]:
    source: dict[str, Any] = {"secretName": secret_name, "defaultMode": 0o440}
    if optional:
        source["optional"] = True
    return {"name": volume, "secret": source}


def render_deployment(
    owner: Owner,
    spec: PagerDutyIntegrationSpec,
    compiled: Compiled,
    settings: RenderSettings,
    env_secret_version: str = "",
) -> Manifest:
    """``env_secret_version``: the resourceVersion of the Secret whose key becomes an
    environment variable (the database URI). Unlike a mounted file, an environment
    variable never changes in a running container: a new version rolls the pods."""
    names = owner.names
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": names.relay}},
        {"name": "tmp", "emptyDir": {}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "config", "mountPath": n.CONFIG_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": n.TMP_DIR},
    ]
    secret_names = [*compiled.mounted_secrets, names.token_secret, names.admin_secret]
    if compiled.config.pager_duty.webhook_secret_file is not None:
        secret_names.append(names.webhook_secret)
    for index, secret_name in enumerate(secret_names):
        volume = f"secret-{index}"
        volumes.append(_secret_volume(volume, secret_name))
        mounts.append(
            {"name": volume, "mountPath": n.secret_mount_dir(secret_name), "readOnly": True}
        )
    storage = spec.relay.effective_storage
    if storage is RelayStorage.PERSISTENT:
        volumes.append(
            {"name": "outbox", "persistentVolumeClaim": {"claimName": names.outbox_claim}}
        )
    else:
        volumes.append({"name": "outbox", "emptyDir": {}})
    mounts.append({"name": "outbox", "mountPath": n.OUTBOX_DIR})
    env: list[dict[str, Any]] = []
    if storage is RelayStorage.POSTGRESQL and compiled.database is not None:
        # The URI stays in its Secret: the kubelet resolves it into the environment.
        ref = compiled.database
        env = [
            {
                "name": OUTBOX_DSN_ENV,
                "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}},
            },
            {"name": OUTBOX_SCHEMA_ENV, "value": outbox_schema(owner.namespace, owner.name)},
        ]

    pod = effective(settings.pod_defaults, spec.relay)
    resources = pod.resources.to_json_dict() if pod.resources else DEFAULT_RESOURCES
    probe_defaults = {"periodSeconds": 10, "timeoutSeconds": 2, "failureThreshold": 3}
    container: dict[str, Any] = {
        "name": "relay",
        "image": spec.relay.image or settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": relay_command(
            n.config_file(),
            "0.0.0.0",  # noqa: S104 - in the pod
            RELAY_PUBLIC_PORT,
            RELAY_INTERNAL_PORT,
        ),
        "ports": [
            {"name": RELAY_PUBLIC_PORT_NAME, "containerPort": RELAY_PUBLIC_PORT, "protocol": "TCP"},
            {
                "name": RELAY_INTERNAL_PORT_NAME,
                "containerPort": RELAY_INTERNAL_PORT,
                "protocol": "TCP",
            },
        ],
        "readinessProbe": {
            "httpGet": {"path": RELAY_READINESS_PATH, "port": RELAY_INTERNAL_PORT_NAME},
            **probe_defaults,
        },
        "livenessProbe": {
            "httpGet": {"path": RELAY_LIVENESS_PATH, "port": RELAY_INTERNAL_PORT_NAME},
            "initialDelaySeconds": 5,
            **probe_defaults,
        },
        "resources": resources,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": mounts,
    }
    if env:
        container["env"] = env
    shared_outbox = storage is RelayStorage.POSTGRESQL
    if shared_outbox:
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": DRAIN_DELAY_SECONDS}}}
    selector = n.selector_labels(names)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(owner, names.relay),
        "spec": {
            "replicas": spec.relay.replicas,
            "selector": {"matchLabels": selector},
            "strategy": _strategy(shared_outbox),
            "template": {
                "metadata": {
                    "labels": {**(pod.pod_labels or {}), **n.child_labels(names)},
                    "annotations": {
                        **(pod.pod_annotations or {}),
                        n.ANNOTATION_CONFIG_HASH: config_hash(compiled.config),
                        **(
                            {ANNOTATION_ENV_SECRET_VERSION: env_secret_version}
                            if env and env_secret_version
                            else {}
                        ),
                    },
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": RUN_AS,
                        "runAsGroup": RUN_AS,
                        "fsGroup": RUN_AS,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    **_placement(pod, selector),
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def _strategy(shared_outbox: bool) -> dict[str, Any]:
    if shared_outbox:
        # Replicas share one outbox that orders and leases work across them: a new pod is
        # Ready before an old one goes, so some replica always accepts webhooks.
        return {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    # One writer per file outbox: the old pod is gone before the new one starts, so two
    # relays never serve the same incidents from two outboxes (per-incident order) nor
    # open one claim twice.
    return {"type": "Recreate"}


def render_disruption_budget(owner: Owner, spec: PagerDutyIntegrationSpec) -> Manifest | None:
    """Shared outbox, two or more replicas: voluntary disruptions (drains) take one relay
    pod at a time, so one always accepts webhooks. A single relay gets none: a budget
    could only block drains, never keep it serving."""
    if spec.relay.effective_storage is not RelayStorage.POSTGRESQL or spec.relay.replicas < 2:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(owner, owner.names.relay),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": n.selector_labels(owner.names)},
            # A crash-looping relay must not block a node drain.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def _placement(pod: RelayPodSettings, selector: dict[str, str]) -> dict[str, Any]:
    """Pod spec fields for pull Secrets and scheduling; only those set (and non-empty)."""
    fields: dict[str, Any] = {}
    if pod.image_pull_secrets:
        fields["imagePullSecrets"] = [ref.to_json_dict() for ref in pod.image_pull_secrets]
    if pod.priority_class_name:
        fields["priorityClassName"] = pod.priority_class_name
    if pod.node_selector:
        fields["nodeSelector"] = dict(pod.node_selector)
    if pod.tolerations:
        fields["tolerations"] = [toleration.to_json_dict() for toleration in pod.tolerations]
    if pod.affinity is not None and (affinity := pod.affinity.to_json_dict()):
        fields["affinity"] = affinity
    if pod.topology_spread_constraints:
        constraints = []
        for constraint in pod.topology_spread_constraints:
            rendered = constraint.to_json_dict()
            # Without a selector a constraint would count no pods at all: count this relay's.
            rendered.setdefault("labelSelector", {"matchLabels": dict(selector)})
            constraints.append(rendered)
        fields["topologySpreadConstraints"] = constraints
    return fields


def render_service(owner: Owner, spec: PagerDutyIntegrationSpec) -> Manifest:
    """The relay's Service: the public (webhook) port only. The internal port is reached by
    the kubelet (probes), the PodMonitor (pod endpoints) and ``pagerbridge outbox`` (the API
    server's pod proxy), none of which needs a Service; so a Service of type LoadBalancer,
    or an Ingress/HTTPRoute in front of it, can never expose metrics or the admin API."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(owner, owner.names.relay),
        "spec": {
            "type": spec.relay.service.type.value,
            "selector": n.selector_labels(owner.names),
            "ports": [
                {
                    "name": RELAY_PUBLIC_PORT_NAME,
                    "port": spec.relay.service.port,
                    "targetPort": RELAY_PUBLIC_PORT_NAME,
                    "protocol": "TCP",
                }
            ],
        },
    }


def render_network_policy(owner: Owner, policy: RelayNetworkPolicy) -> Manifest | None:
    """The relay's NetworkPolicy when the admin turned them on (see
    :mod:`pagerbridge.controller.policy.network`). Not watched and, once off, left alone
    (the operator then has no RBAC for NetworkPolicies)."""
    if not policy.enabled:
        return None
    return render_policy(
        policy,
        _metadata(owner, owner.names.relay),
        n.selector_labels(owner.names),
        RELAY_PUBLIC_PORT,
        RELAY_INTERNAL_PORT,
    )


def render_outbox_claim(owner: Owner, spec: PagerDutyIntegrationSpec) -> Manifest | None:
    persistence = spec.relay.persistence
    if spec.relay.effective_storage is not RelayStorage.PERSISTENT:
        return None
    claim_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": persistence.size}},
    }
    if persistence.storage_class_name:
        claim_spec["storageClassName"] = persistence.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(owner, owner.names.outbox_claim),
        "spec": claim_spec,
    }


def render_children(
    owner: Owner,
    spec: PagerDutyIntegrationSpec,
    compiled: Compiled,
    settings: RenderSettings,
    env_secret_version: str = "",
) -> Children:
    return Children(
        config_map=render_config_map(owner, compiled.config),
        deployment=render_deployment(owner, spec, compiled, settings, env_secret_version),
        service=render_service(owner, spec),
        outbox_claim=render_outbox_claim(owner, spec),
        disruption_budget=render_disruption_budget(owner, spec),
        network_policy=render_network_policy(owner, settings.network_policy),
    )


def render_token_secret(owner: Owner, token: str) -> Manifest:
    """The generated inbound webhook token; created once, never re-rendered over."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": _metadata(owner, owner.names.token_secret),
        "stringData": {n.TOKEN_KEY: token},
    }


def render_admin_secret(owner: Owner, token: str) -> Manifest:
    """The generated bearer token of the relay's admin API; created once, never re-rendered
    over (see :mod:`pagerbridge.controller.steps.generated_secrets`)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": _metadata(owner, owner.names.admin_secret),
        "stringData": {n.ADMIN_TOKEN_KEY: token},
    }


def render_webhook_secret(owner: Owner, signing_secret: str, subscription_id: str) -> Manifest:
    """The PagerDuty Webhooks v3 signing secret, with the subscription id it belongs to."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": _metadata(
            owner,
            owner.names.webhook_secret,
            annotations={n.ANNOTATION_SUBSCRIPTION_ID: subscription_id},
        ),
        "stringData": {n.WEBHOOK_SECRET_KEY: signing_secret},
    }


def render_routing_key_secret(
    owner: Owner, routing_key: str, integration_id: str, service_id: str, digest: str
) -> Manifest:
    """The managed routing key (``pagerDuty.routingKey.managed``), with the PagerDuty
    integration and service it belongs to and a digest of the key (never the key) in
    annotations, so a verification can tell whether PagerDuty's key is the one held."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": _metadata(
            owner,
            owner.names.routing_key_secret,
            annotations={
                n.ANNOTATION_ROUTING_KEY_INTEGRATION: integration_id,
                n.ANNOTATION_ROUTING_KEY_SERVICE: service_id,
                n.ANNOTATION_ROUTING_KEY_DIGEST: digest,
            },
        ),
        "stringData": {n.ROUTING_KEY_KEY: routing_key},
    }


def service_url(owner: Owner, spec: PagerDutyIntegrationSpec) -> str:
    port = spec.relay.service.port
    host = f"{owner.names.relay}.{owner.child_namespace}.svc"
    return f"http://{host}" if port == 80 else f"http://{host}:{port}"


def relay_base_url(owner: Owner, spec: PagerDutyIntegrationSpec) -> str:
    return (spec.relay.effective_public_url or service_url(owner, spec)).rstrip("/")


def bigpanda_webhook_status(
    owner: Owner, spec: PagerDutyIntegrationSpec, compiled: Compiled
) -> dict[str, Any]:
    """What to enter in BigPanda's webhook: URL and headers; the token by reference only."""
    headers: list[dict[str, Any]] = [
        {
            "name": "Authorization",
            "value": "Bearer <token>",
            # a shared account's relay: the copy in the integration's own namespace
            "valueFrom": {"name": owner.tenant_names.token_secret, "key": n.TOKEN_KEY},
        }
    ]
    pairs = bigpanda_config_headers(
        compiled.config.key_override_tag,
        ((m.tag, m.field) for m in compiled.config.tag_mappings),
    )
    headers.extend({"name": name, "value": value} for name, value in pairs)
    return {"url": relay_base_url(owner, spec) + BIGPANDA_WEBHOOK_PATH, "headers": headers}


def pagerduty_webhook_url(owner: Owner, spec: PagerDutyIntegrationSpec) -> str:
    return relay_base_url(owner, spec) + PAGERDUTY_WEBHOOK_PATH
