"""The public port's fixed memory budget for work that has not proved who sent it.

A PagerDuty webhook can only be verified after its whole body is read (the HMAC covers the
raw bytes), so a stranger can make the relay hold up to 512 KB per request, and as many
requests as it opens connections: 400 stalled ~511 KB bodies were 265 MiB, an OOM kill.
uvicorn offers nothing that fits (``limit_concurrency`` counts both ports and answers plain
text; httptools has no header limit at all; its body buffer only pauses reading), so the
relay keeps its own books here, and :mod:`pagerbridge.relay.server` enforces them in the
HTTP protocol, before any request reaches the application:

- **connections**: at most ``max_connections`` open on the public port (else 503), and at
  most ``max_connections_per_source`` of them from one source address that have not yet
  presented a verified request (else 429). A connection that has carried a verified
  BigPanda request no longer counts against its source.
- **bodies**: each request *reserves* its declared ``Content-Length`` (512 KB, the cap, when
  chunked) when its headers are complete, before a byte of its body is read, and keeps it
  until its response is sent or the connection is gone. A request whose bearer token
  already proves it comes from BigPanda draws on the ``verified`` pool; every other request
  (a PagerDuty webhook, a wrong token, an unknown path) on the ``unverified`` pool, which
  also has a share per source address. Over a pool: 503; over the source's share: 429.
  Strangers can exhaust only their own pool, so BigPanda's webhooks never queue behind
  their bodies.

Every refusal carries ``Retry-After`` and the relay's JSON error body. A body that does not
arrive holds its reservation at most until the body deadline (``--body-timeout``) closes
the connection. IPv6 sources are grouped by /64, which one client usually holds whole.
Behind a proxy every request comes from the proxy's address: the per-source shares then
apply to all traffic together (set them equal to the pool to switch fairness off).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

# No imports of the web stack here: the relay command reads these defaults for its --help.
from pagerbridge.relay.incidents.limits import MAX_BODY  # nothing bigger could be delivered

MiB = 1024 * 1024
CONNECTION_STATE = 8 * 1024  # what an open connection costs the relay besides its buffers


@dataclass(frozen=True)
class EdgeLimits:
    max_header_bytes: int = 16 * 1024
    max_connections: int = 512
    max_connections_per_source: int = 256
    unverified_body_bytes: int = 8 * MiB
    unverified_body_bytes_per_source: int = 2 * MiB
    verified_body_bytes: int = 16 * MiB
    max_body: int = MAX_BODY
    retry_after: int = 1  # seconds, in every 429/503 of the edge
    linger: float = 2.0  # a refused connection is read (and dropped) this long, then closed
    linger_bytes: int = 64 * 1024  # ... or once it has sent this much more

    def worst_case_bytes(self) -> int:
        """Memory the edge lets requests take at once, every bound reached: each connection
        its headers and its state (measured: about 8 KiB), bodies counted twice (the buffer
        they arrive in and the joined copy the handler verifies)."""
        connections = self.max_connections * (self.max_header_bytes + CONNECTION_STATE)
        return connections + 2 * (self.unverified_body_bytes + self.verified_body_bytes)


@dataclass(frozen=True)
class Refusal:
    """Why the edge refused a connection or request: the answer it gets."""

    status: int
    code: str
    message: str
    reason: str  # label of pagerbridge_relay_edge_refused_total
    retry_after: int | None = None


@dataclass
class Reservation:
    source: str
    nbytes: int
    verified: bool
    released: bool = False


def source_of(address: str | None) -> str:
    """The fairness key of a peer address: the address itself, an IPv6 one by its /64."""
    if not address:
        return "?"
    if ":" in address:
        try:
            return str(ipaddress.ip_network(f"{address}/64", strict=False))
        except ValueError:
            return address
    return address


@dataclass
class EdgeBudget:
    """The books; single-threaded (the event loop), so plain integers."""

    limits: EdgeLimits = field(default_factory=EdgeLimits)
    connections: int = 0
    strangers: dict[str, int] = field(default_factory=dict)
    unverified_bytes: int = 0
    verified_bytes: int = 0
    source_bytes: dict[str, int] = field(default_factory=dict)

    def connect(self, source: str) -> Refusal | None:
        """A new public connection, counted as a stranger's; None when admitted."""
        limits = self.limits
        if self.connections >= limits.max_connections:
            return Refusal(
                503, "busy", "too many connections; retry later", "connections", limits.retry_after
            )
        if self.strangers.get(source, 0) >= limits.max_connections_per_source:
            return Refusal(
                429,
                "too_many_connections",
                "too many connections from this address; retry later",
                "source_connections",
                limits.retry_after,
            )
        self.connections += 1
        self.strangers[source] = self.strangers.get(source, 0) + 1
        return None

    def verified(self, source: str) -> None:
        """A stranger's connection carried a verified request: it stops counting as one."""
        self._forget_stranger(source)

    def disconnect(self, source: str, stranger: bool) -> None:
        self.connections -= 1
        if stranger:
            self._forget_stranger(source)

    def _forget_stranger(self, source: str) -> None:
        left = self.strangers.get(source, 0) - 1
        if left > 0:
            self.strangers[source] = left
        else:
            self.strangers.pop(source, None)

    def reserve(self, source: str, nbytes: int, verified: bool) -> Reservation | Refusal:
        limits = self.limits
        if verified:
            if self.verified_bytes + nbytes > limits.verified_body_bytes:
                return Refusal(
                    503,
                    "busy",
                    "too many requests in progress; retry later",
                    "verified_budget",
                    limits.retry_after,
                )
            self.verified_bytes += nbytes
            return Reservation(source, nbytes, verified=True)
        held = self.source_bytes.get(source, 0)
        if held + nbytes > limits.unverified_body_bytes_per_source:
            return Refusal(
                429,
                "too_many_requests",
                "too many requests in progress from this address; retry later",
                "source_budget",
                limits.retry_after,
            )
        if self.unverified_bytes + nbytes > limits.unverified_body_bytes:
            return Refusal(
                503,
                "busy",
                "too many requests in progress; retry later",
                "unverified_budget",
                limits.retry_after,
            )
        self.unverified_bytes += nbytes
        self.source_bytes[source] = held + nbytes
        return Reservation(source, nbytes, verified=False)

    def release(self, reservation: Reservation) -> None:
        if reservation.released:
            return
        reservation.released = True
        if reservation.verified:
            self.verified_bytes -= reservation.nbytes
            return
        self.unverified_bytes -= reservation.nbytes
        left = self.source_bytes.get(reservation.source, 0) - reservation.nbytes
        if left > 0:
            self.source_bytes[reservation.source] = left
        else:
            self.source_bytes.pop(reservation.source, None)
