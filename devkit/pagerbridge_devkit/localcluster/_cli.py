"""``python -m pagerbridge_devkit.localcluster up|down|status``: a detached local control plane.

``up`` starts etcd, kube-apiserver and the limited kube-controller-manager in the
background with their state in ``--dir`` (default ``.cluster``), writes
``<dir>/kubeconfig`` and returns once the API server is ready; ``down`` stops them and
removes the state.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action", choices=("up", "down", "status", "node-up", "node-down", "node-status")
    )
    parser.add_argument(
        "--dir", type=Path, default=Path(".cluster"), help="state directory (default .cluster)"
    )
    parser.add_argument(
        "--crds",
        type=Path,
        action="append",
        default=None,
        help="CRD file or directory to install before the controller-manager starts "
        "(repeatable; default: ./crds when it exists)",
    )
    parser.add_argument(
        "--node-dir",
        type=Path,
        default=Path(".node"),
        help="state directory of the real node (node-up/node-down; default .node)",
    )
    parser.add_argument(
        "--no-controller-manager",
        action="store_true",
        help="run only etcd and kube-apiserver",
    )


def run(args: argparse.Namespace) -> int:
    if args.action.startswith("node-"):
        return _run_node(args)
    from pagerbridge_devkit.localcluster.controlplane import (
        ControlPlane,
        ControlPlaneError,
        recorded_processes,
        stop_recorded,
    )

    state_dir: Path = args.dir.resolve()
    running = recorded_processes(state_dir)
    if args.action == "status":
        for proc in running:
            print(f"{proc.name()} pid {proc.pid}")
        print(f"kubeconfig: {state_dir / 'kubeconfig'}" if running else "not running")
        return 0 if running else 1
    if args.action == "down":
        ended = stop_recorded(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)
        print(f"stopped {ended} process(es); removed {state_dir}")
        return 0
    if running:
        print(f"already running; kubeconfig: {state_dir / 'kubeconfig'}")
        return 0
    shutil.rmtree(state_dir, ignore_errors=True)  # leftovers of a crashed run
    crds: list[Path] = args.crds if args.crds is not None else [Path("crds")]
    plane = ControlPlane(
        state_dir,
        detach=True,
        controller_manager=not args.no_controller_manager,
        crds=[path.resolve() for path in crds if path.exists()],
    )
    try:
        plane.start()
    except ControlPlaneError as exc:
        print(f"control plane failed to start: {exc}", file=sys.stderr)
        return 1
    for name, pid in plane.pids.items():
        print(f"{name} pid {pid}")
    print(f"API server {plane.url}; kubeconfig: {plane.kubeconfig}")
    return 0


def _run_node(args: argparse.Namespace) -> int:
    from pagerbridge_devkit.localcluster.node import Node, NodeError, running, teardown

    node_dir: Path = args.node_dir.resolve()
    alive = running(node_dir)
    if args.action == "node-status":
        for name, pid in alive:
            print(f"{name} pid {pid}")
        print("running" if alive else "not running")
        return 0 if alive else 1
    if args.action == "node-down":
        problems = teardown(node_dir)
        for problem in problems:
            print(f"left behind: {problem}", file=sys.stderr)
        print(f"node stopped ({len(alive)} process(es)); removed {node_dir}")
        return 1 if problems else 0
    if alive:
        print(f"node already running ({node_dir})")
        return 0
    teardown(node_dir)  # leftovers of a crashed run
    node = Node(node_dir, args.dir.resolve(), detach=True)
    try:
        node.start()
    except NodeError as exc:
        print(f"node failed to start: {exc}", file=sys.stderr)
        return 1
    for name, pid in running(node_dir):
        print(f"{name} pid {pid}")
    print(f"node {node.name} Ready; pods in {node.state_dir}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m pagerbridge_devkit.localcluster")
    add_arguments(parser)
    return run(parser.parse_args())
