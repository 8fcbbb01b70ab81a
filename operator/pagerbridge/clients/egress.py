"""Where the operator may send requests: bounds the cluster admin sets, never a CR.

Anyone who may create a ``PagerDutyIntegration`` chooses its URLs, and the operator calls
them with the tenant's credentials from its own network position. The policy confines
those calls:

- the URL's host (and port, when the entry names one) is in the admin's allowlist
  (default: PagerDuty US/EU REST + Events and BigPanda; Helm value ``egress.allowedHosts``);
- ``https`` only, unless the admin allows ``http`` (dev/test clusters with simulators);
- a *base* URL carries no user info, query or fragment (a trailing ``?`` would otherwise
  turn our fixed path into a query string and hand the tenant the whole path);
- at connect time, the address actually connected must be public: loopback, link-local,
  private, shared, multicast and reserved addresses are refused unless inside an allowed
  network (``egress.allowedNetworks``; an allowlisted IP literal allows itself). See
  :mod:`pagerbridge.clients.guard`, which checks the resolved address it connects to, so
  DNS rebinding cannot swap it afterwards.

This module is pure (no I/O): the controller checks a spec's URLs with it before
compiling a RelayConfig, and the guarded transport checks each request and address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pagerbridge.api.integration import (
    BIGPANDA_API_URL,
    PAGERDUTY_API_URLS,
    PAGERDUTY_EVENTS_URLS,
)
from pagerbridge.clients.errors import EgressRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_ALLOWED_HOSTS: tuple[str, ...] = tuple(
    urlsplit(url).netloc
    for url in (
        *PAGERDUTY_API_URLS.values(),
        *PAGERDUTY_EVENTS_URLS.values(),
        BIGPANDA_API_URL,
    )
)
_DEFAULT_PORTS = {"https": 443, "http": 80}


@dataclass(frozen=True)
class HostRule:
    host: str  # lower case, IPv6 without brackets
    port: int | None  # None: any port

    @classmethod
    def parse(cls, entry: str) -> HostRule:
        """``host``, ``host:port``, ``[v6]`` or ``[v6]:port``."""
        text = entry.strip().lower()
        if not text or "/" in text or "@" in text:
            raise ValueError(f"egress allowlist entry {entry!r}: expected host or host:port")
        parts = urlsplit(f"//{text}")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"egress allowlist entry {entry!r}: bad port") from None
        if not parts.hostname:
            raise ValueError(f"egress allowlist entry {entry!r}: no host")
        return cls(parts.hostname, port)

    def matches(self, host: str, port: int) -> bool:
        return self.host == host and (self.port is None or self.port == port)

    def address(self) -> IPAddress | None:
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None


@dataclass(frozen=True)
class EgressPolicy:
    """The admin's egress bounds (operator settings, from the Helm values)."""

    hosts: tuple[HostRule, ...] = tuple(HostRule.parse(h) for h in DEFAULT_ALLOWED_HOSTS)
    networks: tuple[IPNetwork, ...] = ()
    allow_http: bool = False
    _extra_networks: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        literal = tuple(
            ipaddress.ip_network(address) for r in self.hosts if (address := r.address())
        )
        object.__setattr__(self, "_extra_networks", literal)

    @classmethod
    def parse(
        cls, hosts: Iterable[str], networks: Iterable[str] = (), *, allow_http: bool = False
    ) -> EgressPolicy:
        return cls(
            hosts=tuple(HostRule.parse(h) for h in hosts if h.strip()),
            networks=tuple(ipaddress.ip_network(n.strip()) for n in networks if n.strip()),
            allow_http=allow_http,
        )

    def check_url(self, url: str) -> None:
        """Raise :class:`~.errors.EgressRefused` unless ``url`` may be called; the message
        names the rule broken and the URL's host as written, never whether anything
        answers there."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        shown = parts.hostname or "?"
        if scheme not in _DEFAULT_PORTS:
            raise EgressRefused(f"URL scheme {scheme or '(none)'!r} is not allowed")
        if scheme == "http" and not self.allow_http:
            raise EgressRefused(f"http://{shown}: only https is allowed by the operator's policy")
        if "@" in parts.netloc:
            raise EgressRefused(f"URL of {shown} carries user info, which is not allowed")
        if parts.query or parts.fragment or url.rstrip().endswith(("?", "#")):
            raise EgressRefused(f"base URL of {shown} carries a query or fragment")
        try:
            port = parts.port or _DEFAULT_PORTS[scheme]
        except ValueError:
            raise EgressRefused(f"URL of {shown} has an invalid port") from None
        host = (parts.hostname or "").lower()
        if not any(rule.matches(host, port) for rule in self.hosts):
            raise EgressRefused(
                f"host {host}:{port} is not in the operator's egress allowlist "
                "(Helm value egress.allowedHosts)"
            )

    def address_allowed(self, address: IPAddress) -> bool:
        """True for a public address, or one inside an allowed network."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in network for network in (*self.networks, *self._extra_networks)):
            return True
        return address.is_global and not (address.is_multicast or address.is_reserved)

    def check_address(self, host: str, address: IPAddress) -> None:
        if not self.address_allowed(address):
            raise EgressRefused(
                f"host {host} resolves to a non-public address, which is not allowed "
                "(Helm value egress.allowedNetworks)"
            )


__all__ = ["DEFAULT_ALLOWED_HOSTS", "EgressPolicy", "HostRule"]
