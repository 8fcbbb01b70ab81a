"""The admin's relay policy (pure): which images and Service types a CR may ask for."""

from __future__ import annotations

import pytest

from pagerbridge.controller.policy.relay import (
    ImageNotAllowed,
    RelayPolicy,
    ServiceTypeNotAllowed,
)
from pagerbridge.controller.settings import OperatorSettings

from .builders import relay_spec as spec

OWN = "ghcr.io/pagerbridge/pagerbridge:0.1.0"


def test_default_allows_only_the_operators_image_and_clusterip() -> None:
    policy = RelayPolicy()
    policy.check_spec(spec(), OWN)
    policy.check_spec(spec(image=OWN), OWN)
    with pytest.raises(ImageNotAllowed) as refused:
        policy.check_spec(spec(image="docker.io/attacker/steal-secrets:1"), OWN)
    assert refused.value.reason == "ImageNotAllowed"
    for kind in ("NodePort", "LoadBalancer"):
        with pytest.raises(ServiceTypeNotAllowed):
            policy.check_spec(spec(service={"type": kind}), OWN)


@pytest.mark.parametrize(
    ("image", "allowed"),
    [
        ("registry.example.com/team/relay:2", True),
        ("registry.example.com/team/relay@sha256:" + "0" * 64, True),
        ("registry.example.com/teamx/relay:2", False),
        ("registry.example.com.evil.io/team/relay:2", False),
        ("mirror.internal:5000/relay:1", True),
        ("mirror.internal:50001/relay:1", False),
    ],
)
def test_prefixes_match_at_path_boundaries(image: str, allowed: bool) -> None:
    policy = RelayPolicy.parse(["registry.example.com/team/", "mirror.internal:5000"], [])
    assert policy.image_allowed(image, OWN) is allowed


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert OperatorSettings.from_env().relay_policy == RelayPolicy()
    monkeypatch.setenv("PAGERBRIDGE_RELAY_IMAGE_PREFIXES", "registry.example.com/")
    monkeypatch.setenv("PAGERBRIDGE_RELAY_SERVICE_TYPES", "ClusterIP,LoadBalancer")
    policy = OperatorSettings.from_env().relay_policy
    policy.check_spec(spec(image="registry.example.com/r:1", service={"type": "LoadBalancer"}), OWN)
    monkeypatch.setenv("PAGERBRIDGE_RELAY_SERVICE_TYPES", "Ingress")
    with pytest.raises(ValueError, match="not Service types"):
        OperatorSettings.from_env()
