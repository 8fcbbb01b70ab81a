"""The outbox's filesystem fills up: a real (small tmpfs) full disk under a real relay.

Invariant: while the store cannot commit, no upstream call repeats (a delivered event whose
completion cannot be recorded is not sent again, in a loop or otherwise), ``/readyz`` is
false and says why, and once space is back the relay recovers by itself: everything is
recorded, nothing is sent twice, new work flows.

Needs root (``mount -t tmpfs``). Skipped with the reason otherwise, except under ``CI=true``
where it fails: CI must run it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pagerbridge_devkit.waiting import wait_for

from .support import incident, relay_for

# Every test here starts a real relay process.
pytestmark = pytest.mark.component

EVENTS = 10
QUIET_WINDOW = 3.0  # seconds watched for repeats once everything was sent once


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "volume"
    mount.mkdir()
    if os.geteuid() != 0:
        reason = "needs root to mount a small tmpfs (a real full filesystem)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + "; CI must run this test as root")
        pytest.skip(reason)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(volume: Path) -> Path:
    """Write a file until the filesystem refuses (ENOSPC); returns it (delete to free)."""
    filler = volume / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb", buffering=0) as f:
        error = None
        while error is None:
            try:
                f.write(chunk)
            except OSError as exc:
                error = exc.errno
        assert error == errno.ENOSPC
        with contextlib.suppress(OSError):  # the last partial blocks too
            while True:
                f.write(b"\0" * 512)
    return filler


def test_full_disk_no_resend_loop_readiness_false_then_recovers(
    pd_sim, relays, tmp_path: Path, small_volume: Path
) -> None:
    sim, url = pd_sim
    # PagerDuty fails until the disk is full, so that every delivery succeeds upstream
    # only when its completion can no longer be committed.
    sim.faults.fail_next(None, 503, path_prefix="/v2/enqueue")
    relay = relay_for(tmp_path, relays, url, outbox=small_volume / "outbox.db")
    bodies = [incident(700 + n) for n in range(EVENTS)]
    for body in bodies:
        assert relay.post_bigpanda(body).status_code == 202
    filler = fill(small_volume)
    sim.requests.clear()
    sim.faults.clear()

    def requests() -> list[object]:
        return sim.requests.matching("POST", "/v2/enqueue")

    def accepted() -> list[str]:
        return [r.json()["dedup_key"] for r in requests() if r.status == 202]

    wait_for(lambda: len(set(accepted())) == EVENTS, timeout=60, what="every event sent once")
    ready = httpx.get(relay.internal_url + "/readyz", timeout=10)
    assert ready.status_code == 503
    assert ready.json()["ready"] is False
    assert "full" in ready.json()["outbox"], ready.json()
    # New work is refused with 503 (nothing stored), not accepted and lost.
    assert relay.post_bigpanda(incident(799)).status_code == 503

    before = len(requests())
    time.sleep(QUIET_WINDOW)  # an observation window, not synchronisation
    sent = accepted()
    assert len(requests()) == before, "upstream calls repeated while the store was full"
    assert sorted(sent) == sorted(b["id"] for b in bodies), "an event was sent twice"

    filler.unlink()  # space is back
    wait_for(
        lambda: httpx.get(relay.internal_url + "/readyz", timeout=10).status_code == 200,
        timeout=60,
        what="ready again",
    )
    wait_for(lambda: relay.metric("pagerbridge_relay_outbox_pending") == 0, timeout=60)
    assert relay.metric("pagerbridge_relay_store_unavailable_total") > 0
    assert sorted(accepted()) == sorted(b["id"] for b in bodies), "re-sent after recovery"
    # Recorded for good: a restart has nothing left to send.
    relay.restart()
    assert relay.post_bigpanda(incident(800)).status_code == 202
    wait_for(lambda: incident(800)["id"] in accepted(), timeout=30, what="the new event sent")
    assert sorted(accepted()) == sorted([*(b["id"] for b in bodies), incident(800)["id"]])
