"""Shared accounts, the pure decisions: who an account's namespace selector admits, what
an integration's spec becomes with the account's credentials (and what it may not set),
how children in the account namespace are named and labelled, and which of them the
orphan sweep and the ownership proof count as an integration's."""

from __future__ import annotations

from typing import Any

import pytest

from pagerbridge.api import (
    PAGERDUTY_ACCOUNT,
    ClusterBigPandaAccountSpec,
    ClusterPagerDutyAccountSpec,
    LabelSelector,
    PagerDutyIntegrationSpec,
)
from pagerbridge.api import ConditionReason as Reason
from pagerbridge.controller import names as n
from pagerbridge.controller.errors import AccountRefused, InvalidSpec
from pagerbridge.controller.ownership import owned_by
from pagerbridge.controller.policy import accounts
from pagerbridge.controller.reconcile import shared
from pagerbridge.controller.reconcile.cleanup import needs_finalizer
from pagerbridge.controller.reconcile.reconciler import Reconciler
from pagerbridge.controller.render.children import Owner, service_url
from pagerbridge.controller.settings import OperatorSettings
from pagerbridge.controller.state.observed import child_state
from pagerbridge_devkit.sandbox.server import loopback_egress_policy

from .fake_kube import FakeKube, FakeWorld
from .objects import NS, ROUTING_KEY, condition, secret
from .objects import integration as integration_object

ADMIN = "pagerbridge-accounts"
PD_ACCOUNT = ClusterPagerDutyAccountSpec.model_validate(
    {
        "routingKey": {"name": "pd", "key": "routing-key"},
        "apiToken": {"name": "pd", "key": "api-token"},
        "fromEmail": "ops@example.com",
        "apiUrl": "https://api.eu.pagerduty.com",
        "namespaceSelector": {"matchLabels": {"team": "payments"}},
        "namespaces": ["legacy"],
    }
)
BP_ACCOUNT = ClusterBigPandaAccountSpec.model_validate(
    {"apiToken": {"name": "bp", "key": "token"}, "environmentId": "env-1", "namespaces": ["a"]}
)


def selector(**fields: Any) -> LabelSelector:
    return LabelSelector.model_validate(fields)


@pytest.mark.parametrize(
    ("fields", "labels", "selected"),
    [
        ({}, {}, True),  # empty selects everything, as in Kubernetes
        ({"matchLabels": {"team": "a"}}, {"team": "a", "x": "y"}, True),
        ({"matchLabels": {"team": "a"}}, {"team": "b"}, False),
        ({"matchLabels": {"team": "a"}}, {}, False),
        ({"matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]}]},
         {"team": "b"}, True),
        ({"matchExpressions": [{"key": "team", "operator": "In", "values": ["a"]}]}, {}, False),
        ({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["a"]}]}, {}, True),
        ({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["a"]}]},
         {"team": "a"}, False),
        ({"matchExpressions": [{"key": "team", "operator": "Exists"}]}, {"team": ""}, True),
        ({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}, {"team": ""}, False),
        # every term must hold
        ({"matchLabels": {"team": "a"},
          "matchExpressions": [{"key": "tier", "operator": "Exists"}]}, {"team": "a"}, False),
    ],
)  # fmt: skip
def test_label_selector_follows_kubernetes_semantics(
    fields: dict[str, Any], labels: dict[str, str], selected: bool
) -> None:
    assert selector(**fields).matches(labels) is selected


def test_an_account_admits_its_selected_and_listed_namespaces_and_no_other() -> None:
    assert PD_ACCOUNT.allows("payments-prod", {"team": "payments"})
    assert PD_ACCOUNT.allows("legacy", {})  # listed by name
    assert not PD_ACCOUNT.allows("search", {"team": "search"})
    nobody = ClusterPagerDutyAccountSpec.model_validate({})
    assert not nobody.allows("anything", {})  # neither selector nor list: nobody


def integration(**pager_duty: Any) -> PagerDutyIntegrationSpec:
    return PagerDutyIntegrationSpec.model_validate(
        {"pagerDuty": {"accountRef": {"name": "shared"}, **pager_duty}, "sync": {"notes": False}}
    )


def effective(
    spec: PagerDutyIntegrationSpec,
    labels: dict[str, str] | None = None,
    pd: ClusterPagerDutyAccountSpec | None = PD_ACCOUNT,
    bp: ClusterBigPandaAccountSpec | None = None,
    **kwargs: Any,
) -> PagerDutyIntegrationSpec:
    return accounts.effective_spec(
        spec,
        "a",
        {"team": "payments"} if labels is None else labels,
        pd,
        bp,
        account_namespace=kwargs.pop("account_namespace", ADMIN),
        **kwargs,
    )


def test_the_effective_spec_carries_the_accounts_credentials_and_urls() -> None:
    spec = integration(fromEmail="me@example.com")
    spec = spec.model_copy(
        update={
            "big_panda": spec.big_panda.model_copy(
                update={"account_ref": spec.pager_duty.account_ref}
            )
        }
    )
    out = effective(spec, bp=BP_ACCOUNT)
    assert out.pager_duty.routing_key is not None
    assert out.pager_duty.routing_key.secret_ref == PD_ACCOUNT.routing_key
    assert out.pager_duty.api_token == PD_ACCOUNT.api_token
    assert out.pager_duty.api_url == "https://api.eu.pagerduty.com"
    assert out.pager_duty.from_email == "me@example.com"  # the integration's wins
    assert out.big_panda.api_token == BP_ACCOUNT.api_token
    assert out.big_panda.environment_id == "env-1"  # the account's default
    assert out.uses_account


def test_an_integration_without_account_is_left_as_it_is() -> None:
    spec = PagerDutyIntegrationSpec.model_validate(
        {"pagerDuty": {"routingKey": {"name": "pd", "key": "k"}}}
    )
    assert effective(spec, pd=None) is spec
    with pytest.raises(InvalidSpec):  # neither a key nor an account (CRD bypassed)
        effective(PagerDutyIntegrationSpec.model_validate({"pagerDuty": {}}), pd=None)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"labels": {"team": "search"}}, Reason.ACCOUNT_NOT_ALLOWED),
        ({"labels": {}}, Reason.ACCOUNT_NOT_ALLOWED),
        ({"pd": None}, Reason.ACCOUNT_NOT_FOUND),
        ({"account_namespace": ""}, Reason.ACCOUNTS_DISABLED),
        (
            {"pd": PD_ACCOUNT.model_copy(update={"routing_key": None})},
            Reason.ACCOUNT_NOT_READY,
        ),
    ],
)
def test_refusals_name_their_reason(kwargs: dict[str, Any], reason: Reason) -> None:
    with pytest.raises(AccountRefused) as refused:
        effective(integration(), **kwargs)
    assert refused.value.reason == reason


def test_cleanup_borrows_the_account_even_when_the_namespace_left_the_selector() -> None:
    out = effective(integration(), labels={"team": "search"}, enforce=False)
    assert out.pager_duty.api_token == PD_ACCOUNT.api_token
    with pytest.raises(AccountRefused):  # but an account that is gone lends nothing
        effective(integration(), pd=None, enforce=False)


@pytest.mark.parametrize(
    "relay",
    [
        {"image": "evil.example.com/relay:1"},
        {"imagePullSecrets": [{"name": "admins-pull-secret"}]},
        {"podLabels": {"app": "admin-api"}},
        {"storage": "PostgreSQL", "database": {"uriSecretRef": {"name": "admin-db", "key": "u"}}},
    ],
)
def test_nothing_of_the_tenants_may_make_the_shared_relay_read_other_secrets(
    relay: dict[str, Any],
) -> None:
    spec = PagerDutyIntegrationSpec.model_validate(
        {"pagerDuty": {"accountRef": {"name": "shared"}}, "relay": relay}
    )
    with pytest.raises(InvalidSpec):
        effective(spec)


@pytest.mark.parametrize(
    "pager_duty",
    [
        {"routingKey": {"name": "mine", "key": "k"}},
        {"apiToken": {"name": "mine", "key": "k"}},
        {"apiUrl": "https://collector.evil.example.com"},  # the account's token elsewhere
    ],
)
def test_own_secrets_and_urls_exclude_an_account(pager_duty: dict[str, Any]) -> None:
    with pytest.raises(InvalidSpec):
        effective(integration(**pager_duty))


def test_shared_children_names_never_collide_and_fit_a_dns_label() -> None:
    a = Owner("team", "a-x", "uid-1", home=ADMIN).names
    b = Owner("team-a", "x", "uid-1", home=ADMIN).names
    assert a.relay != b.relay
    recreated = Owner("team", "a-x", "uid-2", home=ADMIN).names
    assert recreated.relay != a.relay
    long = Owner("n" * 63, "x" * 253, "uid-1", home=ADMIN).names
    for name in (long.relay, long.token_secret, long.admin_secret, long.webhook_secret,
                 long.outbox_claim, long.instance_label):  # fmt: skip
        assert len(name) <= 63
        assert name[0].isalnum()
        assert name[-1].isalnum()
    assert long.relay.startswith("n" * 20)  # readable


def test_shared_children_live_in_the_account_namespace_labelled_with_their_tenant() -> None:
    owner = Owner("team-a", "payments", "uid-1", home=ADMIN)
    meta = owner.metadata(owner.names.relay, annotations={"x": "y"})
    assert meta["namespace"] == ADMIN
    assert "ownerReferences" not in meta  # cannot cross namespaces
    assert meta["labels"][n.LABEL_TENANT_NAMESPACE] == "team-a"
    assert meta["labels"][n.LABEL_TENANT_UID] == "uid-1"
    assert meta["annotations"] == {n.ANNOTATION_TENANT_NAME: "payments", "x": "y"}
    assert service_url(owner, integration()) == f"http://{owner.names.relay}.{ADMIN}.svc"

    state = child_state("Deployment", {"metadata": meta})
    assert state is not None
    assert (state.owner_namespace, state.owner, state.owner_uid) == ("team-a", "payments", "uid-1")
    assert owned_by({"metadata": meta}, "uid-1")
    assert not owned_by({"metadata": meta}, "uid-2")
    # a tenant UID label without our managed-by label proves nothing
    labels = {n.LABEL_TENANT_UID: "uid-1"}
    assert not owned_by({"metadata": {"labels": labels}}, "uid-1")


def test_a_plain_integration_keeps_its_children_and_owner_reference() -> None:
    owner = Owner("team-a", "payments", "uid-1")
    meta = owner.metadata(owner.names.relay)
    assert meta["namespace"] == "team-a"
    assert meta["ownerReferences"][0]["uid"] == "uid-1"
    assert n.LABEL_TENANT_UID not in meta["labels"]


def test_an_integration_using_an_account_gets_a_finalizer_and_a_home() -> None:
    raw = {"pagerDuty": {"accountRef": {"name": "shared"}}}
    assert needs_finalizer(raw, {})
    assert accounts.home(raw, ADMIN) == ADMIN
    assert accounts.home(raw, "") is None  # accounts off: refused, nothing placed
    assert accounts.home({"pagerDuty": {}}, ADMIN) is None


def test_users_count_only_integrations_the_account_admits() -> None:
    account = {"namespaceSelector": {"matchLabels": {"team": "payments"}}}
    ref = {"pagerDuty": {"accountRef": {"name": "shared"}}}
    other = {"pagerDuty": {"accountRef": {"name": "other"}}}
    labels = {"a": {"team": "payments"}, "b": {"team": "payments"}, "c": {"team": "search"}}
    count = accounts.users(
        PAGERDUTY_ACCOUNT,
        account,
        "shared",
        [("a", ref), ("b", ref), ("b", other), ("c", ref)],
        labels.get,
    )
    assert count == 2


# -- the deletions no garbage collector makes (against the fake API of fake_kube) ----------


async def _child(kube: FakeKube, kind: str, owner: Owner, name: str) -> None:
    api_version = "apps/v1" if kind == "Deployment" else "v1"
    await kube.create({"apiVersion": api_version, "kind": kind, "metadata": owner.metadata(name)})


async def test_delete_children_and_the_sweep_take_only_what_is_theirs() -> None:
    kube = FakeKube()
    gone = Owner("team-a", "payments", "uid-gone", home=ADMIN)
    live = Owner("team-b", "payments", "uid-live", home=ADMIN)
    for owner in (gone, live):
        await _child(kube, "Deployment", owner, owner.names.relay)
        await _child(kube, "ConfigMap", owner, owner.names.relay)
        await _child(kube, "Secret", owner, owner.names.token_secret)
    # The admin's own objects of the namespace, even labelled as ours, have no tenant UID.
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "pd-account",
                "namespace": ADMIN,
                "labels": {n.LABEL_MANAGED_BY: n.MANAGED_BY},
            },
        }
    )
    assert await shared.sweep(kube, ADMIN, {"uid-live"}) == 3
    assert kube.find("Secret", ADMIN, "pd-account") is not None
    assert kube.find("Deployment", ADMIN, gone.names.relay) is None
    assert kube.find("Deployment", ADMIN, live.names.relay) is not None

    assert await shared.delete_children(kube, live) == 3
    assert [obj["metadata"]["name"] for obj in kube.all("Secret", ADMIN)] == ["pd-account"]
    # An integration of its own namespace has nothing there to delete.
    assert await shared.delete_children(kube, Owner("team-c", "x", "uid-c")) == 0


# -- one reconcile, end to end against the fake API -----------------------------------------


def _cluster_scoped(kube: FakeKube, manifest: dict[str, Any]) -> None:
    kube.put(manifest, None)  # type: ignore[arg-type]  # cluster-scoped: no namespace


async def test_a_reconcile_places_the_relay_in_the_account_namespace_and_copies_the_token() -> None:
    kube = FakeKube()
    reconciler = Reconciler(
        kube,
        OperatorSettings(egress=loopback_egress_policy(), account_namespace=ADMIN),
        FakeWorld(kube),
    )
    _cluster_scoped(
        kube,
        {"kind": "Namespace", "metadata": {"name": NS, "labels": {"team": "payments"}}},
    )
    _cluster_scoped(
        kube,
        {
            "apiVersion": "pagerbridge.io/v1alpha1",
            "kind": "ClusterPagerDutyAccount",
            "metadata": {"name": "shared"},
            "spec": PD_ACCOUNT.to_json_dict(),
        },
    )
    kube.put(secret("pd", **{"routing-key": ROUTING_KEY, "api-token": "t"}), ADMIN)
    body = integration_object(pagerDuty={"accountRef": {"name": "shared"}}, sync={"notes": False})
    kube.put(body, NS)
    await reconciler.reconcile_integration(NS, "pay")

    uid = kube.find("PagerDutyIntegration", NS, "pay")["metadata"]["uid"]  # type: ignore[index]
    owner = Owner(NS, "pay", uid, home=ADMIN)
    deployment = kube.find("Deployment", ADMIN, owner.names.relay)
    assert deployment is not None
    assert kube.find("Deployment", NS, "pay-relay") is None
    volumes = {v["secret"]["secretName"] for v in deployment["spec"]["template"]["spec"]["volumes"]
               if "secret" in v}  # fmt: skip
    assert volumes == {"pd", owner.names.token_secret, owner.names.admin_secret}
    copy_ = kube.find("Secret", NS, "pay-relay-token")
    source = kube.find("Secret", ADMIN, owner.names.token_secret)
    assert copy_ is not None
    assert source is not None
    assert copy_["data"] == source["data"]
    assert copy_["metadata"]["ownerReferences"][0]["uid"] == uid
    assert kube.find("Secret", NS, "pd") is None  # the account's Secret is never copied

    # The namespace relabelled out of the selector: refused, and the relay stopped.
    kube.find("Namespace", None, NS)["metadata"]["labels"] = {}  # type: ignore[arg-type,index]
    await reconciler.reconcile_integration(NS, "pay")
    body = kube.find("PagerDutyIntegration", NS, "pay")
    assert condition(body)["reason"] == "AccountNotAllowed"
    assert kube.find("Deployment", ADMIN, owner.names.relay) is None
    assert kube.find("ConfigMap", ADMIN, owner.names.relay) is not None  # kept for its return
