"""``spec.relay.expose``: an Ingress or a Gateway API HTTPRoute the operator creates for the
relay, so BigPanda and PagerDuty (SaaS, on the internet) can reach it.

Only the two webhook paths are routed (exact matches), to the relay Service's port; the
relay's other endpoints stay cluster-internal. ``relay.publicUrl``, when not set, is the
route's address: ``https://<host>`` with TLS (an Ingress with ``tls``, or an HTTPRoute,
whose Gateway terminates TLS unless ``scheme: http``), else ``http://<host>``.

Tenants write these fields but the cluster admin bounds them (Helm values
``relayPolicy.expose.*``: ingress classes, Gateways, host suffixes, ClusterIssuers); the
operator refuses the rest with a condition reason (:mod:`pagerbridge.controller.policy.expose`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Field, model_validator

from pagerbridge.api._base import CamelModel
from pagerbridge.api.common import ObjectName

# A fully qualified DNS name of at least two labels, lower case, no wildcard, no port.
Hostname = Annotated[
    str,
    Field(
        min_length=3,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$",
        description="Fully qualified host name (lower case, no wildcard, no port) at which "
        "BigPanda and PagerDuty reach the relay; must end with a suffix the cluster admin "
        "allows (Helm value relayPolicy.expose.hostSuffixes).",
    ),
]


class IssuerKind(StrEnum):
    ISSUER = "Issuer"
    CLUSTER_ISSUER = "ClusterIssuer"


class CertManagerIssuer(CamelModel):
    """A cert-manager issuer that fills ``tls.secretName`` with a certificate for the host
    (rendered as the ``cert-manager.io/issuer`` or ``cert-manager.io/cluster-issuer``
    annotation of the Ingress)."""

    name: ObjectName = Field(description="Name of the Issuer or ClusterIssuer.")
    kind: IssuerKind = Field(
        default=IssuerKind.ISSUER,
        description="Issuer (in the integration's namespace; default) or ClusterIssuer (must "
        "be allowed by the cluster admin: Helm value relayPolicy.expose.clusterIssuers).",
    )


class IngressTLS(CamelModel):
    """TLS of the Ingress: the public URL becomes https://<host>."""

    secret_name: ObjectName = Field(
        description="Secret (type kubernetes.io/tls, in the integration's namespace) holding "
        "the certificate for the host; written by cert-manager when issuer is set."
    )
    issuer: CertManagerIssuer | None = Field(
        default=None, description="cert-manager issuer of the certificate (default: none)."
    )


class IngressExpose(CamelModel):
    """An Ingress (networking.k8s.io/v1) named like the relay, routing the two webhook paths
    to the relay Service."""

    host: Hostname
    class_name: ObjectName | None = Field(
        default=None,
        description="IngressClass; must be one the cluster admin allows (Helm value "
        "relayPolicy.expose.ingressClassNames). Default: the first allowed class.",
    )
    tls: IngressTLS | None = Field(
        default=None,
        description="TLS for the host (default: none, and the public URL is http://<host>).",
    )


class ParentReference(CamelModel):
    """A Gateway the HTTPRoute attaches to (Gateway API parentRef)."""

    name: ObjectName = Field(description="Name of the Gateway.")
    namespace: ObjectName | None = Field(
        default=None, description="Namespace of the Gateway (default: the integration's)."
    )
    section_name: ObjectName | None = Field(
        default=None, description="Listener of the Gateway (default: every listener)."
    )


class UrlScheme(StrEnum):
    HTTPS = "https"
    HTTP = "http"


class HTTPRouteExpose(CamelModel):
    """A Gateway API HTTPRoute (gateway.networking.k8s.io/v1) named like the relay, routing
    the two webhook paths to the relay Service. Needs the Gateway API CRDs in the cluster
    (else condition RelayPubliclyReachable=False, reason GatewayAPINotInstalled)."""

    host: Hostname
    parent_refs: list[ParentReference] = Field(
        default_factory=list,
        max_length=8,
        description="Gateways to attach to; each must be one the cluster admin allows (Helm "
        "value relayPolicy.expose.gatewayParentRefs). Default: the first allowed Gateway.",
    )
    scheme: UrlScheme = Field(
        default=UrlScheme.HTTPS,
        description="Scheme of the public URL: https (default; the Gateway's listener "
        "terminates TLS) or http.",
    )


class RelayExpose(CamelModel):
    """How the operator exposes the relay: exactly one of ingress or httpRoute."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.ingress) != has(self.httpRoute)",
                    "message": "relay.expose needs exactly one of ingress or httpRoute",
                }
            ]
        }
    )

    ingress: IngressExpose | None = Field(
        default=None, description="Expose the relay through an Ingress."
    )
    http_route: HTTPRouteExpose | None = Field(
        default=None, description="Expose the relay through a Gateway API HTTPRoute."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> RelayExpose:
        if (self.ingress is None) == (self.http_route is None):
            raise ValueError("relay.expose needs exactly one of ingress or httpRoute")
        return self

    @property
    def public_url(self) -> str:
        """The base URL the route serves (no trailing slash)."""
        if self.ingress is not None:
            scheme = "https" if self.ingress.tls is not None else "http"
            return f"{scheme}://{self.ingress.host}"
        assert self.http_route is not None
        return f"{self.http_route.scheme.value}://{self.http_route.host}"
