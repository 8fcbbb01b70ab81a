"""``pagerbridge_operator_api_requests_total``: each request's verb and resource, never an
object's name or namespace (the series stay few at any scale)."""

from __future__ import annotations

import pytest

from pagerbridge.controller.metrics import api_request

APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
PDI = "pagerdutyintegrations"


@pytest.mark.parametrize(
    ("method", "path", "query", "content_type", "expected"),
    [
        ("GET", "/api/v1/namespaces/ns/secrets/pd", "", "", ("get", "secrets")),
        ("GET", "/api/v1/namespaces/ns/pods", "labelSelector=a%3Db", "", ("list", "pods")),
        ("GET", "/api/v1/namespaces/ns/secrets", "watch=true&x=1", "", ("watch", "secrets")),
        ("POST", "/api/v1/namespaces/ns/configmaps", "", "", ("create", "configmaps")),
        ("PATCH", "/apis/apps/v1/namespaces/ns/deployments/r", "", APPLY, ("apply", "deployments")),
        (
            "PATCH",
            "/apis/pagerbridge.io/v1alpha1/namespaces/ns/pagerdutyintegrations/i/status",
            "",
            MERGE,
            ("patch", "pagerdutyintegrations/status"),
        ),
        ("GET", "/api/v1/namespaces/ns/pods/p:9090/proxy/readyz", "", "", ("get", "pods/proxy")),
        ("GET", "/api/v1/namespaces/kube-system", "", "", ("get", "namespaces")),
        (
            "GET",
            "/apis/pagerbridge.io/v1alpha1/pagerdutyintegrations",
            "",
            "",
            ("list", "pagerdutyintegrations"),
        ),
        ("DELETE", "/api/v1/namespaces/ns/services/r", "", "", ("delete", "services")),
        (
            "PUT",
            "/apis/coordination.k8s.io/v1/namespaces/ns/leases/l",
            "",
            "",
            ("update", "leases"),
        ),
        ("GET", "/version", "", "", ("get", "version")),
    ],
)
def test_verb_and_resource(
    method: str, path: str, query: str, content_type: str, expected: tuple[str, str]
) -> None:
    assert api_request(method, path, query, content_type) == expected
