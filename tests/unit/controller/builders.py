"""Builders the controller unit tests share: an owner, render settings, the referenced
Secrets as the operator sees them, integration specs and their compiled RelayConfig.

A support module, not a test module: test modules import from here, never from each
other. Each builder keeps the smallest valid integration (routing key in Secret ``pd``,
notes off) so a test names only what it is about.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pagerbridge.api import PagerDutyIntegrationSpec
from pagerbridge.controller.render.children import Owner, RenderSettings
from pagerbridge.controller.render.compile import (
    Compiled,
    MappingInput,
    OverrideInput,
    compile_relay_config,
)
from pagerbridge.controller.state.observed import SecretInfo

OWNER = Owner("team-a", "payments", "uid-1")
SETTINGS = RenderSettings(image="example/pagerbridge:1")


def routing_key_secret(*other_keys: str) -> SecretInfo:
    """Secret ``pd``: a ``routing-key`` shaped like one, plus ``other_keys``."""
    return SecretInfo(
        keys=frozenset({"routing-key", *other_keys}), routing_key_shaped=frozenset({"routing-key"})
    )


# Secret pd (routing key and PagerDuty REST token) and bp (BigPanda token).
SECRETS = {"pd": routing_key_secret("api-token"), "bp": SecretInfo(keys=frozenset({"api-token"}))}


def spec(**sections: Any) -> PagerDutyIntegrationSpec:
    """The smallest integration, with top-level ``sections`` (``relay=``, ``bigPanda=``...)."""
    body: dict[str, Any] = {
        "pagerDuty": {"routingKey": {"name": "pd", "key": "routing-key"}},
        "sync": {"notes": False},
    }
    body.update(sections)
    return PagerDutyIntegrationSpec.model_validate(body)


def relay_spec(**relay: Any) -> PagerDutyIntegrationSpec:
    """The smallest integration with ``spec.relay`` fields as given."""
    return spec(relay=relay)


def compiled_for(
    s: PagerDutyIntegrationSpec,
    overrides: Sequence[OverrideInput] = (),
    mappings: Sequence[MappingInput] = (),
    webhook_secret: bool = False,
) -> Compiled:
    """``s`` compiled for :data:`OWNER` against :data:`SECRETS`."""
    return compile_relay_config(
        OWNER.namespace,
        OWNER.name,
        s,
        list(overrides),
        list(mappings),
        SECRETS,
        webhook_secret=webhook_secret,
    )
