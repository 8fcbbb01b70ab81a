"""``pagerbridge webhook-config NAME -n NS``: print what to enter in BigPanda's webhook.

Reads ``status.bigPandaWebhook`` of the integration. The token is printed only with
``--reveal`` (read from its Secret); otherwise the command that shows it is printed.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="PagerDutyIntegration name")
    parser.add_argument("--namespace", "-n", default=None, help="namespace (kubeconfig default)")
    parser.add_argument("--output", "-o", choices=["text", "json"], default="text")
    parser.add_argument(
        "--reveal", action="store_true", help="print the bearer token itself (read from its Secret)"
    )


def run(args: argparse.Namespace) -> int:
    import asyncio

    from pagerbridge.controller.webhook_config import show

    return asyncio.run(show(args.name, args.namespace, args.output, args.reveal))
