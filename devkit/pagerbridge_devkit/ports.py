"""Listening ports for the test bed's servers (simulators, relays, probes, control plane).

Picking a port by binding port 0 and closing the socket races every outgoing connection
on the machine: the kernel hands the same *ephemeral* ports to client sockets, so a relay
or operator binding the port a moment later may find it taken (``address already in
use``; seen in CI). Ports here come from below the ephemeral range, which the kernel never
assigns by itself, so only another explicit pick can collide: within this process none
(a port is handed out once), across processes only by chance (a random draw from
thousands, then a bind check).
"""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_SPAN = 12000  # ports below the ephemeral range to draw from
_FLOOR = 10000  # never below (well-known and registered services)
_lock = threading.Lock()
_handed_out: set[int] = set()
_random = random.Random()  # noqa: S311 - a port number, not a secret


def _candidates() -> range:
    try:
        low = int(_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768  # Linux's default start of the ephemeral range
    top = max(low, _FLOOR + 1000)
    return range(max(_FLOOR, top - _SPAN), top)


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now, outside the ephemeral range, not handed out before by
    this process."""
    candidates = _candidates()
    with _lock:
        for _ in range(len(candidates)):
            port = _random.choice(candidates)
            if port in _handed_out or not _bindable(host, port):
                continue
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free port in {candidates.start}-{candidates.stop - 1} on {host}")
