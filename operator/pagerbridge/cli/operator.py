"""``pagerbridge operator``: run the kopf operator.

Several replicas may run: a Lease elects the one that acts (see :mod:`.leadership`); the
others stand by, serving only their liveness probe. kopf itself runs standalone (no
peering). Light to import: kopf and the handlers load only in :func:`run`.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

logger = logging.getLogger(__name__)


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
    parser.add_argument(
        "--verbose", "-v", action="store_true", help="debug logging, kopf's included"
    )
    election = parser.add_argument_group("leader election (one active operator per Lease)")
    election.add_argument(
        "--no-leader-election",
        dest="leader_election",
        action="store_false",
        help="act at once, without a Lease (only when no other operator can run)",
    )
    election.add_argument(
        "--leader-election-namespace",
        metavar="NS",
        default=None,
        help="namespace of the Lease (default: $POD_NAMESPACE, else the kubeconfig "
        "context's namespace)",
    )
    election.add_argument(
        "--leader-election-id",
        metavar="NAME",
        default="pagerbridge-operator",
        help="name of the Lease; operators sharing it run one at a time",
    )
    election.add_argument(
        "--lease-duration",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="how long a follower waits, after the last renewal it saw, before taking over",
    )
    election.add_argument(
        "--lease-renew-deadline",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long the leader keeps acting without a successful renewal",
    )
    election.add_argument(
        "--lease-retry-period",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="how often the Lease is renewed or checked",
    )


def operator_identity() -> str:
    """kopf's identity of this operator process: ``<pod or host>/<pid>``.

    kopf's own default asks ``getpass.getuser()``, which raises in the image: it runs as the
    numeric user 65532, which has no passwd entry (and no USER/LOGNAME variable).
    """
    import os
    import socket

    return f"{os.environ.get('POD_NAME') or socket.gethostname()}/{os.getpid()}"


def run(args: argparse.Namespace) -> int:
    import asyncio
    import os
    import sys

    from pagerbridge.clients.kubeconfig import KubeconfigError, load_credentials
    from pagerbridge.controller.runtime.leadership import LeaseSettings
    from pagerbridge.controller.settings import OperatorSettings, SettingsError

    try:
        credentials = load_credentials(args.kubeconfig, args.context)
        settings = OperatorSettings.from_env()
        lease = LeaseSettings(
            namespace=args.leader_election_namespace
            or os.environ.get("POD_NAMESPACE")
            or credentials.default_namespace,
            name=args.leader_election_id,
            lease_duration=args.lease_duration,
            renew_deadline=args.lease_renew_deadline,
            retry_period=args.lease_retry_period,
        )
    except (KubeconfigError, SettingsError, ValueError) as exc:
        print(f"pagerbridge operator: {exc}", file=sys.stderr)
        return 2
    election = lease if args.leader_election else None
    try:
        return asyncio.run(_main(args, credentials, settings, election))
    except KubeconfigError as exc:
        print(f"pagerbridge operator: {exc}", file=sys.stderr)
        return 1


async def _main(args: argparse.Namespace, credentials: Any, settings: Any, lease: Any) -> int:
    import asyncio
    import os
    import sys

    import kopf
    from kopf._core.engines.peering import Identity  # a NewType of str, not re-exported
    from prometheus_client import start_http_server

    from pagerbridge import __version__, jsonlog
    from pagerbridge.clients.kubernetes import KubernetesClient, KubernetesError
    from pagerbridge.controller.runtime.handlers import build_registry
    from pagerbridge.controller.runtime.leadership import LeaderElector
    from pagerbridge.controller.runtime.probes import standby_liveness

    # One JSON schema with the relay. kopf logs every handler call at INFO (thousands of
    # lines at scale): WARNING unless -v. Our own INFO lines tell each integration's story.
    quiet = logging.DEBUG if args.verbose else logging.WARNING
    jsonlog.configure(
        "DEBUG" if args.verbose else "INFO",
        levels={"kopf": quiet, "aiohttp": quiet, "asyncio": quiet},
    )
    namespaces: list[str] = list(args.namespace)
    logger.info(
        "operator starting",
        extra={
            "version": __version__,
            "scope": "namespaces" if namespaces else "cluster",
            "namespaces": namespaces or ["*"],
            "server": credentials.server,
            "kubeconfig": credentials.source,
            "context": credentials.context_name,
            "leaderElection": f"{lease.namespace}/{lease.name}" if lease else "off",
            "relayImage": settings.relay_image,
        },
    )
    if args.metrics_port:
        start_http_server(args.metrics_port)

    async with KubernetesClient(credentials, max_connections=2) as lease_client:
        try:
            server_version = await lease_client.server_version()
        except KubernetesError as exc:
            print(
                f"pagerbridge operator: cannot use the API server {credentials.server} "
                f"({credentials.source or 'in-cluster'}): {exc}",
                file=sys.stderr,
            )
            return 1
        logger.info(
            "API server reachable", extra={"server": credentials.server, "version": server_version}
        )
        elector = LeaderElector(lease_client, lease) if lease is not None else None
        if elector is not None:
            async with standby_liveness(args.liveness):
                await elector.acquire()
        operator = asyncio.create_task(
            kopf.operator(
                registry=build_registry(settings, credentials),
                standalone=True,
                clusterwide=not namespaces,
                namespaces=namespaces,
                liveness_endpoint=args.liveness,
                identity=Identity(operator_identity()),
                memo=kopf.Memo(),
            )
        )
        if elector is None:
            await operator
            return 0
        holding = asyncio.create_task(elector.hold())
        await asyncio.wait({operator, holding}, return_when=asyncio.FIRST_COMPLETED)
        if holding.done():
            # Another operator may take over any moment now: stop acting at once, without
            # waiting for in-flight handlers (the Deployment restarts us as a follower).
            logging.shutdown()
            os._exit(1)
        holding.cancel()
        await elector.release()
        operator.result()
    return 0
