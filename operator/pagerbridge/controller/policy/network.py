"""The admin's NetworkPolicy for every relay (Helm ``relayPolicy.networkPolicy.*``).

Why: a relay's internal port serves ``/metrics``, ``/readyz`` (store and config error
strings) and the admin API (token protected); without a policy every pod of the cluster
reaches it, a tenant's neighbours included. With ``enabled``, the operator renders one
NetworkPolicy per relay (named like it, owned by the integration) that admits:

- on the internal port, only the peers the admin names (``internal.from``: the monitoring
  namespace or its Prometheus pods, by label) and the API server's addresses
  (``internal.apiServerCIDRs``: ``pagerbridge outbox`` reaches the admin API through the
  API server's pod proxy); nothing else (the kubelet's probes come from the node, which
  CNIs that enforce policies admit to their own pods);
- on the public (webhook) port, the peers of ``public.from``, by default every address
  (BigPanda and PagerDuty call from the internet, through whatever ingress the admin runs).

A tenant cannot widen it: the policy is the admin's (the operator's environment,
``PAGERBRIDGE_RELAY_NETWORK_POLICY``, JSON), not a field of the CR. Off by default, and then
the operator neither writes nor holds RBAC for NetworkPolicies.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ENV = "PAGERBRIDGE_RELAY_NETWORK_POLICY"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value.strip(), strict=True))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a CIDR ({exc})") from None


class Peer(_Model):
    """Who may connect: pods by namespace and/or pod labels, or an address block."""

    namespace_selector: dict[str, str] | None = Field(default=None, alias="namespaceSelector")
    pod_selector: dict[str, str] | None = Field(default=None, alias="podSelector")
    cidr: str | None = None

    @field_validator("cidr")
    @classmethod
    def _valid_cidr(cls, value: str | None) -> str | None:
        return None if value is None else _cidr(value)

    @model_validator(mode="after")
    def _one_kind(self) -> Peer:
        selectors = self.namespace_selector is not None or self.pod_selector is not None
        if selectors == (self.cidr is not None):
            raise ValueError("a peer is namespaceSelector/podSelector labels, or a cidr")
        return self

    def render(self) -> dict[str, Any]:
        if self.cidr is not None:
            return {"ipBlock": {"cidr": self.cidr}}
        peer: dict[str, Any] = {}
        if self.namespace_selector is not None:
            peer["namespaceSelector"] = {"matchLabels": dict(self.namespace_selector)}
        if self.pod_selector is not None:
            peer["podSelector"] = {"matchLabels": dict(self.pod_selector)}
        return peer


class InternalPort(_Model):
    from_: tuple[Peer, ...] = Field(default=(), alias="from")
    api_server_cidrs: tuple[str, ...] = Field(default=(), alias="apiServerCIDRs")

    @field_validator("api_server_cidrs")
    @classmethod
    def _valid(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_cidr(v) for v in values)

    def peers(self) -> list[dict[str, Any]]:
        return [
            *(peer.render() for peer in self.from_),
            *({"ipBlock": {"cidr": cidr}} for cidr in self.api_server_cidrs),
        ]


class PublicPort(_Model):
    # Empty: from every address (the default: the webhooks come from the internet).
    from_: tuple[Peer, ...] = Field(default=(), alias="from")


class RelayNetworkPolicy(_Model):
    enabled: bool = False
    internal: InternalPort = InternalPort()
    public: PublicPort = PublicPort()

    @classmethod
    def parse(cls, text: str | None) -> RelayNetworkPolicy:
        """From the operator's environment (JSON; unset or empty: off)."""
        if not text or not text.strip():
            return cls()
        return cls.model_validate_json(text)


def render_policy(
    policy: RelayNetworkPolicy,
    metadata: dict[str, Any],
    selector: dict[str, str],
    public_port: int,
    internal_port: int,
) -> dict[str, Any]:
    """The relay's NetworkPolicy: ingress only (egress is the relay's own allowlist)."""
    public: dict[str, Any] = {"ports": [{"protocol": "TCP", "port": public_port}]}
    if policy.public.from_:
        public["from"] = [peer.render() for peer in policy.public.from_]
    rules = [public]
    internal = policy.internal.peers()
    if internal:  # else no rule: nothing but the node (kubelet probes) reaches the port
        rules.append({"ports": [{"protocol": "TCP", "port": internal_port}], "from": internal})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata,
        "spec": {
            "podSelector": {"matchLabels": dict(selector)},
            "policyTypes": ["Ingress"],
            "ingress": rules,
        },
    }
