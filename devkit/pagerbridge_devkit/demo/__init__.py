"""``pagerbridge demo``: an incident's life, BigPanda ⇄ PagerDuty, on this machine.

Light to import (the CLI imports every subcommand to build its parser): the work is in
:mod:`pagerbridge_devkit.demo.runner`, loaded only by :func:`run`.

What runs, and where each part lives:

* :mod:`.environment`: the local control plane (or a cluster given by kubeconfig), the
  PagerDuty and BigPanda simulators, the operator process, the harness kubelet that runs
  the relay Deployment as a local process, and the loopback "ingress" in front of it;
  all of it torn down in reverse order, also on failure and Ctrl-C.
* :mod:`.manifests`: the examples a user would apply, with sandbox values filled in.
* :mod:`.story`: the incident's life, each step waiting for its effect in the simulators.
* :mod:`.runner`: runs the steps, prints progress and the summary, picks the exit status.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

#: The e2e suite's variable: a cluster to use instead of starting a local control plane.
KUBECONFIG_ENV = "PAGERBRIDGE_E2E_KUBECONFIG"
DEFAULT_STEP_TIMEOUT = 60.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        default=os.environ.get(KUBECONFIG_ENV) or None,
        metavar="FILE",
        help="use this cluster instead of starting a local control plane "
        f"(default: ${KUBECONFIG_ENV} when set); the relay still runs on this machine",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_STEP_TIMEOUT,
        metavar="SECONDS",
        help=f"how long each step may wait for its effect (default {DEFAULT_STEP_TIMEOUT:g})",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="after the story, keep everything running (and print how to reach it) until Ctrl-C",
    )


def run(args: argparse.Namespace) -> int:
    from pagerbridge_devkit.demo.runner import DemoOptions, run_demo

    options = DemoOptions(kubeconfig=args.kubeconfig, step_timeout=args.timeout, keep=args.keep)
    return run_demo(options)
