"""``pagerbridge doctor``'s checks: pure functions from objects to findings."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from pagerbridge.api import INTEGRATION
from pagerbridge.api.crdgen import crd
from pagerbridge.controller.names import TOKEN_KEY, ChildNames
from pagerbridge.ops.diagnosis import (
    Finding,
    Level,
    SecretPresence,
    check_crd,
    check_integration,
    check_operator,
    exit_code,
    format_text,
)

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def levels(findings: list[Finding]) -> list[Level]:
    return [f.level for f in findings]


def test_crd_missing_stale_and_current() -> None:
    assert check_crd(INTEGRATION, None).level is Level.FAIL
    current = crd(INTEGRATION)
    assert check_crd(INTEGRATION, current).level is Level.OK
    stale = copy.deepcopy(current)
    spec_schema = stale["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    del spec_schema["properties"]["relay"]["properties"]["expose"]  # an older version's CRD
    finding = check_crd(INTEGRATION, stale)
    assert finding.level is Level.FAIL
    assert "kubectl apply --server-side -f crds/" in finding.fix


def lease(renewed: datetime, holder: str = "pod-a/1") -> dict[str, Any]:
    return {
        "metadata": {"namespace": "pb", "name": "pagerbridge"},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 15,
            "renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        },
    }


def test_operator_live_expired_or_absent() -> None:
    live = check_operator([lease(NOW - timedelta(seconds=3))], [], NOW)
    assert levels(live) == [Level.OK]
    expired = check_operator([lease(NOW - timedelta(minutes=5))], [], NOW)
    assert Level.FAIL in levels(expired)
    released = check_operator([lease(NOW, holder="")], [], NOW)
    assert Level.FAIL in levels(released)
    assert "no Lease found" in check_operator([], [], NOW)[-1].message


def integration(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "team-a", "name": "pay", "generation": 2},
        "spec": {
            "pagerDuty": {
                "routingKey": {"name": "pd", "key": "routing-key"},
                "apiToken": {"name": "pd", "key": "api-token"},
            },
            "relay": {"publicUrl": "https://relay.example.com"},
        },
        "status": status,
    }


READY = {"type": "Ready", "status": "True", "reason": "Ready", "message": "ok"}
TOKEN = {ChildNames("pay").token_secret: SecretPresence(frozenset({TOKEN_KEY}))}


def test_healthy_integration_has_only_the_unknowable_warning() -> None:
    secrets = {"pd": SecretPresence(frozenset({"routing-key", "api-token"})), **TOKEN}
    findings = check_integration(integration(observedGeneration=2, conditions=[READY]), secrets)
    assert exit_code(findings) == 0
    (warning,) = [f for f in findings if f.level is Level.WARN]
    assert "cannot tell whether BigPanda and PagerDuty reach https://relay.example.com" in (
        warning.message
    )
    assert "curl" in warning.fix


def test_missing_secret_key_and_not_ready_are_problems() -> None:
    not_ready = {
        "type": "Ready",
        "status": "False",
        "reason": "SecretNotFound",
        "message": "Secret pd has no key api-token",
    }
    secrets = {"pd": SecretPresence(frozenset({"routing-key"})), **TOKEN}
    findings = check_integration(integration(observedGeneration=2, conditions=[not_ready]), secrets)
    assert exit_code(findings) == 1
    text = format_text(findings)
    assert "spec.pagerDuty.apiToken: Secret pd has no key api-token (it has: routing-key)" in text
    assert "not Ready (False, SecretNotFound)" in text
    assert "kubectl describe pdi -n team-a pay" in text
    missing = check_integration(integration(conditions=[READY], observedGeneration=2), TOKEN)
    assert "spec.pagerDuty.routingKey: Secret pd not found" in format_text(missing)


def test_never_reconciled_stale_generation_and_no_public_url() -> None:
    secrets = {"pd": SecretPresence(frozenset({"routing-key", "api-token"})), **TOKEN}
    body = integration()
    assert "never reconciled" in format_text(check_integration(body, secrets))
    behind = check_integration(integration(observedGeneration=1, conditions=[READY]), secrets)
    assert "the spec is at 2" in format_text(behind)
    internal = integration(observedGeneration=2, conditions=[READY])
    del internal["spec"]["relay"]
    text = format_text(check_integration(internal, secrets))
    assert "no public URL" in text
    assert "spec.relay.expose" in text
