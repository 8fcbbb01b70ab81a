"""The relay's live settings: the RelayConfig plus the secret values its files hold.

Loaded as one immutable :class:`Settings` snapshot; a reload builds a new snapshot and swaps
it in whole, so a request sees either the old or the new settings, never a mix. Secret
values live only here (and in the redactor), never in the RelayConfig.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from pagerbridge.api.relay_config import RelayConfig


class SettingsError(Exception):
    """The config or one of its secret files cannot be used (message names files, not values)."""


@dataclass(frozen=True)
class Secrets:
    routing_key: str
    pagerduty_api_token: str | None
    bigpanda_api_token: str | None
    bigpanda_webhook_tokens: tuple[str, ...]
    pagerduty_webhook_secrets: tuple[str, ...]
    admin_tokens: tuple[str, ...] = ()

    def values(self) -> list[str]:
        out = [self.routing_key, *self.bigpanda_webhook_tokens, *self.pagerduty_webhook_secrets]
        out += self.admin_tokens
        out += [v for v in (self.pagerduty_api_token, self.bigpanda_api_token) if v]
        return out


@dataclass(frozen=True)
class Settings:
    config: RelayConfig
    secrets: Secrets
    fingerprint: str

    @property
    def notes_enabled(self) -> bool:
        return self.config.sync.notes and self.secrets.pagerduty_api_token is not None

    @property
    def bigpanda_writes_enabled(self) -> bool:
        return (
            self.secrets.bigpanda_api_token is not None
            and self.config.big_panda.environment_id is not None
        )


def _read_secret(path: str, what: str) -> str:
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read {what} file {path}: {type(exc).__name__}") from None
    if not value:
        raise SettingsError(f"{what} file {path} is empty")
    return value


def _lines(value: str) -> tuple[str, ...]:
    """Several values, one a line (rotation: old and new accepted at once)."""
    return tuple(line.strip() for line in value.splitlines() if line.strip())


def watched_files(config_path: str, config: RelayConfig | None) -> list[str]:
    files = [config_path]
    if config is not None:
        pd, bp = config.pager_duty, config.big_panda
        files += [
            f
            for f in (
                pd.routing_key_file,
                pd.api_token_file,
                pd.webhook_secret_file,
                bp.api_token_file,
                bp.webhook_token_file,
                config.admin_token_file,
            )
            if f
        ]
    return files


def fingerprint(paths: list[str]) -> str:
    """Content hash of every watched file. Content, not mtime: Kubernetes swaps a ``..data``
    symlink when a mounted Secret changes, which mtime of the path may not show."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.encode())
        try:
            digest.update(Path(path).read_bytes())
        except OSError as exc:
            digest.update(f"<{type(exc).__name__}>".encode())
        digest.update(b"\0")
    return digest.hexdigest()


def load(config_path: str) -> Settings:
    """Read the config file and every secret file it names (raises :class:`SettingsError`)."""
    try:
        config = RelayConfig.load(config_path)
    except OSError as exc:
        raise SettingsError(f"cannot read config {config_path}: {type(exc).__name__}") from None
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        first = str(exc).splitlines()
        raise SettingsError(f"invalid config {config_path}: {' '.join(first[:3])[:500]}") from None
    # Fingerprint before reading secrets: a change racing this load shows up as a new
    # fingerprint on the next poll instead of being missed.
    print_ = fingerprint(watched_files(config_path, config))
    pd, bp = config.pager_duty, config.big_panda
    secrets = Secrets(
        routing_key=_read_secret(pd.routing_key_file, "routing key"),
        pagerduty_api_token=(
            _read_secret(pd.api_token_file, "PagerDuty API token") if pd.api_token_file else None
        ),
        bigpanda_api_token=(
            _read_secret(bp.api_token_file, "BigPanda API token") if bp.api_token_file else None
        ),
        bigpanda_webhook_tokens=_lines(_read_secret(bp.webhook_token_file, "webhook token")),
        pagerduty_webhook_secrets=(
            _lines(_read_secret(pd.webhook_secret_file, "webhook secret"))
            if pd.webhook_secret_file
            else ()
        ),
        admin_tokens=(
            _lines(_read_secret(config.admin_token_file, "admin token"))
            if config.admin_token_file
            else ()
        ),
    )
    return Settings(config, secrets, print_)
