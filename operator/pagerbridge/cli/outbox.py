"""``pagerbridge outbox NAME pending|dead-letters|replay ID|drift [-n NS] [--url URL]``:
look into a relay's outbox, put a dead letter back, and list the differences between
BigPanda and PagerDuty the repair sweep would repair, through its admin API.

The admin API lives on the relay's internal port and takes the token of the integration's
generated Secret ``<NAME>-relay-admin``, which this command reads with the caller's
credentials. The relay is reached through the API server's pod proxy, or at ``--url`` (the
internal port's base URL, e.g. after ``kubectl port-forward deploy/NAME-relay 9090``);
see :mod:`pagerbridge.ops.relay_access`.

Exit codes: 0 done, 1 the relay refused (no such dead letter, a conflict) or cannot be
reached, 2 bad usage or kubeconfig.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="PagerDutyIntegration name")
    # A positional with choices rather than sub-subcommands: the shared flags (-n, --url,
    # --kubeconfig, ...) then go anywhere on the line.
    parser.add_argument(
        "action",
        choices=["pending", "dead-letters", "replay", "drift"],
        help="pending: jobs waiting, oldest first; dead-letters: jobs the relay gave up on; "
        "replay ID: put a dead letter back (refused while newer jobs of its incident are "
        "pending); drift: what the repair sweep would repair now (BigPanda and PagerDuty "
        "compared, nothing repaired)",
    )
    parser.add_argument("id", nargs="?", type=int, help="replay: the dead letter's ID")
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
        help="base URL of the relay's internal port, reached directly (default: a Ready "
        "relay pod through the API server's pod proxy)",
    )
    parser.add_argument(
        "--output", "-o", choices=["text", "json"], default="text", help="output format"
    )


def run(args: argparse.Namespace) -> int:
    import asyncio
    import sys

    from pagerbridge.clients.kubeconfig import KubeconfigError, load_credentials
    from pagerbridge.ops.outbox_report import outbox

    if (args.action == "replay") != (args.id is not None):
        print("pagerbridge outbox: an ID goes with replay, and only with it", file=sys.stderr)
        return 2
    try:
        credentials = load_credentials(args.kubeconfig, args.context)
    except KubeconfigError as exc:
        print(f"pagerbridge outbox: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(
        outbox(
            credentials,
            args.name,
            args.namespace,
            args.action,
            args.id,
            url=args.url,
            output=args.output,
        )
    )
