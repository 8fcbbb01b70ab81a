"""``pagerbridge relay --config FILE [--host H] [--port P] [--internal-port I]``: run the
webhook relay (webhooks on the public port; probes, metrics and the admin API on the
internal one).

Kept light to import; the application is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket

from pagerbridge.api.contract import (
    RELAY_CONFIG_FLAG,
    RELAY_HOST_FLAG,
    RELAY_INTERNAL_PORT,
    RELAY_INTERNAL_PORT_FLAG,
    RELAY_PORT_FLAG,
    RELAY_PUBLIC_PORT,
)
from pagerbridge.relay import options
from pagerbridge.relay.inbound.budget import EdgeLimits
from pagerbridge.relay.options import DEFAULTS, RelayOptions

_UNITS = {"ki": 1024, "mi": 1024 * 1024, "k": 1000, "m": 1000 * 1000}


def _size(text: str) -> int:
    """A byte count: ``524288``, ``512Ki``, ``8Mi`` (or decimal ``k``/``M``)."""
    value = text.strip().lower().removesuffix("b")
    suffix = next((u for u in _UNITS if value.endswith(u)), "")
    number, factor = value.removesuffix(suffix), _UNITS.get(suffix, 1)
    try:
        size = int(float(number) * factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 8Mi)") from None
    if size < 0:
        raise argparse.ArgumentTypeError(f"negative size: {text!r}")
    return size


logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        RELAY_CONFIG_FLAG,
        required=True,
        metavar="FILE",
        help="RelayConfig JSON file (reloaded on change)",
    )
    parser.add_argument(
        RELAY_HOST_FLAG,
        default=os.environ.get("PAGERBRIDGE_RELAY_HOST", "0.0.0.0"),  # noqa: S104
        metavar="ADDRESS",
        help="address to listen on ($PAGERBRIDGE_RELAY_HOST)",
    )
    parser.add_argument(
        RELAY_PORT_FLAG,
        type=int,
        default=int(os.environ.get("PAGERBRIDGE_RELAY_PORT", str(RELAY_PUBLIC_PORT))),
        help="public port: the BigPanda and PagerDuty webhooks only ($PAGERBRIDGE_RELAY_PORT)",
    )
    parser.add_argument(
        RELAY_INTERNAL_PORT_FLAG,
        type=int,
        default=int(os.environ.get("PAGERBRIDGE_RELAY_INTERNAL_PORT", str(RELAY_INTERNAL_PORT))),
        help="internal port: /healthz, /readyz, /metrics, /openapi.json and the admin API; "
        "keep it off Ingresses and public Services ($PAGERBRIDGE_RELAY_INTERNAL_PORT)",
    )
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        type=str.lower,
        default=os.environ.get("PAGERBRIDGE_LOG_LEVEL", "info").lower(),
        help="least severe log level written ($PAGERBRIDGE_LOG_LEVEL)",
    )
    parser.add_argument(
        "--events-rate-limit",
        type=float,
        default=float(options.EVENTS_PER_WINDOW),
        metavar="COUNT",
        help="Events API v2 events per routing key in any --events-rate-window, summed over "
        "every replica (PagerDuty's limit: 120 per 60 s)",
    )
    parser.add_argument(
        "--events-rate-window",
        type=float,
        default=options.EVENTS_WINDOW,
        metavar="SECONDS",
        help="the window --events-rate-limit counts in (PagerDuty's: 60 s)",
    )
    parser.add_argument(
        "--events-burst",
        type=int,
        default=options.EVENTS_BURST,
        metavar="COUNT",
        help="Events API v2 events per routing key sent at once before pacing (1: paced "
        "from the first; a larger burst lowers the sustained rate, the window still holds)",
    )
    parser.add_argument(
        "--rest-rate-limit",
        type=float,
        default=float(options.REST_PER_MINUTE),
        metavar="PER_MINUTE",
        help="PagerDuty REST API requests per minute (PagerDuty's limit per API key: 960)",
    )
    parser.add_argument(
        "--bigpanda-rate-limit",
        type=float,
        default=float(options.BIGPANDA_PER_SECOND),
        metavar="PER_SECOND",
        help="BigPanda Incidents API requests per second per endpoint (documented: about 5)",
    )
    parser.add_argument(
        "--outbox-sync",
        choices=["full", "normal"],
        default=DEFAULTS.outbox_sync.lower(),
        help="SQLite synchronous mode: full = fsync per (group) commit, survives power loss; "
        "normal = survives process kills only, lower accept latency",
    )
    parser.add_argument(
        "--late-trigger-after",
        type=float,
        default=DEFAULTS.late_trigger_after,
        metavar="SECONDS",
        help="confirm triggers older than this against BigPanda before sending",
    )
    parser.add_argument(
        "--sweep-interval",
        type=float,
        default=DEFAULTS.sweep_interval,
        metavar="SECONDS",
        help="repair sweep: every incident open on either side is compared in BigPanda and "
        "PagerDuty at least once per this many seconds and differences repaired (0: off)",
    )
    parser.add_argument(
        "--sweep-share",
        type=float,
        default=DEFAULTS.sweep_share,
        metavar="FRACTION",
        help="the share of each upstream rate limit the repair sweep may use (deliveries first)",
    )
    parser.add_argument(
        "--confirm-after",
        type=float,
        default=DEFAULTS.confirm_after,
        metavar="SECONDS",
        help="a late trigger is confirmed with BigPanda when it waited longer than this, or "
        "whenever the relay may have missed BigPanda's webhooks meanwhile (restart, store "
        "failure); otherwise the relay's own record of BigPanda's webhooks answers",
    )
    parser.add_argument(
        "--unauthorized-retry",
        type=float,
        default=DEFAULTS.unauthorized_retry,
        metavar="SECONDS",
        help="retry interval after a 401/403 from PagerDuty or BigPanda",
    )
    parser.add_argument(
        "--delivery-concurrency",
        type=int,
        default=DEFAULTS.concurrency,
        metavar="N",
        help="deliveries in flight at once (different incidents; one incident is sequential)",
    )
    parser.add_argument(
        "--upstream-deadline",
        type=float,
        default=DEFAULTS.upstream_deadline,
        metavar="SECONDS",
        help="overall deadline of one call to PagerDuty or BigPanda (connect, send, headers "
        "and body together): an upstream that hangs or drips holds a slot this long at most",
    )
    parser.add_argument(
        "--max-response-bytes",
        type=int,
        default=DEFAULTS.max_response_bytes,
        metavar="BYTES",
        help="largest upstream answer read (identity encoding only: compressed answers are "
        "refused unread)",
    )
    parser.add_argument(
        "--upstream-slot-share",
        type=float,
        default=DEFAULTS.upstream_slot_share,
        metavar="FRACTION",
        help="share of the delivery slots one upstream (PagerDuty Events, PagerDuty REST, "
        "BigPanda) may hold at once",
    )
    parser.add_argument(
        "--key-slot-share",
        type=float,
        default=DEFAULTS.key_slot_share,
        metavar="FRACTION",
        help="share of the delivery slots the events of one routing key may hold at once",
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=options.HEADER_TIMEOUT,
        metavar="SECONDS",
        help="close a connection whose request headers have not all arrived by then",
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        default=options.BODY_TIMEOUT,
        metavar="SECONDS",
        help="close a connection whose request body has not all arrived by then",
    )
    edge = EdgeLimits()
    parser.add_argument(
        "--max-header-bytes",
        type=_size,
        default=edge.max_header_bytes,
        metavar="BYTES",
        help="request line plus headers larger than this are refused with 431, on both "
        "ports (default 16Ki)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=edge.max_connections,
        metavar="N",
        help="open connections on the public port; more are refused with 503 (default 512)",
    )
    parser.add_argument(
        "--max-connections-per-source",
        type=int,
        default=edge.max_connections_per_source,
        metavar="N",
        help="public connections from one address (IPv6: one /64) that have not yet carried "
        "a verified request; more are refused with 429 (default 256)",
    )
    parser.add_argument(
        "--unverified-body-budget",
        type=_size,
        default=edge.unverified_body_bytes,
        metavar="BYTES",
        help="body bytes in progress at once of requests not verified by their headers "
        "(PagerDuty webhooks: signed over the body); beyond, 503 (default 8Mi)",
    )
    parser.add_argument(
        "--unverified-body-budget-per-source",
        type=_size,
        default=edge.unverified_body_bytes_per_source,
        metavar="BYTES",
        help="one address's share of --unverified-body-budget; beyond, 429 (default 2Mi)",
    )
    parser.add_argument(
        "--verified-body-budget",
        type=_size,
        default=edge.verified_body_bytes,
        metavar="BYTES",
        help="body bytes in progress at once of BigPanda webhooks whose bearer token is "
        "valid (checked before the body is read); beyond, 503 (default 16Mi)",
    )
    parser.add_argument(
        "--max-error-attempts",
        type=int,
        default=DEFAULTS.max_error_attempts,
        metavar="N",
        help="a job whose delivery fails unexpectedly this many times is dead-lettered",
    )
    parser.add_argument(
        "--give-up-after",
        type=float,
        default=DEFAULTS.max_age,
        metavar="SECONDS",
        help="a job still failing this long after it was accepted is dead-lettered",
    )


def run(args: argparse.Namespace) -> int:

    import uvicorn

    from pagerbridge import jsonlog
    from pagerbridge.relay.app import create_app
    from pagerbridge.relay.config import settings as settings_mod
    from pagerbridge.relay.inbound.budget import EdgeBudget
    from pagerbridge.relay.outbound.ratelimit import Family, Limit
    from pagerbridge.relay.server import Edge, guarded_protocol

    jsonlog.configure(args.log_level)
    if args.internal_port == args.port:
        logger.error("cannot start: --internal-port must differ from --port")
        return 2
    try:
        settings = settings_mod.load(args.config)
    except settings_mod.SettingsError as exc:
        logger.error("cannot start: config refused", extra={"error": str(exc)})
        return 2
    rest = max(1, round(args.rest_rate_limit))
    per_second = max(args.bigpanda_rate_limit, 0.01)
    options = RelayOptions(
        rate_limits={
            Family.EVENTS: Limit(
                max(1, round(args.events_rate_limit)),
                max(args.events_rate_window, 1.0),
                burst=max(1, args.events_burst),
            ),
            Family.REST: Limit(rest, 60.0, burst=min(32, max(1, rest // 30))),
            Family.BIGPANDA: (
                Limit(round(per_second), 1.0, margin=0.1)
                if per_second >= 1
                else Limit(1, 1 / per_second, margin=0.1)
            ),
        },
        late_trigger_after=args.late_trigger_after,
        confirm_after=args.confirm_after,
        unauthorized_retry=args.unauthorized_retry,
        outbox_sync=args.outbox_sync.upper(),
        concurrency=max(1, args.delivery_concurrency),
        max_error_attempts=max(1, args.max_error_attempts),
        max_age=args.give_up_after,
        upstream_deadline=max(0.1, args.upstream_deadline),
        max_response_bytes=max(1024, args.max_response_bytes),
        upstream_slot_share=min(1.0, max(0.0, args.upstream_slot_share)),
        key_slot_share=min(1.0, max(0.0, args.key_slot_share)),
        sweep_interval=max(0.0, args.sweep_interval),
        sweep_share=min(1.0, max(0.01, args.sweep_share)),
    )
    app = create_app(args.config, settings, options, internal_port=args.internal_port)
    metrics = app.state.ctx.metrics
    budget = EdgeBudget(
        EdgeLimits(
            max_header_bytes=max(1024, args.max_header_bytes),
            max_connections=max(1, args.max_connections),
            max_connections_per_source=max(1, args.max_connections_per_source),
            unverified_body_bytes=args.unverified_body_budget,
            unverified_body_bytes_per_source=args.unverified_body_budget_per_source,
            verified_body_bytes=args.verified_body_budget,
        )
    )
    logger.info(
        "public port budget",
        extra={
            "max_connections": budget.limits.max_connections,
            "worst_case_mib": round(budget.limits.worst_case_bytes() / 2**20, 1),
        },
    )
    metrics.edge_connections.set_function(lambda: budget.connections)
    metrics.edge_body_bytes.labels("unverified").set_function(lambda: budget.unverified_bytes)
    metrics.edge_body_bytes.labels("verified").set_function(lambda: budget.verified_bytes)
    edge = Edge(
        budget,
        internal_port=args.internal_port,
        authenticate=app.state.authenticate,
        on_refused=lambda refusal: metrics.edge_refused.labels(refusal.reason).inc(),
    )
    config = uvicorn.Config(
        app,
        http=guarded_protocol(
            header_timeout=args.header_timeout,
            body_timeout=args.body_timeout,
            on_stall=lambda phase: metrics.stalled_connections.labels(phase).inc(),
            edge=edge,
        ),
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        # Plain HTTP webhooks only: no websocket protocol (it would import ``websockets``,
        # about 2 MB of an idle relay's memory, for nothing).
        ws="none",
        timeout_graceful_shutdown=20,
    )
    try:
        sockets = [_listen(args.host, port) for port in (args.port, args.internal_port)]
    except OSError as exc:
        logger.error("cannot start: cannot listen", extra={"error": str(exc)})
        return 2
    server = uvicorn.Server(config)
    logger.info(
        "relay listening",
        extra={"host": args.host, "port": args.port, "internal_port": args.internal_port},
    )
    server.run(sockets=sockets)
    return 0


def _listen(host: str, port: int) -> socket.socket:
    """A bound TCP socket (uvicorn listens on it): the relay serves two ports."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock
