"""``pagerbridge doctor``: check the CRDs, the operator, each integration's conditions,
Secrets and public URL settings, and print what to fix (exit 1 on a problem)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace",
        "-n",
        default=None,
        metavar="NS",
        help="check the integrations of this namespace (default: the kubeconfig context's)",
    )
    scope.add_argument(
        "--all-namespaces", "-A", action="store_true", help="check every namespace's integrations"
    )
    parser.add_argument(
        "--operator-namespace",
        metavar="NS",
        default=None,
        help="namespace of the operator's Lease and pods (default: every namespace)",
    )
    parser.add_argument(
        "--lease",
        metavar="NAME",
        action="append",
        default=[],
        help="name of the operator's leader election Lease (repeatable; default: "
        "pagerbridge-operator and pagerbridge)",
    )
    parser.add_argument(
        "--output", "-o", choices=["text", "json"], default="text", help="output format"
    )
    parser.add_argument(
        "--verbose", "-v", action="store_true", help="also list the checks that passed"
    )


def run(args: argparse.Namespace) -> int:
    import asyncio
    import sys

    from pagerbridge.clients.kubeconfig import KubeconfigError, load_credentials
    from pagerbridge.ops import diagnosis as doctor

    try:
        credentials = load_credentials(args.kubeconfig, args.context)
    except KubeconfigError as exc:
        print(f"pagerbridge doctor: {exc}", file=sys.stderr)
        return 2
    options = doctor.DoctorOptions(
        namespace=None
        if args.all_namespaces
        else (args.namespace or credentials.default_namespace),
        operator_namespace=args.operator_namespace,
        lease_names=tuple(args.lease) or doctor.LEASE_NAMES,
    )
    findings = asyncio.run(doctor.diagnose(credentials, options))
    if args.output == "json":
        sys.stdout.write(doctor.format_json(findings))
    else:
        sys.stdout.write(doctor.format_text(findings, verbose=args.verbose))
    return doctor.exit_code(findings)
