"""The admin's bounds on ``spec.relay.expose`` (tenants are untrusted), and what an allowed
expose resolves to.

An Ingress or HTTPRoute publishes a host name on infrastructure the cluster admin runs, so
the admin decides (Helm values ``relayPolicy.expose.*``, environment
``PAGERBRIDGE_EXPOSE_*``) and every list defaults to empty, which refuses every expose:

- ``ingressClassNames``: IngressClasses a relay Ingress may use; the first is the default
  for an Ingress without ``className``;
- ``gatewayParentRefs``: Gateways (``namespace/name``) an HTTPRoute may attach to; the
  first is the default for an HTTPRoute without ``parentRefs``;
- ``hostSuffixes``: a host must equal one or end with it at a label boundary
  (``example.com`` allows ``a.example.com``, never ``evilexample.com``); ``{namespace}``
  in a suffix stands for the integration's namespace, so ``{namespace}.hooks.example.com``
  gives each tenant its own names and no tenant can claim another's;
- ``clusterIssuers``: cert-manager ClusterIssuers a relay Ingress may name (an Issuer is
  namespaced, the tenant's own, and always allowed).

A refusal is a condition reason (:class:`ExposeNotAllowed` and its subclasses) and, as
with :mod:`.relay_policy`, nothing is rendered for the new spec.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pagerbridge.api import ConditionReason as Reason
from pagerbridge.api.expose import IssuerKind, RelayExpose
from pagerbridge.controller.errors import WaitingForInput

INGRESS = "Ingress"
HTTP_ROUTE = "HTTPRoute"


class ExposeNotAllowed(WaitingForInput):
    reason = Reason.EXPOSE_NOT_ALLOWED


class IngressClassNotAllowed(ExposeNotAllowed):
    reason = Reason.INGRESS_CLASS_NOT_ALLOWED


class GatewayNotAllowed(ExposeNotAllowed):
    reason = Reason.GATEWAY_NOT_ALLOWED


class HostNotAllowed(ExposeNotAllowed):
    reason = Reason.HOST_NOT_ALLOWED


class ClusterIssuerNotAllowed(ExposeNotAllowed):
    reason = Reason.CLUSTER_ISSUER_NOT_ALLOWED


@dataclass(frozen=True)
class ParentRef:
    namespace: str
    name: str
    section_name: str | None = None


@dataclass(frozen=True)
class Exposure:
    """An allowed expose with the admin's defaults filled in: what gets rendered."""

    kind: str  # INGRESS or HTTP_ROUTE
    host: str
    public_url: str
    class_name: str | None = None  # Ingress
    tls_secret: str | None = None  # Ingress
    issuer: tuple[str, str] | None = None  # Ingress: (annotation, issuer name)
    parent_refs: tuple[ParentRef, ...] = ()  # HTTPRoute


def _parent(text: str) -> tuple[str, str]:
    namespace, slash, name = text.partition("/")
    if not slash or not namespace or not name or "/" in name:
        raise ValueError(f"gateway parentRef {text!r}: expected NAMESPACE/NAME")
    return namespace, name


@dataclass(frozen=True)
class ExposePolicy:
    ingress_class_names: tuple[str, ...] = ()
    gateway_parent_refs: tuple[tuple[str, str], ...] = ()  # (namespace, name)
    host_suffixes: tuple[str, ...] = ()
    cluster_issuers: frozenset[str] = frozenset()

    @classmethod
    def parse(
        cls,
        ingress_class_names: Iterable[str] = (),
        gateway_parent_refs: Iterable[str] = (),
        host_suffixes: Iterable[str] = (),
        cluster_issuers: Iterable[str] = (),
    ) -> ExposePolicy:
        def clean(items: Iterable[str]) -> tuple[str, ...]:
            return tuple(item.strip() for item in items if item.strip())

        suffixes = tuple(s.lower().lstrip(".") for s in clean(host_suffixes))
        if any(not s for s in suffixes):
            raise ValueError("host suffix '.': would allow every host; list real suffixes")
        return cls(
            clean(ingress_class_names),
            tuple(_parent(p) for p in clean(gateway_parent_refs)),
            suffixes,
            frozenset(clean(cluster_issuers)),
        )

    def host_allowed(self, host: str, namespace: str) -> bool:
        host = host.lower()
        for pattern in self.host_suffixes:
            suffix = pattern.replace("{namespace}", namespace)
            if host == suffix or host.endswith("." + suffix):
                return True
        return False

    def decide(self, expose: RelayExpose, namespace: str) -> Exposure:
        """The exposure to render, or the refusal (raised) that names the Helm value."""
        route = expose.ingress or expose.http_route
        assert route is not None  # the model wants exactly one
        if not self.host_allowed(route.host, namespace):
            allowed = ", ".join(s.replace("{namespace}", namespace) for s in self.host_suffixes)
            raise HostNotAllowed(
                f"spec.relay.expose host {route.host} is not under a host suffix the cluster "
                f"admin allows (allowed: {allowed or 'none'}; Helm value "
                "relayPolicy.expose.hostSuffixes)"
            )
        if expose.ingress is not None:
            return self._ingress(expose, namespace)
        return self._http_route(expose, namespace)

    def _ingress(self, expose: RelayExpose, namespace: str) -> Exposure:
        ingress = expose.ingress
        assert ingress is not None
        class_name = ingress.class_name or next(iter(self.ingress_class_names), None)
        if class_name is None or class_name not in self.ingress_class_names:
            raise IngressClassNotAllowed(
                f"spec.relay.expose.ingress.className {class_name or '(unset)'} is not an "
                "IngressClass the cluster admin allows (allowed: "
                f"{', '.join(self.ingress_class_names) or 'none'}; Helm value "
                "relayPolicy.expose.ingressClassNames)"
            )
        issuer = None
        tls = ingress.tls
        if tls is not None and tls.issuer is not None:
            if tls.issuer.kind is IssuerKind.CLUSTER_ISSUER:
                if tls.issuer.name not in self.cluster_issuers:
                    raise ClusterIssuerNotAllowed(
                        f"spec.relay.expose.ingress.tls.issuer: ClusterIssuer "
                        f"{tls.issuer.name} is not allowed by the cluster admin (allowed: "
                        f"{', '.join(sorted(self.cluster_issuers)) or 'none'}; Helm value "
                        "relayPolicy.expose.clusterIssuers)"
                    )
                issuer = ("cert-manager.io/cluster-issuer", tls.issuer.name)
            else:
                issuer = ("cert-manager.io/issuer", tls.issuer.name)
        return Exposure(
            kind=INGRESS,
            host=ingress.host,
            public_url=expose.public_url,
            class_name=class_name,
            tls_secret=tls.secret_name if tls is not None else None,
            issuer=issuer,
        )

    def _http_route(self, expose: RelayExpose, namespace: str) -> Exposure:
        route = expose.http_route
        assert route is not None
        if route.parent_refs:
            parents = tuple(
                ParentRef(ref.namespace or namespace, ref.name, ref.section_name)
                for ref in route.parent_refs
            )
        elif self.gateway_parent_refs:
            parents = (ParentRef(*self.gateway_parent_refs[0]),)
        else:
            parents = ()
        refused = [p for p in parents if (p.namespace, p.name) not in self.gateway_parent_refs]
        if not parents or refused:
            named = ", ".join(f"{p.namespace}/{p.name}" for p in refused) or "(unset)"
            allowed = ", ".join(f"{ns}/{name}" for ns, name in self.gateway_parent_refs)
            raise GatewayNotAllowed(
                f"spec.relay.expose.httpRoute.parentRefs {named}: not a Gateway the cluster "
                f"admin allows (allowed: {allowed or 'none'}; Helm value "
                "relayPolicy.expose.gatewayParentRefs)"
            )
        return Exposure(
            kind=HTTP_ROUTE, host=route.host, public_url=expose.public_url, parent_refs=parents
        )
