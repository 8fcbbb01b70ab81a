"""``pagerbridge operator``: run the kopf operator (standalone, no peering).

Light to import: kopf and the handlers load only in :func:`run`.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        metavar="NS",
        help="watch this namespace (repeatable; glob patterns allowed)",
    )
    scope.add_argument(
        "--all-namespaces", "-A", action="store_true", help="watch the whole cluster (default)"
    )
    parser.add_argument(
        "--liveness",
        metavar="URL",
        default=None,
        help="serve the liveness probe at this URL, e.g. http://0.0.0.0:8081/healthz",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        metavar="PORT",
        help="serve Prometheus metrics on this port (0: off)",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")


def run(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import sys

    import kopf
    from prometheus_client import start_http_server

    from pagerbridge.clients.kubeconfig import KubeconfigError, load_credentials
    from pagerbridge.controller.handlers import build_registry
    from pagerbridge.controller.settings import OperatorSettings, SettingsError

    try:
        credentials = load_credentials(args.kubeconfig, args.context)
        settings = OperatorSettings.from_env()
    except (KubeconfigError, SettingsError) as exc:
        print(f"pagerbridge operator: {exc}", file=sys.stderr)
        return 2
    # kopf logs every handler call at INFO: thousands of lines at scale, so WARNING unless -v.
    kopf.configure(verbose=args.verbose, quiet=not args.verbose, log_format=kopf.LogFormat.JSON)
    logging.getLogger("pagerbridge").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.metrics_port:
        start_http_server(args.metrics_port)
    namespaces: list[str] = list(args.namespace)
    asyncio.run(
        kopf.operator(
            registry=build_registry(settings, credentials),
            standalone=True,
            clusterwide=not namespaces,
            namespaces=namespaces,
            liveness_endpoint=args.liveness,
            memo=kopf.Memo(),
        )
    )
    return 0
