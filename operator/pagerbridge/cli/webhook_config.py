"""``pagerbridge webhook-config NAME -n NS``: print what to enter in BigPanda's webhook.

Reads ``status.bigPandaWebhook`` of the integration. The token is printed only with
``--reveal`` (read from its Secret); otherwise the command that shows it is printed.
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
        "--output", "-o", choices=["text", "json"], default="text", help="output format"
    )
    parser.add_argument(
        "--reveal", action="store_true", help="print the bearer token itself (read from its Secret)"
    )


def run(args: argparse.Namespace) -> int:
    import asyncio
    import sys

    from pagerbridge.clients.kubeconfig import KubeconfigError, load_credentials
    from pagerbridge.ops.webhook_setup import show

    try:
        credentials = load_credentials(args.kubeconfig, args.context)
        return asyncio.run(show(credentials, args.name, args.namespace, args.output, args.reveal))
    except KubeconfigError as exc:
        print(f"pagerbridge webhook-config: {exc}", file=sys.stderr)
        return 2
