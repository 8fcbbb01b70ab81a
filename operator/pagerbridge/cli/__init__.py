"""pagerbridge: the one command line of the operator and the relay.

Each subcommand is one module of this package (``add_arguments`` and ``run``); this
module only wires them together, importing a program only when it runs. The top layer:
may import ops, relay, controller, clients and api; nothing imports it.
Commands that talk to a cluster share ``--kubeconfig`` and ``--context`` (added here).
``sandbox`` and ``demo`` live in the dev kit (``pagerbridge-devkit``, installed by ``make
install``), which the image does not ship: there they say so instead of running.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from pagerbridge import __version__

DESCRIPTION = "PagerBridge: BigPanda to PagerDuty, as a Kubernetes operator and a webhook relay."


@dataclass(frozen=True)
class Subcommand:
    module: str  # has add_arguments(parser) and run(args) -> int
    help: str
    cluster: bool = False  # talks to a Kubernetes cluster: gets --kubeconfig and --context


SUBCOMMANDS: dict[str, Subcommand] = {
    "operator": Subcommand(
        "pagerbridge.cli.operator", "run the Kubernetes operator (kopf)", cluster=True
    ),
    "relay": Subcommand("pagerbridge.cli.relay", "run the webhook relay"),
    "crds": Subcommand(
        "pagerbridge.cli.crds", "write the CustomResourceDefinitions generated from the models"
    ),
    "sandbox": Subcommand(
        "pagerbridge_devkit.sandbox._cli", "run the PagerDuty and BigPanda simulators"
    ),
    "webhook-config": Subcommand(
        "pagerbridge.cli.webhook_config",
        "print the BigPanda webhook configuration of an integration",
        cluster=True,
    ),
    # Day-2 commands on a running relay (issue 15).
    "outbox": Subcommand(
        "pagerbridge.cli.outbox",
        "list a relay's pending jobs and dead letters, replay a dead letter",
        cluster=True,
    ),
    "test-incident": Subcommand(
        "pagerbridge.cli.test_incident",
        "send a labelled synthetic incident through an integration and follow each hop",
        cluster=True,
    ),
    "demo": Subcommand(
        "pagerbridge_devkit.demo", "play an incident's life end to end on a local control plane"
    ),
}

# Day-2 commands (kept in their own block so other commands' registrations merge cleanly).
SUBCOMMANDS.update(
    {
        "doctor": Subcommand(
            "pagerbridge.cli.doctor",
            "check CRDs, operator, integrations, Secrets and public URLs; say what to fix",
            cluster=True,
        ),
        "completion": Subcommand(
            "pagerbridge.cli.completion", "print a bash or zsh completion script for pagerbridge"
        ),
    }
)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every flag's default (argparse's formatter), and keeps descriptions' lines."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help_text = action.help or ""
        flag = action.nargs == 0  # store_true/false, version, help: nothing to show
        nothing = (
            action.default is None or action.default == [] or action.default is argparse.SUPPRESS
        )
        if flag or nothing or "%(default)" in help_text or "(default" in help_text:
            return help_text
        return super()._get_help_string(action)


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("cluster connection")
    group.add_argument(
        "--kubeconfig",
        metavar="FILE",
        default=None,
        help="kubeconfig file (default: in a pod its ServiceAccount, else $KUBECONFIG, "
        "which may list several files, else ~/.kube/config)",
    )
    group.add_argument(
        "--context",
        metavar="NAME",
        default=None,
        help="kubeconfig context (default: the kubeconfig's current-context)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pagerbridge", description=DESCRIPTION, formatter_class=HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(
            name, help=command.help, description=command.help, formatter_class=HelpFormatter
        )
        try:
            module = importlib.import_module(command.module)
        except ModuleNotFoundError as exc:
            # Only a missing program (the dev kit not installed) is expected; a missing
            # dependency inside one is a real error.
            if exc.name is None or not command.module.startswith(exc.name):
                raise
            sub_parser.set_defaults(_module=None)
            continue
        module.add_arguments(sub_parser)
        if command.cluster:
            add_cluster_arguments(sub_parser)
        sub_parser.set_defaults(_module=command.module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    module_name: str | None = args._module
    if module_name is None:
        print(
            f"pagerbridge {args.command}: not available in this install "
            "(it is part of the dev kit: pip install -e ./devkit, or make install)",
            file=sys.stderr,
        )
        return 2
    try:
        result: int = importlib.import_module(module_name).run(args)
    except KeyboardInterrupt:
        return 130
    return result
