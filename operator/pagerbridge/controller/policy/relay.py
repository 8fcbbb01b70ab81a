"""The admin's policy for the risky relay fields of a tenant's CR.

``spec.relay.image`` decides what code runs with the integration's Secrets mounted, and
``spec.relay.service.type`` whether the relay is exposed outside the cluster. Both are the
cluster admin's call (Helm values ``relayPolicy.*``), not the tenant's:

- an image other than the operator's own relay image must start with an allowed registry
  prefix (default: none, so only the operator's own image runs); a prefix matches up to
  a path boundary, so ``registry.example.com`` does not allow
  ``registry.example.com.evil.io/x``;
- the Service type must be allowed (default: ``ClusterIP`` only);
- the PagerDuty webhook subscription's scope must be allowed (default: ``Service`` and
  ``Team``; ``Account`` sends every incident of the account to the tenant's relay, which
  ignores those it did not create, but sees their ids).

A refusal is a condition (``ImageNotAllowed``, ``ServiceTypeNotAllowed``) and nothing is
rendered for the new spec.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pagerbridge.api import ConditionReason as Reason
from pagerbridge.api import PagerDutyIntegrationSpec
from pagerbridge.api.integration import ServiceType, WebhookScopeType
from pagerbridge.controller.errors import WaitingForInput


class ImageNotAllowed(WaitingForInput):
    reason = Reason.IMAGE_NOT_ALLOWED


class ServiceTypeNotAllowed(WaitingForInput):
    reason = Reason.SERVICE_TYPE_NOT_ALLOWED


class WebhookScopeNotAllowed(WaitingForInput):
    reason = Reason.WEBHOOK_SCOPE_NOT_ALLOWED


@dataclass(frozen=True)
class RelayPolicy:
    image_prefixes: tuple[str, ...] = ()
    service_types: frozenset[str] = frozenset({ServiceType.CLUSTER_IP.value})
    webhook_scopes: frozenset[str] = frozenset(
        {WebhookScopeType.SERVICE.value, WebhookScopeType.TEAM.value}
    )

    @classmethod
    def parse(
        cls,
        prefixes: Iterable[str],
        service_types: Iterable[str],
        webhook_scopes: Iterable[str] = ("Service", "Team"),
    ) -> RelayPolicy:
        types = frozenset(t.strip() for t in service_types if t.strip())
        unknown = types - {t.value for t in ServiceType}
        if unknown:
            raise ValueError(f"relay service types {sorted(unknown)}: not Service types")
        scopes = frozenset(t.strip() for t in webhook_scopes if t.strip())
        unknown = scopes - {t.value for t in WebhookScopeType}
        if unknown:
            raise ValueError(f"webhook scopes {sorted(unknown)}: not Service, Team or Account")
        return cls(tuple(p.strip() for p in prefixes if p.strip()), types, scopes)

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
        scope = spec.pager_duty.webhook_scope.type.value
        if spec.pager_duty.service_id is not None and scope not in self.webhook_scopes:
            raise WebhookScopeNotAllowed(
                f"spec.pagerDuty.webhookScope.type {scope} is not allowed by the cluster admin "
                f"(allowed: {', '.join(sorted(self.webhook_scopes))}; Helm value "
                "relayPolicy.allowedWebhookScopes)"
            )
        service_type = spec.relay.service.type.value
        if service_type not in self.service_types:
            raise ServiceTypeNotAllowed(
                f"spec.relay.service.type {service_type} is not allowed by the cluster admin "
                f"(allowed: {', '.join(sorted(self.service_types))}; Helm value "
                "relayPolicy.allowedServiceTypes)"
            )
