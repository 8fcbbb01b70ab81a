"""Render the Ingress or HTTPRoute of ``spec.relay.expose``: a pure function of the owner,
the relay Service's port and the :class:`.expose_policy.Exposure` the admin's policy
allowed.

Only the two webhook paths are routed, as exact matches, to the relay Service's port
(named ``http``: the public webhook port); the relay's health, metrics and OpenAPI
endpoints are never published. The object is named like the relay (and its Service) and
owned by the integration, so deleting the integration deletes it.
"""

from __future__ import annotations

from typing import Any

from pagerbridge.api.contract import BIGPANDA_WEBHOOK_PATH, PAGERDUTY_WEBHOOK_PATH
from pagerbridge.controller.policy.expose import INGRESS, Exposure
from pagerbridge.controller.render.children import Owner

Manifest = dict[str, Any]

WEBHOOK_PATHS = (BIGPANDA_WEBHOOK_PATH, PAGERDUTY_WEBHOOK_PATH)
GATEWAY_GROUP = "gateway.networking.k8s.io"


def _metadata(owner: Owner, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    if annotations:
        return owner.metadata(owner.names.relay, annotations=annotations)
    return owner.metadata(owner.names.relay)


def render_ingress(owner: Owner, service_port: int, exposure: Exposure) -> Manifest:
    backend = {"service": {"name": owner.names.relay, "port": {"number": service_port}}}
    spec: dict[str, Any] = {
        "rules": [
            {
                "host": exposure.host,
                "http": {
                    "paths": [
                        {"path": path, "pathType": "Exact", "backend": backend}
                        for path in WEBHOOK_PATHS
                    ]
                },
            }
        ]
    }
    if exposure.class_name is not None:
        spec = {"ingressClassName": exposure.class_name, **spec}
    if exposure.tls_secret is not None:
        spec["tls"] = [{"hosts": [exposure.host], "secretName": exposure.tls_secret}]
    annotations = dict([exposure.issuer]) if exposure.issuer is not None else None
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": _metadata(owner, annotations),
        "spec": spec,
    }


def render_http_route(owner: Owner, service_port: int, exposure: Exposure) -> Manifest:
    parents = []
    for parent in exposure.parent_refs:
        ref: dict[str, Any] = {
            "group": GATEWAY_GROUP,
            "kind": "Gateway",
            "namespace": parent.namespace,
            "name": parent.name,
        }
        if parent.section_name is not None:
            ref["sectionName"] = parent.section_name
        parents.append(ref)
    return {
        "apiVersion": f"{GATEWAY_GROUP}/v1",
        "kind": "HTTPRoute",
        "metadata": _metadata(owner),
        "spec": {
            "parentRefs": parents,
            "hostnames": [exposure.host],
            "rules": [
                {
                    "matches": [{"path": {"type": "Exact", "value": p}} for p in WEBHOOK_PATHS],
                    "backendRefs": [
                        {
                            "group": "",
                            "kind": "Service",
                            "name": owner.names.relay,
                            "port": service_port,
                        }
                    ],
                }
            ],
        },
    }


def render_exposure(owner: Owner, service_port: int, exposure: Exposure) -> Manifest:
    if exposure.kind == INGRESS:
        return render_ingress(owner, service_port, exposure)
    return render_http_route(owner, service_port, exposure)
