"""Operator configuration, read once from the environment (``PAGERBRIDGE_*``)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from pagerbridge import DEFAULT_IMAGE


@dataclass(frozen=True)
class OperatorSettings:
    relay_image: str = DEFAULT_IMAGE
    image_pull_policy: str = "IfNotPresent"
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
