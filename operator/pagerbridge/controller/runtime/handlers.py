"""kopf handlers: translate watch events into reconciler triggers; nothing else.

Indices keep the observed state in memory (kopf fills them before any handler runs, so a
restarted operator does not recreate a child before it has listed them). Secrets and
children are watched with a server-side label selector: only the operator's own reach it;
the Secrets an integration references are read by name instead (:mod:`.user_secrets`).
The handlers enqueue the affected integration; :mod:`.reconciler` does the work. The only
handler that acts itself is the finalizer, which must block deletion until the PagerDuty
subscription is gone (escape hatch: annotation ``pagerbridge.io/skip-cleanup: "true"``);
it takes turns with the integration's reconciles (``Reconciler.exclusive``), so a reconcile
that started before the deletion cannot write an external object back after the cleanup.

kopf keeps its own bookkeeping (finalizer, progress, last-handled configuration) in
``pagerbridge.io`` annotations, never in ``status`` (the structural schema would prune it).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import httpx
import kopf

from pagerbridge.api import (
    ACCOUNT_KINDS,
    GROUP,
    INTEGRATION,
    KEY_OVERRIDE,
    TAG_MAPPING,
    VERSION,
)
from pagerbridge.clients.kubeconfig import Credentials
from pagerbridge.clients.kubernetes import BUILTIN, KubernetesClient
from pagerbridge.controller import names as n
from pagerbridge.controller.metrics import count_api_request
from pagerbridge.controller.ownership import cluster_identity
from pagerbridge.controller.reconcile import cleanup
from pagerbridge.controller.reconcile.cleanup import needs_finalizer
from pagerbridge.controller.reconcile.reconciler import Reconciler
from pagerbridge.controller.runtime.login import kopf_session
from pagerbridge.controller.runtime.reconnect import ReconnectBackoff
from pagerbridge.controller.settings import OperatorSettings
from pagerbridge.controller.state.observed import (
    CHILD_KINDS,
    AccountInfo,
    ChildState,
    IntegrationInfo,
    RefInfo,
    SecretState,
    account_info,
    child_state,
    integration_info,
    namespace_labels,
    owner_integration,
    owner_namespace,
    ref_info,
    secret_state,
)
from pagerbridge.controller.steps.context import involved

logger = logging.getLogger(__name__)

MANAGED = {n.LABEL_MANAGED_BY: n.MANAGED_BY}
MANAGED_SELECTOR = f"{n.LABEL_MANAGED_BY}={n.MANAGED_BY}"
CHILD_RESOURCES = {kind: BUILTIN[kind] for kind in CHILD_KINDS}  # kind -> (group, version, plural)


def _one(index: Any, key: object) -> Any:
    store = index.get(key)
    if store is None:
        return None
    for value in store:
        return value
    return None


class KopfWorld:
    """The ``World`` of :mod:`.observed`, read from kopf indices."""

    def __init__(self, indices: Mapping[str, Any]) -> None:
        self._indices = indices

    def integration(self, namespace: str, name: str) -> IntegrationInfo | None:
        info: IntegrationInfo | None = _one(self._indices["pb_integrations"], (namespace, name))
        return info

    def refs_to(self, kind: str, namespace: str, integration: str) -> list[RefInfo]:
        store = self._indices[f"pb_refs_{kind.lower()}"].get(("to", namespace, integration))
        return sorted(store or [], key=lambda ref: ref.name)

    def ref(self, kind: str, namespace: str, name: str) -> RefInfo | None:
        info: RefInfo | None = _one(
            self._indices[f"pb_refs_{kind.lower()}"], ("name", namespace, name)
        )
        return info

    def secret(self, namespace: str, name: str) -> SecretState | None:
        info: SecretState | None = _one(self._indices["pb_secrets"], (namespace, name))
        return info

    def child(self, kind: str, namespace: str, owner: str) -> ChildState | None:
        if kind not in CHILD_KINDS:  # not watched (the relay's Ingress or HTTPRoute)
            return None
        info: ChildState | None = _one(
            self._indices[f"pb_children_{kind.lower()}"], (namespace, owner)
        )
        return info

    def account(self, kind: str, name: str) -> AccountInfo | None:
        index = self._indices.get(f"pb_accounts_{kind.lower()}")
        info: AccountInfo | None = _one(index, name) if index is not None else None
        return info

    def namespace_labels(self, name: str) -> Mapping[str, str] | None:
        index = self._indices.get("pb_namespaces")
        labels: Mapping[str, str] | None = _one(index, name) if index is not None else None
        return labels

    def integrations(self) -> list[IntegrationInfo]:
        return [info for store in self._indices["pb_integrations"].values() for info in store]


def _count_request(request: httpx.Request) -> None:
    count_api_request(
        "operator",
        request.method,
        request.url.path,
        request.url.query.decode(),
        request.headers.get("content-type", ""),
    )


def _reconciler(memo: Any) -> Reconciler:
    reconciler: Reconciler = memo.reconciler
    return reconciler


def build_registry(settings: OperatorSettings, credentials: Credentials) -> kopf.OperatorRegistry:
    """All handlers of the operator, in a registry of their own (tests run several).

    ``credentials`` serve both kopf (its login) and the operator's own client."""
    registry = kopf.OperatorRegistry()
    integration = (GROUP, VERSION, INTEGRATION.plural)

    @kopf.on.startup(registry=registry)
    async def configure(**kwargs: Any) -> None:
        settings_: kopf.OperatorSettings = kwargs["settings"]
        memo = kwargs["memo"]
        persistence = settings_.persistence
        persistence.finalizer = n.FINALIZER
        persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=GROUP, key="last-handled-configuration"
        )
        # Known stream freezes (kopf #585, #957, #1276): never wait on a silent watch forever.
        settings_.watching.server_timeout = settings.watch_server_timeout
        settings_.watching.client_timeout = settings.watch_client_timeout
        settings_.watching.connect_timeout = 30
        # Retries capped at a bound and never escalated, so every watch is back within
        # api_reconnect_seconds of the API server answering again (see :mod:`.reconnect`).
        settings_.networking.error_backoffs = ReconnectBackoff(settings.api_reconnect_seconds)
        settings_.posting.level = logging.WARNING
        # The resources are known: no CRD or namespace discovery, so a namespaced
        # install needs no cluster-wide RBAC.
        settings_.scanning.disabled = True
        # Server-side label selectors: the API server sends only the objects the operator
        # made (kopf's ``labels=`` filters on handlers are applied client-side, after the
        # whole list reached the operator). Secrets above all: the operator never lists,
        # watches or decodes a Secret it does not own.
        for resource in (BUILTIN["Secret"], *CHILD_RESOURCES.values()):
            settings_.watching.label_selectors[resource] = MANAGED_SELECTOR
        kube = KubernetesClient(
            credentials, field_manager=n.FIELD_MANAGER, on_request=_count_request
        )
        memo.kube = kube
        identity = await cluster_identity(kube, settings.cluster_id)
        # kopf hands the indices (empty now, filled before any resource handler runs) to
        # startup handlers too: the World is complete at construction.
        world = KopfWorld({k: v for k, v in kwargs.items() if k.startswith("pb_")})
        memo.reconciler = Reconciler(kube, replace(settings, cluster_id=identity), world)
        memo.reconciler.start()

    @kopf.on.login(registry=registry)
    async def login(**_: Any) -> kopf.AiohttpSession:
        """The same credentials as the operator's own client (see :mod:`.login`)."""
        return kopf_session(credentials)

    @kopf.on.cleanup(registry=registry)
    async def shutdown(memo: Any, **_: Any) -> None:
        await memo.reconciler.stop()
        await memo.kube.aclose()

    # -- indices ----------------------------------------------------------------------

    @kopf.index(*integration, id="pb_integrations", registry=registry)
    def pb_integrations(body: kopf.Body, **_: Any) -> dict[Any, IntegrationInfo]:
        info = integration_info(body)
        return {(info.namespace, info.name): info}

    for kind in (KEY_OVERRIDE, TAG_MAPPING):

        def index_refs(body: kopf.Body, _kind: str = kind.kind, **_: Any) -> dict[Any, RefInfo]:
            info = ref_info(_kind, body)
            return {
                ("to", info.namespace, info.integration): info,
                ("name", info.namespace, info.name): info,
            }

        index_refs.__name__ = f"pb_refs_{kind.kind.lower()}"
        kopf.index(GROUP, VERSION, kind.plural, id=index_refs.__name__, registry=registry)(
            index_refs
        )

    # Only the operator's own Secrets (the API server filters: see ``configure``).
    @kopf.index("", "v1", "secrets", labels=MANAGED, id="pb_secrets", registry=registry)
    def pb_secrets(body: kopf.Body, **_: Any) -> dict[Any, SecretState]:
        state = secret_state(body)
        return {(state.namespace, state.name): state}

    for child_kind, (group, version, plural) in CHILD_RESOURCES.items():

        def index_child(
            body: kopf.Body, _kind: str = child_kind, **_: Any
        ) -> dict[Any, ChildState]:
            state = child_state(_kind, body)
            if state is None:
                return {}
            return {(state.owner_namespace or state.namespace, state.owner): state}

        index_child.__name__ = f"pb_children_{child_kind.lower()}"
        kopf.index(
            group, version, plural, labels=MANAGED, id=index_child.__name__, registry=registry
        )(index_child)

    # -- triggers ---------------------------------------------------------------------

    @kopf.on.event(*integration, id="integration_event", registry=registry)
    def integration_event(**kwargs: Any) -> None:
        deleted = kwargs.get("type") == "DELETED"
        _reconciler(kwargs["memo"]).integration_event(integration_info(kwargs["body"]), deleted)

    for kind in (KEY_OVERRIDE, TAG_MAPPING):

        def ref_event(_kind: str = kind.kind, **kwargs: Any) -> None:
            namespace, name, body, memo = (kwargs[k] for k in ("namespace", "name", "body", "memo"))
            reconciler = _reconciler(memo)
            previous = reconciler_refs.pop((_kind, namespace, name), None)
            current = ref_info(_kind, body).integration
            if kwargs.get("type") != "DELETED":
                reconciler_refs[(_kind, namespace, name)] = current
            for target in {previous, current} - {None, ""}:
                assert target is not None
                reconciler.integration_changed(namespace, target)
            reconciler.ref_changed(_kind, namespace, name)

        kopf.on.event(GROUP, VERSION, kind.plural, id=f"ref_event_{kind.kind}", registry=registry)(
            ref_event
        )

    reconciler_refs: dict[tuple[str, str, str], str] = {}

    @kopf.on.event("", "v1", "secrets", labels=MANAGED, id="secret_event", registry=registry)
    def secret_event(**kwargs: Any) -> None:
        """One of our own Secrets changed (the Secrets an integration references are
        checked by name instead: :mod:`.user_secrets`)."""
        owner = owner_integration(kwargs["body"])
        if owner is not None:
            _reconciler(kwargs["memo"]).integration_changed(owner_namespace(kwargs["body"]), owner)

    for child_kind, (group, version, plural) in CHILD_RESOURCES.items():

        def child_event(**kwargs: Any) -> None:
            body, memo = kwargs["body"], kwargs["memo"]
            owner = owner_integration(body)
            if owner is not None:
                _reconciler(memo).integration_changed(owner_namespace(body), owner)

        kopf.on.event(
            group,
            version,
            plural,
            labels=MANAGED,
            id=f"child_event_{child_kind}",
            registry=registry,
        )(child_event)

    if settings.account_namespace:
        _register_accounts(registry)

    # -- the finalizer ----------------------------------------------------------------

    def has_external_objects(spec: kopf.Spec, status: kopf.Status, **_: Any) -> bool:
        """Only integrations with a subscription or a Managed webhook get a finalizer
        (kopf adds and removes it as this changes)."""
        return needs_finalizer(dict(spec), dict(status))

    @kopf.on.delete(*integration, id="release", when=has_external_objects, registry=registry)
    async def release(**kwargs: Any) -> None:
        """Delete what the integration made outside the cluster (see :mod:`.cleanup`)."""
        namespace, name, body, memo = (kwargs[k] for k in ("namespace", "name", "body", "memo"))
        reconciler = _reconciler(memo)
        info = integration_info(body)
        owner = reconciler.owner_of(info)
        involved_object = involved(info.uid, namespace, name)
        # Not while a reconcile (started before the deletion) may still write them.
        async with reconciler.exclusive(namespace, name):
            stored = reconciler.world.secret(owner.child_namespace, owner.names.webhook_secret)
            await cleanup.release(
                memo.kube,
                info,
                involved_object,
                stored,
                kwargs["retry"],
                policy=settings.egress,
                cluster_id=reconciler.settings.cluster_id,
                limits=settings.call_limits,
                token_grace=settings.token_rotation_grace_seconds,
                owner=owner,
                spec=reconciler.spec_for_cleanup(info),
            )

    return registry


def _register_accounts(registry: kopf.OperatorRegistry) -> None:
    """Shared accounts (``PAGERBRIDGE_ACCOUNT_NAMESPACE`` set): index the accounts and
    the Namespaces' labels (cluster-scoped: Helm value accounts.enabled grants list and
    watch on both), and re-check the integrations an account or a relabelled Namespace
    may concern."""
    namespaces = ("", "v1", "namespaces")

    @kopf.index(*namespaces, id="pb_namespaces", registry=registry)
    def pb_namespaces(body: kopf.Body, **_: Any) -> dict[Any, dict[str, str]]:
        return {str(body["metadata"]["name"]): namespace_labels(body)}

    @kopf.on.event(*namespaces, id="namespace_event", registry=registry)
    def namespace_event(**kwargs: Any) -> None:
        _reconciler(kwargs["memo"]).namespace_changed(str(kwargs["name"]))

    for account in ACCOUNT_KINDS:

        def index_account(
            body: kopf.Body, _kind: str = account.kind, **_: Any
        ) -> dict[Any, AccountInfo]:
            info = account_info(_kind, body)
            return {info.name: info}

        index_account.__name__ = f"pb_accounts_{account.kind.lower()}"
        kopf.index(GROUP, VERSION, account.plural, id=index_account.__name__, registry=registry)(
            index_account
        )

        def account_event(_kind: str = account.kind, **kwargs: Any) -> None:
            _reconciler(kwargs["memo"]).account_changed(_kind, str(kwargs["name"]))

        kopf.on.event(
            GROUP, VERSION, account.plural, id=f"account_event_{account.kind}", registry=registry
        )(account_event)
