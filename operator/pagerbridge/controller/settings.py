"""Operator configuration, read once from the environment (``PAGERBRIDGE_*``).

``PAGERBRIDGE_RELAY_DEFAULTS`` holds the operator-wide relay pod settings as JSON (the Helm
chart writes its ``relay`` values there); ``spec.relay`` of each integration overrides
them (:mod:`pagerbridge.api.relay_pod`). A malformed value stops the operator at start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from pydantic import ValidationError

from pagerbridge import DEFAULT_IMAGE
from pagerbridge.api import RelayPodSettings

RELAY_DEFAULTS_ENV = "PAGERBRIDGE_RELAY_DEFAULTS"


class SettingsError(ValueError):
    """The operator's environment is malformed; the message names the variable."""


def relay_pod_defaults(text: str | None) -> RelayPodSettings:
    if not text:
        return RelayPodSettings()
    try:
        return RelayPodSettings.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
        raise SettingsError(f"{RELAY_DEFAULTS_ENV}: {problems}") from None


@dataclass(frozen=True)
class OperatorSettings:
    relay_image: str = DEFAULT_IMAGE
    image_pull_policy: str = "IfNotPresent"
    relay_pod_defaults: RelayPodSettings = field(default_factory=RelayPodSettings)
    workers: int = 64  # concurrent reconciles
    resync_seconds: float = 300.0  # periodic re-check of children and subscription
    subscription_verify_seconds: float = 300.0
    token_rotation_grace_seconds: float = 120.0
    watch_server_timeout: int = 300
    watch_client_timeout: int = 330

    @classmethod
    def from_env(cls) -> OperatorSettings:
        env = os.environ
        return cls(
            relay_image=env.get("PAGERBRIDGE_RELAY_IMAGE", DEFAULT_IMAGE),
            image_pull_policy=env.get("PAGERBRIDGE_IMAGE_PULL_POLICY", "IfNotPresent"),
            relay_pod_defaults=relay_pod_defaults(env.get(RELAY_DEFAULTS_ENV)),
            workers=int(env.get("PAGERBRIDGE_WORKERS", "64")),
            resync_seconds=float(env.get("PAGERBRIDGE_RESYNC_SECONDS", "300")),
            subscription_verify_seconds=float(
                env.get("PAGERBRIDGE_SUBSCRIPTION_VERIFY_SECONDS", "300")
            ),
            token_rotation_grace_seconds=float(
                env.get("PAGERBRIDGE_TOKEN_ROTATION_GRACE_SECONDS", "120")
            ),
            watch_server_timeout=int(env.get("PAGERBRIDGE_WATCH_SERVER_TIMEOUT", "300")),
            watch_client_timeout=int(env.get("PAGERBRIDGE_WATCH_CLIENT_TIMEOUT", "330")),
        )
