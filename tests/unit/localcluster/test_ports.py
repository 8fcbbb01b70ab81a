"""The test bed's listening ports: never from the kernel's ephemeral range (client sockets
take those at any moment), never the same one twice in a process."""

from __future__ import annotations

import socket
from pathlib import Path

from pagerbridge_devkit.ports import free_port


def test_ports_are_below_the_ephemeral_range_distinct_and_bindable() -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(10000 <= port < low for port in ports)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[-1]))
