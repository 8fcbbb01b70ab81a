"""``pagerbridge``: the one command line of both programs.

Each subcommand lives with its program (``<package>/_cli.py``: ``add_arguments`` and
``run``); this module only wires them together, importing a program only when it runs.
``sandbox`` and ``demo`` live in the dev kit (``pagerbridge-devkit``, installed by ``make
install``), which the image does not ship: there they say so instead of running.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# subcommand -> (module with add_arguments/run, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "operator": ("pagerbridge.controller._cli", "run the Kubernetes operator (kopf)"),
    "relay": ("pagerbridge.relay._cli", "run the webhook relay"),
    "crds": (
        "pagerbridge.api._cli",
        "write the CustomResourceDefinitions generated from the models",
    ),
    "sandbox": ("pagerbridge_devkit.sandbox._cli", "run the PagerDuty and BigPanda simulators"),
    "webhook-config": (
        "pagerbridge.controller._webhook_config_cli",
        "print the BigPanda webhook configuration of an integration",
    ),
    "demo": (
        "pagerbridge_devkit.demo",
        "play an incident's life end to end on a local control plane",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pagerbridge", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # Only a missing program (the dev kit not installed) is expected; a missing
            # dependency inside one is a real error.
            if exc.name is None or not module_name.startswith(exc.name):
                raise
            sub_parser.set_defaults(_module=None)
            continue
        module.add_arguments(sub_parser)
        sub_parser.set_defaults(_module=module_name)
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
    result: int = importlib.import_module(module_name).run(args)
    return result
