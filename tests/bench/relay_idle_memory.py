"""Idle relay memory: resident set size of `pagerbridge relay` with nothing to do.

The relay runs from a virtual environment holding only the runtime distribution (what the
image installs: `pip install .`, no dev kit, no test or lint extras), built once under
--venv. Its config has every feature on (notes, write-backs, the PagerDuty webhook), it
becomes healthy, then RSS is sampled from /proc for --seconds and the median and max
printed. Also prints the figure for the development venv (this interpreter) for
comparison: it has more packages that the relay's imports pull in (httpx imports rich and
pygments when they are installed).

    python tests/bench/relay_idle_memory.py [--seconds 10] [--venv DIR]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "unit" / "relay"))

from relayproc import write_config  # noqa: E402

from pagerbridge_devkit.ports import free_port  # noqa: E402


def runtime_python(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(REPO)], check=True)
    return python


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def measure(python: Path, seconds: float) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        config = write_config(
            tmp,
            pd_url="http://127.0.0.1:9",
            bp_url="http://127.0.0.1:9",
            routing_key="R" * 32,
            pd_api_token="pd-token-for-the-benchmark",
            bp_api_token="bp-token-for-the-benchmark",
            bp_environment="env",
            webhook_secrets=["webhook-secret-for-the-benchmark"],
        )
        port, internal = free_port(), free_port()
        log = (tmp / "relay.log").open("wb")
        proc = subprocess.Popen(
            [str(python), "-m", "pagerbridge", "relay", "--config", str(config),
             "--host", "127.0.0.1", "--port", str(port), "--internal-port", str(internal)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{internal}/healthz", timeout=1).is_success:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("relay did not start: " + (tmp / "relay.log").read_text())
                time.sleep(0.1)
            samples = []
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                samples.append(rss_kib(proc.pid) / 1024)
                time.sleep(0.5)
            return statistics.median(samples), max(samples)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--venv", type=Path, default=Path.home() / ".cache/pagerbridge/runtime-venv"
    )
    args = parser.parse_args()
    for label, python in (
        ("runtime venv (as in the image)", runtime_python(args.venv)),
        ("development venv", Path(sys.executable)),
    ):
        median, peak = measure(python, args.seconds)
        print(f"{label:32s} idle RSS median {median:5.1f} MiB, max {peak:5.1f} MiB")


if __name__ == "__main__":
    main()
