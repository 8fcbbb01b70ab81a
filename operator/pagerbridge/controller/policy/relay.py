"""The admin's policy for the risky relay fields of a tenant's CR.

``spec.relay.image`` decides what code runs with the integration's Secrets mounted, and
``spec.relay.service.type`` whether the relay is exposed outside the cluster. Both are the
cluster admin's call (Helm values ``relayPolicy.*``), not the tenant's:

- an image other than the operator's own relay image must start with an allowed registry
  prefix (default: none, so only the operator's own image runs); a prefix matches up to
  a path boundary, so ``registry.example.com`` does not allow
  ``registry.example.com.evil.io/x``;
- the Service type must be allowed (default: ``ClusterIP`` only).

A refusal is a condition (``ImageNotAllowed``, ``ServiceTypeNotAllowed``) and nothing is
rendered for the new spec.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pagerbridge.api import ConditionReason as Reason
from pagerbridge.api import PagerDutyIntegrationSpec
from pagerbridge.api.integration import ServiceType
from pagerbridge.controller.errors import WaitingForInput


class ImageNotAllowed(WaitingForInput):
    reason = Reason.IMAGE_NOT_ALLOWED


class ServiceTypeNotAllowed(WaitingForInput):
    reason = Reason.SERVICE_TYPE_NOT_ALLOWED


@dataclass(frozen=True)
class RelayPolicy:
    image_prefixes: tuple[str, ...] = ()
    service_types: frozenset[str] = frozenset({ServiceType.CLUSTER_IP.value})

    @classmethod
    def parse(cls, prefixes: Iterable[str], service_types: Iterable[str]) -> RelayPolicy:
        types = frozenset(t.strip() for t in service_types if t.strip())
        unknown = types - {t.value for t in ServiceType}
        if unknown:
            raise ValueError(f"relay service types {sorted(unknown)}: not Service types")
        return cls(tuple(p.strip() for p in prefixes if p.strip()), types)

    def image_allowed(self, image: str, own_image: str) -> bool:
        if image == own_image:
            return True
        for prefix in self.image_prefixes:
            if image.startswith(prefix) and (
                prefix.endswith("/") or image[len(prefix) : len(prefix) + 1] in ("/", ":", "@")
            ):
                return True
        return False

    def check_spec(self, spec: PagerDutyIntegrationSpec, own_image: str) -> None:
        image = spec.relay.image
        if image is not None and not self.image_allowed(image, own_image):
            raise ImageNotAllowed(
                f"spec.relay.image {image!r} is not under a registry prefix the cluster admin "
                "allows (Helm value relayPolicy.allowedImagePrefixes)"
            )
        service_type = spec.relay.service.type.value
        if service_type not in self.service_types:
            raise ServiceTypeNotAllowed(
                f"spec.relay.service.type {service_type} is not allowed by the cluster admin "
                f"(allowed: {', '.join(sorted(self.service_types))}; Helm value "
                "relayPolicy.allowedServiceTypes)"
            )
