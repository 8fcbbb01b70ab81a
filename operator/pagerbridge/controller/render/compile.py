"""Compile an integration and the overrides and mappings that reference it into a RelayConfig.

Pure: the inputs are the parsed specs plus what the operator knows about the referenced
Secrets (which keys exist, whether a routing key has the shape of one: never the values),
so unit tests exercise every rule without a cluster.

Precedence when several objects say different things (kept deterministic so reconciles
never flap): the key override whose name sorts first wins; tag mappings are taken in
order of object name then list order, and the first one to claim a PagerDuty field wins.
Link and image rules are taken in the same order, up to ``MAX_RULES`` of each kind (a
namespace cannot grow its relay's per-event work without bound). The losers are reported
back so their own status can say so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pagerbridge.api import (
    PagerDutyIntegrationSpec,
    PagerDutyRelayConfig,
    RelayConfig,
    SecretKeyRef,
    SyncConfig,
    TagMapping,
)
from pagerbridge.api.contract import (
    bigpanda_api_url,
    pagerduty_api_url,
    pagerduty_events_url,
)
from pagerbridge.api.integration import RelayStorage
from pagerbridge.api.links import MAX_RULES, ImageRule, LinkRule
from pagerbridge.api.pagerduty_events import EVENT_TYPES, PagerDutyEvents
from pagerbridge.api.relay_config import BigPandaRelayConfig, IntegrationIdentity
from pagerbridge.controller import names as n
from pagerbridge.controller.errors import DatabaseNotConfigured, InvalidKey, SecretNotFound
from pagerbridge.controller.state.observed import SecretInfo

DATABASE_FIELD = "spec.relay.database.uriSecretRef"


@dataclass(frozen=True)
class OverrideInput:
    name: str
    tag: str


@dataclass(frozen=True)
class MappingInput:
    name: str
    mappings: tuple[TagMapping, ...]
    links: tuple[LinkRule, ...] = ()
    images: tuple[ImageRule, ...] = ()


@dataclass(frozen=True)
class Compiled:
    config: RelayConfig
    mounted_secrets: tuple[str, ...]  # user Secret names to mount, sorted
    # storage PostgreSQL: the Secret key holding the connection URI (an env var, not a file)
    database: SecretKeyRef | None = None
    active_override: str | None = None
    ignored_overrides: tuple[str, ...] = ()
    ignored_mappings: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # mapping object name -> how many of its link/image rules are over MAX_RULES
    ignored_link_rules: dict[str, int] = field(default_factory=dict)


def _check_refs(
    namespace: str, refs: Sequence[tuple[str, SecretKeyRef]], secrets: Mapping[str, SecretInfo]
) -> None:
    missing: list[str] = []
    for what, ref in refs:
        info = secrets.get(ref.name)
        if info is None:
            missing.append(f"Secret {namespace}/{ref.name} (for {what}) not found")
        elif ref.key not in info.keys:
            missing.append(f"Secret {namespace}/{ref.name} has no key {ref.key!r} (for {what})")
    if missing:
        raise SecretNotFound("; ".join(missing))


def database_ref(
    spec: PagerDutyIntegrationSpec, default: SecretKeyRef | None = None
) -> SecretKeyRef | None:
    """Storage PostgreSQL: the integration's database Secret key, else the operator's
    default (a Secret of the same name in the integration's namespace); otherwise None."""
    if spec.relay.effective_storage is not RelayStorage.POSTGRESQL:
        return None
    return spec.relay.database.uri_secret_ref or default


def secret_refs(
    spec: PagerDutyIntegrationSpec, default_database: SecretKeyRef | None = None
) -> list[tuple[str, SecretKeyRef]]:
    """Every Secret key the integration references, with the field path naming it."""
    refs: list[tuple[str, SecretKeyRef]] = []
    routing_spec = spec.pager_duty.routing_key  # None only before accounts are applied
    if routing_spec is not None and (routing := routing_spec.secret_ref) is not None:
        refs.append(("spec.pagerDuty.routingKey", routing))  # None: managed
    if spec.pager_duty.api_token is not None:
        refs.append(("spec.pagerDuty.apiToken", spec.pager_duty.api_token))
    if spec.big_panda.api_token is not None:
        refs.append(("spec.bigPanda.apiToken", spec.big_panda.api_token))
    if (database := database_ref(spec, default_database)) is not None:
        refs.append((DATABASE_FIELD, database))
    return refs


def sync_config(spec: PagerDutyIntegrationSpec) -> SyncConfig:
    """The relay's ``sync``: the matrix with its deprecated ``acknowledge`` entry resolved.

    ``acknowledge`` carries the acknowledged entry (what relays before the matrix read);
    ``pagerDutyEvents`` is written only when another type is on, so the ConfigMap of an
    integration that uses none of them is what it was before the matrix."""
    enabled = spec.sync.pagerduty_comment_events
    acknowledged = EVENT_TYPES["acknowledged"] in enabled
    events = None
    if set(enabled) - {EVENT_TYPES["acknowledged"]}:
        events = PagerDutyEvents.model_validate(
            {name: event_type in enabled for name, event_type in EVENT_TYPES.items()}
        )
    return SyncConfig(
        resolve=spec.sync.resolve,
        notes=spec.notes_enabled,
        acknowledge=acknowledged,
        pager_duty_events=events,
        snooze=spec.sync.snooze,
        flapping=spec.sync.flapping,
    )


def compile_relay_config(
    namespace: str,
    integration: str,
    spec: PagerDutyIntegrationSpec,
    overrides: Sequence[OverrideInput],
    mappings: Sequence[MappingInput],
    secrets: Mapping[str, SecretInfo],
    *,
    webhook_secret: bool,
    default_database: SecretKeyRef | None = None,
    names: n.ChildNames | None = None,
) -> Compiled:
    """The RelayConfig for one integration; raises ``SecretNotFound`` / ``InvalidKey`` /
    ``DatabaseNotConfigured``. ``names``: of the children whose files the relay reads
    (default: the integration's own; a shared account's relay has others)."""
    names = names or n.ChildNames(integration)
    database = database_ref(spec, default_database)
    if spec.relay.effective_storage is RelayStorage.POSTGRESQL and database is None:
        raise DatabaseNotConfigured(
            "relay.storage PostgreSQL needs relay.database.uriSecretRef (a Secret key holding "
            "the connection URI), and the operator has no default database Secret "
            "(Helm value relay.database.secretName)"
        )
    refs = secret_refs(spec, default_database)
    _check_refs(namespace, refs, secrets)
    if spec.pager_duty.routing_key is None:  # admission fills it from the account
        raise InvalidKey("no pagerDuty.routingKey, and no account gives one")
    routing = spec.pager_duty.routing_key.secret_ref
    if routing is None:  # managed: the operator's own Secret, written by the routing key step
        routing_key_file = n.secret_file(names.routing_key_secret, n.ROUTING_KEY_KEY)
    elif routing.key not in secrets[routing.name].routing_key_shaped:
        raise InvalidKey(
            f"Secret {namespace}/{routing.name} key {routing.key!r} does not hold a PagerDuty "
            "Events API v2 integration key (32 letters and digits)"
        )
    else:
        routing_key_file = n.secret_file(routing.name, routing.key)

    pd = spec.pager_duty
    pager_duty = PagerDutyRelayConfig(
        events_url=pagerduty_events_url(pd),
        api_url=pagerduty_api_url(pd),
        routing_key_file=routing_key_file,
        api_token_file=n.secret_file(pd.api_token.name, pd.api_token.key) if pd.api_token else None,
        from_email=pd.from_email,
        service_id=pd.service_id,
        webhook_secret_file=(
            n.secret_file(names.webhook_secret, n.WEBHOOK_SECRET_KEY) if webhook_secret else None
        ),
    )
    bp = spec.big_panda
    big_panda = BigPandaRelayConfig(
        api_url=bigpanda_api_url(bp),
        api_token_file=n.secret_file(bp.api_token.name, bp.api_token.key) if bp.api_token else None,
        environment_id=bp.environment_id,
        webhook_token_file=n.secret_file(names.token_secret, n.TOKEN_KEY),
    )

    ordered_overrides = sorted(overrides, key=lambda o: o.name)
    active = ordered_overrides[0] if ordered_overrides else None

    taken: set[str] = set()
    tag_mappings: list[TagMapping] = []
    ignored: dict[str, tuple[str, ...]] = {}
    for mapping in sorted(mappings, key=lambda m: m.name):
        lost = []
        for pair in mapping.mappings:
            if pair.field in taken:
                lost.append(pair.field)
                continue
            taken.add(pair.field)
            tag_mappings.append(pair)
        if lost:
            ignored[mapping.name] = tuple(lost)
    links, images, over = _link_rules(mappings)

    mounted = {ref.name for what, ref in refs if what != DATABASE_FIELD}
    if routing is None:
        mounted.add(names.routing_key_secret)
    config = RelayConfig(
        pager_duty=pager_duty,
        big_panda=big_panda,
        key_override_tag=active.tag if active else None,
        tag_mappings=tag_mappings,
        links=links,
        images=images,
        severity_map=spec.severity_map.as_dict(),
        sync=sync_config(spec),
        outbox_path=f"{n.OUTBOX_DIR}/outbox.db",
        admin_token_file=n.secret_file(names.admin_secret, n.ADMIN_TOKEN_KEY),
        integration=IntegrationIdentity(namespace=namespace, name=integration),
    )
    return Compiled(
        config=config,
        mounted_secrets=tuple(sorted(mounted)),
        database=database,
        active_override=active.name if active else None,
        ignored_overrides=tuple(o.name for o in ordered_overrides[1:]),
        ignored_mappings=ignored,
        ignored_link_rules=over,
    )


def _link_rules(
    mappings: Sequence[MappingInput],
) -> tuple[list[LinkRule], list[ImageRule], dict[str, int]]:
    """Every mapping's link and image rules in object-name order, at most ``MAX_RULES`` of
    each kind; the count of rules left out, per mapping object."""
    links: list[LinkRule] = []
    images: list[ImageRule] = []
    over: dict[str, int] = {}
    for mapping in sorted(mappings, key=lambda m: m.name):
        link_room = max(0, MAX_RULES - len(links))
        image_room = max(0, MAX_RULES - len(images))
        links.extend(mapping.links[:link_room])
        images.extend(mapping.images[:image_room])
        lost = max(0, len(mapping.links) - link_room) + max(0, len(mapping.images) - image_room)
        if lost:
            over[mapping.name] = lost
    return links, images, over
