"""The Argo CD health check in docs/gitops.md, run by a real Lua interpreter.

Argo CD evaluates health scripts with gopher-lua (Lua 5.1), so the snippet runs here under
lupa's Lua 5.1 runtime, with ``obj`` bound the way Argo CD binds it. The script is taken
from the argocd-cm ConfigMap exactly as the docs show it, so what users copy is what is
tested.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51

DOC = Path(__file__).resolve().parents[2] / "docs" / "gitops.md"
KINDS = ("PagerDutyIntegration", "PagerDutyKeyOverride", "PagerDutyTagMapping")


def _config_map() -> dict[str, Any]:
    text = DOC.read_text()
    match = re.search(r"<!-- argocd-health:.*?-->\s*```yaml\n(.*?)```", text, re.DOTALL)
    assert match, "the argocd-cm block is missing from docs/gitops.md"
    config_map: dict[str, Any] = yaml.safe_load(match.group(1))
    return config_map


CONFIG_MAP = _config_map()


def _script(kind: str = "PagerDutyIntegration") -> str:
    script: str = CONFIG_MAP["data"][f"resource.customizations.health.pagerbridge.io_{kind}"]
    return script


def health(obj: dict[str, Any], kind: str = "PagerDutyIntegration") -> dict[str, str]:
    """Run the snippet as Argo CD does: a fresh state, ``obj`` global, a returned table."""
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(_script(kind))
    assert result is not None, "the script returned nothing"
    out = dict(result.items())
    assert set(out) <= {"status", "message"}
    assert out["status"] in {"Healthy", "Progressing", "Degraded", "Suspended", "Missing"}
    return {str(k): str(v) for k, v in out.items()}


def integration(
    generation: int = 2,
    observed: int | None = 2,
    ready: dict[str, Any] | None = None,
    with_status: bool = True,
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "pagerbridge.io/v1alpha1",
        "kind": "PagerDutyIntegration",
        "metadata": {"name": "payments", "namespace": "team-a", "generation": generation},
        "spec": {"pagerDuty": {"routingKey": {"name": "pd", "key": "routing-key"}}},
    }
    if with_status:
        status: dict[str, Any] = {"conditions": []}
        if observed is not None:
            status["observedGeneration"] = observed
        if ready is not None:
            status["conditions"] = [
                {"type": "SecretsResolved", "status": "True", "reason": "Found", "message": ""},
                {"type": "Ready", "lastTransitionTime": "2026-11-26T09:00:00Z", **ready},
            ]
        obj["status"] = status
    return obj


def test_ready_true_is_healthy() -> None:
    result = health(
        integration(
            ready={
                "status": "True",
                "reason": "Ready",
                "message": "relay running and configured",
                "observedGeneration": 2,
            }
        )
    )
    assert result == {"status": "Healthy", "message": "Ready: relay running and configured"}


def test_ready_false_is_degraded_with_the_message() -> None:
    result = health(
        integration(
            ready={
                "status": "False",
                "reason": "SecretNotFound",
                "message": "Secret team-a/pd (for spec.pagerDuty.routingKey) not found",
                "observedGeneration": 2,
            }
        )
    )
    assert result["status"] == "Degraded"
    assert result["message"] == (
        "SecretNotFound: Secret team-a/pd (for spec.pagerDuty.routingKey) not found"
    )


def test_ready_false_without_message_shows_the_reason() -> None:
    result = health(integration(ready={"status": "False", "reason": "InvalidKey"}))
    assert result == {"status": "Degraded", "message": "InvalidKey"}


def test_ready_unknown_is_progressing() -> None:
    result = health(
        integration(ready={"status": "Unknown", "reason": "Reconciling", "message": "starting"})
    )
    assert result == {"status": "Progressing", "message": "Reconciling: starting"}


def _with_reconciling(obj: dict[str, Any], status: str, reason: str) -> dict[str, Any]:
    obj["status"]["conditions"].append(
        {"type": "Reconciling", "status": status, "reason": reason, "message": ""}
    )
    return obj


def test_relay_starting_is_progressing_not_degraded() -> None:
    """What the operator writes while a new relay rolls out (Ready Unknown + Reconciling)."""
    starting = {
        "status": "Unknown",
        "reason": "RelayStarting",
        "message": "Deployment payments-relay is rolling out",
        "observedGeneration": 2,
    }
    result = health(_with_reconciling(integration(ready=starting), "True", "RelayStarting"))
    assert result == {
        "status": "Progressing",
        "message": "RelayStarting: Deployment payments-relay is rolling out",
    }


def test_reconciling_wins_over_ready_false() -> None:
    """kstatus: Reconciling=True means in progress, whatever Ready says meanwhile."""
    obj = integration(ready={"status": "False", "reason": "RelayStarting", "message": "0/1"})
    assert health(_with_reconciling(obj, "True", "RelayStarting"))["status"] == "Progressing"


@pytest.mark.parametrize(
    "reason", ["SecretNotFound", "InvalidKey", "RelayUnavailable", "SubscriptionFailed"]
)
def test_real_failures_stay_degraded_when_not_reconciling(reason: str) -> None:
    obj = integration(ready={"status": "False", "reason": reason, "message": "broken"})
    result = health(_with_reconciling(obj, "False", reason))
    assert result == {"status": "Degraded", "message": f"{reason}: broken"}


def test_ready_true_with_stale_reconciling_false_is_healthy() -> None:
    obj = integration(ready={"status": "True", "reason": "Ready", "message": "ok"})
    assert health(_with_reconciling(obj, "False", "Ready"))["status"] == "Healthy"


@pytest.mark.parametrize(
    "obj",
    [
        integration(with_status=False),
        integration(observed=None, ready={"status": "True", "reason": "Ready", "message": ""}),
        integration(generation=3, observed=2, ready={"status": "True", "reason": "Ready"}),
        integration(
            generation=3,
            observed=2,
            ready={"status": "False", "reason": "SecretNotFound", "message": "old news"},
        ),
        integration(
            generation=3,
            observed=3,
            ready={"status": "True", "reason": "Ready", "observedGeneration": 2},
        ),
        integration(ready=None),
    ],
    ids=[
        "no-status",
        "no-observed-generation",
        "old-generation-ready",
        "old-generation-failed",
        "condition-of-old-generation",
        "no-ready-condition",
    ],
)
def test_missing_or_old_generation_is_progressing(obj: dict[str, Any]) -> None:
    result = health(obj)
    assert result["status"] == "Progressing"
    assert result["message"].startswith("Waiting for")


def test_a_paused_integration_is_suspended_whatever_its_generation() -> None:
    """Paused (issue 29): spec changes wait, so the generation lag is expected."""
    obj = integration(generation=3, observed=2, ready={"status": "True", "reason": "Ready"})
    obj["status"]["conditions"].append(
        {
            "type": "Paused",
            "status": "True",
            "reason": "ReconcilePaused",
            "lastTransitionTime": "2026-12-08T02:00:00Z",
        }
    )
    assert health(obj) == {
        "status": "Suspended",
        "message": "Paused since 2026-12-08T02:00:00Z (annotation pagerbridge.io/paused)",
    }


def test_old_generation_message_names_the_generation() -> None:
    result = health(integration(generation=7, observed=6, ready={"status": "True"}))
    assert result["message"] == "Waiting for the operator to observe generation 7"


def test_the_three_kinds_share_the_script() -> None:
    scripts = {_script(kind) for kind in KINDS}
    assert len(scripts) == 1
    assert CONFIG_MAP["metadata"] == {
        "name": "argocd-cm",
        "namespace": "argocd",
        "labels": {"app.kubernetes.io/part-of": "argocd"},
    }
    mapping = integration(ready={"status": "False", "reason": "IntegrationNotFound"})
    mapping["kind"] = "PagerDutyTagMapping"
    assert health(mapping, "PagerDutyTagMapping") == {
        "status": "Degraded",
        "message": "IntegrationNotFound",
    }


def _ref(kind: str, ready: dict[str, Any], reconciling: str) -> dict[str, Any]:
    obj = integration(ready=ready)
    obj["kind"] = kind
    obj["status"]["conditions"].append(
        {"type": "Reconciling", "status": reconciling, "reason": "x", "message": ""}
    )
    return obj


@pytest.mark.parametrize("kind", ["PagerDutyKeyOverride", "PagerDutyTagMapping"])
def test_override_or_mapping_of_a_failing_integration_is_degraded_and_names_it(
    kind: str,
) -> None:
    message = (
        "PagerDutyIntegration team-a/payments is not Ready: SecretsResolved=False "
        "(SecretNotFound: Secret team-a/pd not found)"
    )
    failing = _ref(
        kind, {"status": "False", "reason": "IntegrationNotReady", "message": message}, "False"
    )
    assert health(failing, kind) == {
        "status": "Degraded",
        "message": f"IntegrationNotReady: {message}",
    }
    # The integration's relay rolling out: the override waits (Progressing), not failed.
    starting = _ref(
        kind, {"status": "Unknown", "reason": "IntegrationNotReady", "message": "m"}, "True"
    )
    assert health(starting, kind)["status"] == "Progressing"
