"""``pagerbridge test-incident NAME [-n NS] [--url URL] [--timeout S]``: send a labelled
synthetic incident through a live integration, report each hop, resolve it afterwards.

See :mod:`pagerbridge.ops.synthetic_incident`. Exit codes: 0 every hop passed (or
was skipped for a stated reason), 1 a hop failed or the integration cannot be reached,
2 bad usage or kubeconfig.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="PagerDutyIntegration name")
    parser.add_argument(
        "--namespace",
        "-n",
        default=None,
        metavar="NS",
        help="namespace of the integration (default: the kubeconfig context's namespace)",
    )
    parser.add_argument(
        "--url",
        default=None,
        metavar="URL",
        help="base URL of the relay's public port, reached directly (default: the "
        "integration's publicUrl when set, else a Ready relay pod through the API server's "
        "pod proxy)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long each hop may take to show in PagerDuty",
    )


def run(args: argparse.Namespace) -> int:
    import asyncio
    import sys

    from pagerbridge.clients.kubeconfig import KubeconfigError, load_credentials
    from pagerbridge.ops.synthetic_incident import run_test_incident

    try:
        credentials = load_credentials(args.kubeconfig, args.context)
    except KubeconfigError as exc:
        print(f"pagerbridge test-incident: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(
        run_test_incident(
            credentials, args.name, args.namespace, url=args.url, patience=max(args.timeout, 1.0)
        )
    )
