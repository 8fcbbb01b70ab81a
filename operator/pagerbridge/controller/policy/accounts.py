"""Shared accounts: may this integration use the account it names, and what does its
spec become with the account's credentials? Pure: the caller brings the namespace's labels
and the parsed accounts, so every decision is tested without a cluster.

The integration's spec names no Secret of its own then (the CRD's CEL rules refuse it);
:func:`effective_spec` fills in the account's Secret references, which live in the
account namespace (``PAGERBRIDGE_ACCOUNT_NAMESPACE``) beside the relay, and the account's
URLs (so a tenant can never send the account's tokens elsewhere). Everything downstream
(compile, the subscription, BigPanda's integration, the children) then works as for any
integration, with ``Owner.home`` set to the account namespace.

Refusals (:class:`~pagerbridge.controller.errors.AccountRefused`), checked in this order:
accounts not configured (``AccountsDisabled``), an account that does not exist
(``AccountNotFound``), one that does not select the namespace (``AccountNotAllowed``),
and one without a key the integration needs (``AccountNotReady``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from pagerbridge.api import (
    ClusterBigPandaAccountSpec,
    ClusterPagerDutyAccountSpec,
    PagerDutyIntegrationSpec,
    ResourceKind,
)
from pagerbridge.api.account import AccountUsers
from pagerbridge.api.integration import RoutingKeySpec
from pagerbridge.controller.errors import (
    AccountNotAllowed,
    AccountNotFound,
    AccountNotReady,
    AccountsDisabled,
    InvalidSpec,
)


def home(spec: Mapping[str, object], account_namespace: str) -> str | None:
    """The account namespace when the (raw) spec names a PagerDuty account, else None:
    where the integration's relay runs (decided also for a spec that does not parse, so
    a refused integration's relay is still found and stopped)."""
    pager_duty = spec.get("pagerDuty")
    if isinstance(pager_duty, Mapping) and pager_duty.get("accountRef"):
        return account_namespace or None
    return None


def _allowed(
    kind: str,
    name: str,
    account: AccountUsers | None,
    namespace: str,
    labels: Mapping[str, str],
    enforce: bool = True,
) -> None:
    if account is None:
        raise AccountNotFound(f"{kind} {name!r} does not exist")
    if enforce and not account.allows(namespace, labels):
        raise AccountNotAllowed(
            f"{kind} {name!r} does not allow namespace {namespace!r} (neither its "
            "namespaceSelector nor its namespaces list selects it); ask the cluster admin"
        )


def effective_spec(
    spec: PagerDutyIntegrationSpec,
    namespace: str,
    labels: Mapping[str, str] | None,
    pager_duty: ClusterPagerDutyAccountSpec | None,
    big_panda: ClusterBigPandaAccountSpec | None,
    *,
    account_namespace: str,
    enforce: bool = True,
) -> PagerDutyIntegrationSpec:
    """``spec`` itself without an accountRef; else the spec with the accounts' credentials
    and URLs, or the refusal. ``labels`` None: the namespace is not known (yet).
    ``enforce`` False: the selectors are not asked (cleanup of what the account made)."""
    pd_ref, bp_ref = spec.pager_duty.account_ref, spec.big_panda.account_ref
    if pd_ref is None:
        if spec.pager_duty.routing_key is None:
            raise InvalidSpec("pagerDuty.routingKey is required unless pagerDuty.accountRef is set")
        if bp_ref is not None:
            raise InvalidSpec("bigPanda.accountRef needs pagerDuty.accountRef")
        return spec
    if not account_namespace:
        raise AccountsDisabled(
            "pagerDuty.accountRef names a shared account, but this operator has no account "
            "namespace (Helm value accounts.enabled)"
        )
    own = _own_secrets(spec)
    if own:
        raise InvalidSpec(
            f"pagerDuty.accountRef excludes {', '.join(own)}: the account's credentials apply"
        )
    ns_labels = labels or {}
    _allowed("ClusterPagerDutyAccount", pd_ref.name, pager_duty, namespace, ns_labels, enforce)
    assert pager_duty is not None
    if bp_ref is not None:
        _allowed("ClusterBigPandaAccount", bp_ref.name, big_panda, namespace, ns_labels, enforce)
    if pager_duty.routing_key is None:
        raise AccountNotReady(
            f"ClusterPagerDutyAccount {pd_ref.name!r} has no routingKey, which every "
            "integration using it needs"
        )
    pd = spec.pager_duty.model_copy(
        update={
            "routing_key": RoutingKeySpec(
                name=pager_duty.routing_key.name, key=pager_duty.routing_key.key
            ),
            "api_token": pager_duty.api_token,
            "from_email": spec.pager_duty.from_email or pager_duty.from_email,
            "region": pager_duty.region,
            "events_url": pager_duty.events_url,
            "api_url": pager_duty.api_url,
        }
    )
    bp = spec.big_panda
    if bp_ref is not None and big_panda is not None:
        bp = bp.model_copy(
            update={
                "api_token": big_panda.api_token,
                "environment_id": bp.environment_id or big_panda.environment_id,
                "api_url": big_panda.api_url,
            }
        )
    return spec.model_copy(update={"pager_duty": pd, "big_panda": bp})


def _own_secrets(spec: PagerDutyIntegrationSpec) -> Sequence[str]:
    """Fields of the tenant's that the relay in the account namespace must not follow
    (the CRD refuses them too; checked again for a CRD installed without its rules)."""
    fields = {
        "pagerDuty.routingKey": spec.pager_duty.routing_key,
        "pagerDuty.apiToken": spec.pager_duty.api_token,
        "pagerDuty.eventsUrl": spec.pager_duty.events_url,
        "pagerDuty.apiUrl": spec.pager_duty.api_url,
        "bigPanda.apiToken": spec.big_panda.api_token,
        "bigPanda.apiUrl": spec.big_panda.api_url,
        "relay.image": spec.relay.image,
        "relay.imagePullSecrets": spec.relay.image_pull_secrets,
        "relay.database.uriSecretRef": spec.relay.database.uri_secret_ref,
        "relay.podLabels": spec.relay.pod_labels,
        "relay.podAnnotations": spec.relay.pod_annotations,
    }
    own = [name for name, value in fields.items() if value is not None]
    if spec.relay.storage is not None and spec.relay.storage.value == "PostgreSQL":
        own.append("relay.storage PostgreSQL")
    return own


def names_account(spec: Mapping[str, object]) -> bool:
    """Whether a (raw) spec names any shared account."""
    return bool(named_accounts(spec, "ClusterPagerDutyAccount")) or bool(
        named_accounts(spec, "ClusterBigPandaAccount")
    )


def named_accounts(spec: Mapping[str, object], kind: str) -> frozenset[str]:
    """Names of the accounts of ``kind`` a (raw) spec refers to (at most one)."""
    part = spec.get("pagerDuty" if kind == "ClusterPagerDutyAccount" else "bigPanda")
    ref = part.get("accountRef") if isinstance(part, Mapping) else None
    name = ref.get("name") if isinstance(ref, Mapping) else None
    return frozenset({str(name)}) if name else frozenset()


def users(
    kind: ResourceKind,
    account_spec: Mapping[str, Any],
    account: str,
    integrations: Iterable[tuple[str, Mapping[str, object]]],
    labels_of: Callable[[str], Mapping[str, str] | None],
) -> int:
    """How many of ``integrations`` (namespace, raw spec) name the account and may use it
    (a refused one does not count)."""
    try:
        parsed = kind.spec_model.model_validate(account_spec)
    except ValidationError:
        return 0
    assert isinstance(parsed, AccountUsers)
    return sum(
        1
        for namespace, spec in integrations
        if account in named_accounts(spec, kind.kind)
        and parsed.allows(namespace, labels_of(namespace) or {})
    )
