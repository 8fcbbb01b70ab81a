"""spec.relay.expose: the admin's bounds (tenants are untrusted), the rendered Ingress and
HTTPRoute (only the two webhook paths), and the public URL they give the relay."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from pagerbridge.api.contract import BIGPANDA_WEBHOOK_PATH, PAGERDUTY_WEBHOOK_PATH
from pagerbridge.api.expose import RelayExpose
from pagerbridge.controller.policy.expose import (
    ClusterIssuerNotAllowed,
    ExposePolicy,
    GatewayNotAllowed,
    HostNotAllowed,
    IngressClassNotAllowed,
    ParentRef,
)
from pagerbridge.controller.render.children import Owner, relay_base_url
from pagerbridge.controller.render.exposure import render_exposure

from .builders import relay_spec as spec

OWNER = Owner("team-a", "pay", "uid-1")
POLICY = ExposePolicy.parse(
    ingress_class_names=["public", "internal"],
    gateway_parent_refs=["gateways/public", "gateways/other"],
    host_suffixes=["hooks.example.com", "{namespace}.tenants.example.com"],
    cluster_issuers=["letsencrypt"],
)


def expose(**fields: Any) -> RelayExpose:
    return RelayExpose.model_validate(fields)


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("hooks.example.com", True),
        ("pay.hooks.example.com", True),
        ("evilhooks.example.com", False),  # a suffix matches at a label boundary only
        ("hooks.example.com.evil.io", False),
        ("pay.team-a.tenants.example.com", True),  # {namespace}: the integration's own
        ("pay.team-b.tenants.example.com", False),  # another tenant's names
    ],
)
def test_host_suffixes(host: str, allowed: bool) -> None:
    assert POLICY.host_allowed(host, "team-a") is allowed


def test_everything_is_refused_by_default() -> None:
    policy = ExposePolicy()
    with pytest.raises(HostNotAllowed, match="allowed: none"):
        policy.decide(expose(ingress={"host": "a.example.com"}), "team-a")
    open_hosts = ExposePolicy.parse(host_suffixes=["example.com"])
    with pytest.raises(IngressClassNotAllowed, match=r"relayPolicy\.expose\.ingressClassNames"):
        open_hosts.decide(expose(ingress={"host": "a.example.com"}), "team-a")
    with pytest.raises(GatewayNotAllowed, match=r"relayPolicy\.expose\.gatewayParentRefs"):
        open_hosts.decide(expose(httpRoute={"host": "a.example.com"}), "team-a")


def test_refusals_name_their_reason() -> None:
    cases = [
        (expose(ingress={"host": "a.evil.io"}), HostNotAllowed, "HostNotAllowed"),
        (
            expose(ingress={"host": "a.hooks.example.com", "className": "nginx-admin"}),
            IngressClassNotAllowed,
            "IngressClassNotAllowed",
        ),
        (
            expose(
                ingress={
                    "host": "a.hooks.example.com",
                    "tls": {"secretName": "t", "issuer": {"name": "ca", "kind": "ClusterIssuer"}},
                }
            ),
            ClusterIssuerNotAllowed,
            "ClusterIssuerNotAllowed",
        ),
        (
            expose(httpRoute={"host": "a.hooks.example.com", "parentRefs": [{"name": "public"}]}),
            GatewayNotAllowed,  # namespace defaults to the integration's: team-a/public
            "GatewayNotAllowed",
        ),
    ]
    for item, error, reason in cases:
        with pytest.raises(error) as caught:
            POLICY.decide(item, "team-a")
        assert caught.value.reason == reason


def test_defaults_come_from_the_admin() -> None:
    ingress = POLICY.decide(expose(ingress={"host": "a.hooks.example.com"}), "team-a")
    assert ingress.class_name == "public"
    route = POLICY.decide(expose(httpRoute={"host": "a.hooks.example.com"}), "team-a")
    assert route.parent_refs == (ParentRef("gateways", "public"),)


def test_ingress_routes_only_the_webhook_paths_to_the_service_port() -> None:
    exposure = POLICY.decide(
        expose(
            ingress={
                "host": "pay.hooks.example.com",
                "className": "internal",
                "tls": {
                    "secretName": "pay-tls",
                    "issuer": {"name": "letsencrypt", "kind": "ClusterIssuer"},
                },
            }
        ),
        "team-a",
    )
    ingress = render_exposure(OWNER, 8080, exposure)
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    assert ingress["metadata"]["name"] == "pay-relay"
    assert ingress["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    assert ingress["spec"]["ingressClassName"] == "internal"
    assert ingress["spec"]["tls"] == [{"hosts": ["pay.hooks.example.com"], "secretName": "pay-tls"}]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "pay.hooks.example.com"
    paths = rule["http"]["paths"]
    assert [(p["path"], p["pathType"]) for p in paths] == [
        (BIGPANDA_WEBHOOK_PATH, "Exact"),
        (PAGERDUTY_WEBHOOK_PATH, "Exact"),
    ]
    for path in paths:
        assert path["backend"] == {"service": {"name": "pay-relay", "port": {"number": 8080}}}


def test_namespaced_issuer_is_always_allowed() -> None:
    exposure = POLICY.decide(
        expose(
            ingress={
                "host": "a.hooks.example.com",
                "tls": {"secretName": "t", "issuer": {"name": "own"}},
            }
        ),
        "team-a",
    )
    annotations = render_exposure(OWNER, 80, exposure)["metadata"]["annotations"]
    assert annotations == {"cert-manager.io/issuer": "own"}


def test_http_route_routes_only_the_webhook_paths() -> None:
    exposure = POLICY.decide(
        expose(
            httpRoute={
                "host": "pay.hooks.example.com",
                "parentRefs": [{"name": "other", "namespace": "gateways", "sectionName": "https"}],
            }
        ),
        "team-a",
    )
    route = render_exposure(OWNER, 80, exposure)
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["kind"] == "HTTPRoute"
    assert route["spec"]["hostnames"] == ["pay.hooks.example.com"]
    assert route["spec"]["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "namespace": "gateways",
            "name": "other",
            "sectionName": "https",
        }
    ]
    (rule,) = route["spec"]["rules"]
    assert rule["matches"] == [
        {"path": {"type": "Exact", "value": BIGPANDA_WEBHOOK_PATH}},
        {"path": {"type": "Exact", "value": PAGERDUTY_WEBHOOK_PATH}},
    ]
    assert rule["backendRefs"] == [
        {"group": "", "kind": "Service", "name": "pay-relay", "port": 80}
    ]


@pytest.mark.parametrize(
    ("relay", "url"),
    [
        ({"expose": {"ingress": {"host": "a.example.com"}}}, "http://a.example.com"),
        (
            {"expose": {"ingress": {"host": "a.example.com", "tls": {"secretName": "t"}}}},
            "https://a.example.com",
        ),
        ({"expose": {"httpRoute": {"host": "a.example.com"}}}, "https://a.example.com"),
        (
            {"expose": {"httpRoute": {"host": "a.example.com", "scheme": "http"}}},
            "http://a.example.com",
        ),
        (
            {
                "publicUrl": "https://lb.example.com/x",
                "expose": {"ingress": {"host": "a.example.com"}},
            },
            "https://lb.example.com/x",  # an explicit publicUrl wins
        ),
        ({}, "http://pay-relay.team-a.svc"),
    ],
)
def test_public_url_comes_from_the_expose(relay: dict[str, Any], url: str) -> None:
    assert relay_base_url(OWNER, spec(**relay)) == url


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"ingress": {"host": "a.example.com"}, "httpRoute": {"host": "a.example.com"}},
        {"ingress": {"host": "*.example.com"}},
        {"ingress": {"host": "localhost"}},
        {"ingress": {"host": "a.example.com:8443"}},
    ],
)
def test_malformed_expose_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RelayExpose.model_validate(bad)


def test_policy_parse_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="NAMESPACE/NAME"):
        ExposePolicy.parse(gateway_parent_refs=["public"])
    with pytest.raises(ValueError, match="every host"):
        ExposePolicy.parse(host_suffixes=["."])
