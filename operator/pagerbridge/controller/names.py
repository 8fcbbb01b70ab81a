"""Names, labels and mount paths of an integration's children, in one place.

Children names must fit a DNS-1035 label (a Service name: 63 characters), so a long
integration name is shortened with a stable hash suffix instead of failing.

Names outside the cluster (BigPanda integrations) are shared by every namespace and
cluster using one BigPanda account, so they are derived unambiguously: readable
``pagerbridge-<namespace>-<name>`` followed by a hash of namespace, name and the
integration's UID (``team``/``a-x`` and ``team-a``/``x`` differ; a recreated integration
gets a new name, never its predecessor's object).

The relay of an integration using a shared account runs in the account namespace, beside
the relays of every other tenant: its children are named by :func:`shared_base`
(``<namespace>-<name>`` shortened, then a hash of namespace, name and UID, so
``team``/``a-x`` and ``team-a``/``x`` never collide) and carry the tenant's namespace, name
and UID in :data:`LABEL_TENANT_NAMESPACE`, :data:`LABEL_TENANT_UID` and
:data:`ANNOTATION_TENANT_NAME` instead of an ownerReference (which cannot cross namespaces).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pagerbridge.api import GROUP

MANAGED_BY = "pagerbridge"
FIELD_MANAGER = "pagerbridge"
RELAY_APP = "pagerbridge-relay"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_INTEGRATION = f"{GROUP}/integration"

# Children in the account namespace: whose they are (a label value holds at most 63
# characters: the name, up to 253, is an annotation).
LABEL_TENANT_NAMESPACE = f"{GROUP}/tenant-namespace"
LABEL_TENANT_UID = f"{GROUP}/tenant-uid"
ANNOTATION_TENANT_NAME = f"{GROUP}/tenant-name"

ANNOTATION_CONFIG_HASH = f"{GROUP}/config-hash"
ANNOTATION_SUBSCRIPTION_ID = f"{GROUP}/subscription-id"
ANNOTATION_SKIP_CLEANUP = f"{GROUP}/skip-cleanup"
# On the managed routing key's Secret: the PagerDuty integration and service it holds the key of.
ANNOTATION_ROUTING_KEY_INTEGRATION = f"{GROUP}/routing-key-integration-id"
ANNOTATION_ROUTING_KEY_SERVICE = f"{GROUP}/routing-key-service-id"
ANNOTATION_ROUTING_KEY_DIGEST = f"{GROUP}/routing-key-digest"  # SHA-256 prefix, not the key
ANNOTATION_PAUSED = f"{GROUP}/paused"  # "true": the operator writes nothing but status
TRUE_VALUES = frozenset({"true", "yes", "1"})  # what the boolean annotations accept
FINALIZER = f"{GROUP}/finalizer"  # only on integrations with external objects

CONFIG_DIR = "/etc/pagerbridge/config"
CONFIG_FILE_KEY = "relay.json"
SECRETS_DIR = "/etc/pagerbridge/secrets"
OUTBOX_DIR = "/var/lib/pagerbridge"
TMP_DIR = "/tmp"  # noqa: S108 - an emptyDir inside a read-only container
TOKEN_KEY = "token"
WEBHOOK_SECRET_KEY = "secret"
ADMIN_TOKEN_KEY = "token"
ROUTING_KEY_KEY = "routing-key"


def _dns_label(base: str, suffix: str, limit: int = 63) -> str:
    name = f"{base}-{suffix}"
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(base.encode()).hexdigest()[:8]
    keep = limit - len(suffix) - len(digest) - 2
    return f"{base[:keep].rstrip('-.')}-{digest}-{suffix}"


@dataclass(frozen=True)
class ChildNames:
    """Names of every child of one integration."""

    integration: str

    @property
    def relay(self) -> str:
        """Deployment, Service and ConfigMap share this name."""
        return _dns_label(self.integration, "relay")

    @property
    def token_secret(self) -> str:
        return _dns_label(self.integration, "relay-token")

    @property
    def admin_secret(self) -> str:
        """The generated bearer token of the relay's admin API."""
        return _dns_label(self.integration, "relay-admin")

    @property
    def webhook_secret(self) -> str:
        return _dns_label(self.integration, "pd-webhook")

    @property
    def routing_key_secret(self) -> str:
        """The managed routing key (``pagerDuty.routingKey.managed``)."""
        return _dns_label(self.integration, "pd-routing-key")

    @property
    def outbox_claim(self) -> str:
        return _dns_label(self.integration, "outbox")

    @property
    def instance_label(self) -> str:
        """Label values are limited to 63 characters too."""
        return self.relay.removesuffix("-relay") if len(self.integration) > 57 else self.integration


EXTERNAL_NAME_LIMIT = 100  # BigPanda integration names: 1-100 of [A-Za-z0-9_.-]
EXTERNAL_HASH_LENGTH = 10


def legacy_external_name(namespace: str, name: str) -> str:
    """The BigPanda integration name used before names were hashed (ambiguous)."""
    return f"pagerbridge-{namespace}-{name}"


def external_name(namespace: str, name: str, uid: str) -> str:
    """``pagerbridge-<namespace>-<name>-<hash>``, the hash over namespace, name and UID."""
    digest = hashlib.sha256(f"{namespace}\0{name}\0{uid}".encode()).hexdigest()
    base = legacy_external_name(namespace, name)
    keep = EXTERNAL_NAME_LIMIT - EXTERNAL_HASH_LENGTH - 1
    return f"{base[:keep].rstrip('-.')}-{digest[:EXTERNAL_HASH_LENGTH]}"


SHARED_READABLE_LIMIT = 40  # characters of <namespace>-<name> kept in a shared child's name
SHARED_HASH_LENGTH = 10


def shared_base(namespace: str, name: str, uid: str) -> str:
    """The base of the children's names of an integration whose relay runs in the account
    namespace: readable ``<namespace>-<name>`` (shortened) and a hash of namespace, name
    and UID. At most 51 characters, so every suffix (``-relay-token``) fits 63."""
    digest = hashlib.sha256(f"{namespace}\0{name}\0{uid}".encode()).hexdigest()
    readable = f"{namespace}-{name}"[:SHARED_READABLE_LIMIT].rstrip("-.")
    return f"{readable}-{digest[:SHARED_HASH_LENGTH]}"


def tenant_labels(namespace: str, uid: str) -> dict[str, str]:
    """Labels of a child in the account namespace naming its tenant integration."""
    return {LABEL_TENANT_NAMESPACE: namespace, LABEL_TENANT_UID: uid}


def secret_mount_dir(secret_name: str) -> str:
    return f"{SECRETS_DIR}/{secret_name}"


def secret_file(secret_name: str, key: str) -> str:
    return f"{SECRETS_DIR}/{secret_name}/{key}"


def config_file() -> str:
    return f"{CONFIG_DIR}/{CONFIG_FILE_KEY}"


def selector_labels(names: ChildNames) -> dict[str, str]:
    return {LABEL_NAME: RELAY_APP, LABEL_INSTANCE: names.instance_label}


def child_labels(names: ChildNames) -> dict[str, str]:
    """Labels on every child: the selector, the manager, and the owning integration."""
    labels = selector_labels(names)
    labels[LABEL_MANAGED_BY] = MANAGED_BY
    labels[LABEL_COMPONENT] = "relay"
    labels[LABEL_INTEGRATION] = names.instance_label
    return labels
