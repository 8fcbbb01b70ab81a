"""The egress policy (pure): which URLs and addresses a tenant's CR may make us call."""

from __future__ import annotations

import ipaddress

import pytest

from pagerbridge.api import PagerDutyIntegrationSpec
from pagerbridge.clients.egress import DEFAULT_ALLOWED_HOSTS, EgressPolicy
from pagerbridge.clients.errors import EgressRefused as URLNotAllowed
from pagerbridge.clients.errors import EgressRefused as URLNotAllowedCondition
from pagerbridge.controller.policy import spec_urls as egress
from pagerbridge.controller.settings import OperatorSettings

DEFAULT = EgressPolicy()


def test_defaults_are_pagerduty_and_bigpanda_over_https() -> None:
    assert set(DEFAULT_ALLOWED_HOSTS) == {
        "api.pagerduty.com",
        "api.eu.pagerduty.com",
        "events.pagerduty.com",
        "events.eu.pagerduty.com",
        "api.bigpanda.io",
    }
    for host in DEFAULT_ALLOWED_HOSTS:
        DEFAULT.check_url(f"https://{host}")
        DEFAULT.check_url(f"https://{host}:443/")
    with pytest.raises(URLNotAllowed, match="only https"):
        DEFAULT.check_url("http://api.pagerduty.com")
    with pytest.raises(URLNotAllowed, match="allowlist"):
        DEFAULT.check_url("https://api.pagerduty.com.evil.example")


@pytest.mark.parametrize(
    "url",
    [
        # The reproduction of issue 18: a trailing "?" turns our path into a query string.
        "http://127.0.0.1:18999/latest/meta-data/iam/security-credentials/node-role?x=",
        "https://api.pagerduty.com/?x=",
        "https://api.pagerduty.com?",
        "https://api.pagerduty.com#frag",
        "https://user:pw@api.pagerduty.com",
        "https://api.pagerduty.com@169.254.169.254",
        "https://169.254.169.254",
        "https://api.pagerduty.com.evil.example",
        "ftp://api.pagerduty.com",
        "file:///etc/passwd",
    ],
)
def test_refused_urls(url: str) -> None:
    policy = EgressPolicy.parse([*DEFAULT_ALLOWED_HOSTS, "127.0.0.1:18999"], allow_http=True)
    with pytest.raises(URLNotAllowed):
        policy.check_url(url)


def test_port_rules_and_case() -> None:
    policy = EgressPolicy.parse(["127.0.0.1:8080", "Sim.Example"], allow_http=True)
    policy.check_url("http://127.0.0.1:8080/base")
    policy.check_url("http://sim.example:9999")
    with pytest.raises(URLNotAllowed):
        policy.check_url("http://127.0.0.1:8081")


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
     "::1", "fe80::1", "fd00::1", "::ffff:127.0.0.1", "0.0.0.0", "224.0.0.1"],
)  # fmt: skip
def test_non_public_addresses_refused_unless_allowed(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert not DEFAULT.address_allowed(ip)
    assert EgressPolicy.parse([], ["0.0.0.0/0", "::/0"]).address_allowed(ip)


def test_public_address_and_allowlisted_literal() -> None:
    assert DEFAULT.address_allowed(ipaddress.ip_address("8.8.8.8"))
    literal = EgressPolicy.parse(["127.0.0.1:1234"])
    assert literal.address_allowed(ipaddress.ip_address("127.0.0.1"))
    assert not literal.address_allowed(ipaddress.ip_address("127.0.0.2"))


def test_bad_allowlist_entries_fail_at_start() -> None:
    for entry in ("https://x", "a@b", "host:notaport"):
        with pytest.raises(ValueError, match="egress allowlist entry"):
            EgressPolicy.parse([entry])


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert OperatorSettings.from_env().egress == DEFAULT
    monkeypatch.setenv("PAGERBRIDGE_EGRESS_ALLOWED_HOSTS", "pd-proxy.internal:8443, 127.0.0.1")
    monkeypatch.setenv("PAGERBRIDGE_EGRESS_ALLOWED_NETWORKS", "10.0.0.0/8")
    monkeypatch.setenv("PAGERBRIDGE_EGRESS_ALLOW_HTTP", "true")
    policy = OperatorSettings.from_env().egress
    policy.check_url("http://pd-proxy.internal:8443")
    assert policy.address_allowed(ipaddress.ip_address("10.9.9.9"))
    with pytest.raises(URLNotAllowed):
        policy.check_url("https://api.pagerduty.com")  # the admin replaced the defaults


def _spec(**pager_duty: str) -> PagerDutyIntegrationSpec:
    return PagerDutyIntegrationSpec.model_validate(
        {"pagerDuty": {"routingKey": {"name": "s", "key": "k"}, **pager_duty}}
    )


def test_every_effective_spec_url_is_checked() -> None:
    egress.check_spec(_spec(), DEFAULT)
    egress.check_spec(_spec(region="eu"), DEFAULT)
    for field in ("apiUrl", "eventsUrl"):
        with pytest.raises(URLNotAllowedCondition) as refused:
            egress.check_spec(_spec(**{field: "https://metadata.internal"}), DEFAULT)
        assert refused.value.reason == "URLNotAllowed"
        assert f"spec.pagerDuty.{field}" in refused.value.message
    bigpanda = PagerDutyIntegrationSpec.model_validate(
        {
            "pagerDuty": {"routingKey": {"name": "s", "key": "k"}},
            "bigPanda": {"apiUrl": "https://10.0.0.1"},
        }
    )
    with pytest.raises(URLNotAllowedCondition, match=r"spec\.bigPanda\.apiUrl"):
        egress.check_spec(bigpanda, DEFAULT)


@pytest.mark.parametrize(
    "url", ["https://a.example/?x=", "https://a.example#f", "https://u@a.example", "https://a?"]
)
def test_models_refuse_non_base_urls(url: str) -> None:
    with pytest.raises(ValueError, match="base URL"):
        _spec(apiUrl=url)
