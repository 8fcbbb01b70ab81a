"""Benchmark: from ``kubectl apply`` of an integration to its relay pod Ready, on the real node.

    python tests/bench/realnode_ready.py [--runs 10]

Starts what the ``realnode`` tier starts (a local control plane, one real node, the chart's
operator as a pod, the image built by ``make image``), then applies ``examples/01-minimal.yaml``
``--runs`` times, one integration after the other (each under its own name), and measures
the time from the apply until its relay pod is Ready (scheduler, kubelet, containerd,
the relay's readiness probe). Prints p50 and max, and the image's size. Linux + root.
Sequential on purpose: this is one user's wait, not a throughput figure.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pagerbridge_devkit.localcluster.node import GATEWAY
from pagerbridge_devkit.sandbox import pagerduty as pd
from pagerbridge_devkit.sandbox.pagerduty import PagerDutySimulator
from pagerbridge_devkit.sandbox.server import BackgroundServer
from realnode.bed import REPO, Bed, prepare, running_bed

NAMESPACE = "bench"


def manifests(index: int, pd_url: str) -> str:
    docs = [d for d in yaml.safe_load_all((REPO / "examples" / "01-minimal.yaml").read_text()) if d]
    for doc in docs:
        if doc["kind"] == "Secret":
            doc["metadata"]["name"] = f"bench-{index}-pd"
            doc["stringData"] = {k: pd.DEFAULT_ROUTING_KEY for k in doc["stringData"]}
        else:
            doc["metadata"]["name"] = f"bench-{index}"
            pager_duty = doc["spec"]["pagerDuty"]
            pager_duty["routingKey"]["name"] = f"bench-{index}-pd"
            pager_duty["eventsUrl"] = pd_url
    return yaml.safe_dump_all(docs)


def time_to_ready(bed: Bed, index: int, pd_url: str, timeout: float = 300) -> float:
    started = time.monotonic()
    bed.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=manifests(index, pd_url))
    while time.monotonic() - started < timeout:
        if bed.ready_relay_pod(NAMESPACE, f"bench-{index}") is not None:
            return time.monotonic() - started
        time.sleep(0.1)
    raise SystemExit(f"bench-{index}: relay pod not Ready after {timeout:g} s")


def image_size() -> str:
    result = subprocess.run(
        ["buildah", "images", "--format", "{{.Size}}", "localhost/pagerbridge:dev"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip().splitlines()[0] if result.stdout.strip() else "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    prepare()
    simulator = PagerDutySimulator()
    with (
        tempfile.TemporaryDirectory(prefix="pagerbridge-bench-") as workdir,
        running_bed(Path(workdir)) as bed,
        BackgroundServer(simulator.app, host=GATEWAY) as server,
    ):
        bed.kubectl("create", "namespace", NAMESPACE)
        times = []
        for index in range(args.runs):
            seconds = time_to_ready(bed, index, server.url)
            times.append(seconds)
            print(f"bench-{index}: relay pod Ready {seconds:.1f} s after apply")
        containerd_size = bed.node.image_size("localhost/pagerbridge:dev")
    simulator.close()
    print(
        f"apply -> relay pod Ready over {len(times)}: p50 {statistics.median(times):.1f} s, "
        f"max {max(times):.1f} s, min {min(times):.1f} s"
    )
    print(
        f"image localhost/pagerbridge:dev: {image_size()} (buildah), {containerd_size} (containerd)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
