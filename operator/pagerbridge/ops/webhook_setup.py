"""The BigPanda webhook configuration of an integration, formatted for a human to paste."""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

from pagerbridge.api import GROUP, INTEGRATION, VERSION
from pagerbridge.clients.kubernetes import (
    Credentials,
    KubernetesClient,
    KubernetesError,
    NotFound,
    Resource,
)
from pagerbridge.controller.render import conditions as c
from pagerbridge.controller.render.status import public_reachability


def reachability_warning(body: dict[str, Any]) -> str | None:
    """The ``RelayPubliclyReachable`` warning of the integration's status (the same
    words), or computed from its spec when the status predates that condition."""
    status = body.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("type") == c.RELAY_PUBLIC:
            return None if condition.get("status") == c.TRUE else str(condition.get("message"))
    public_url = ((body.get("spec") or {}).get("relay") or {}).get("publicUrl")
    url = str((status.get("bigPandaWebhook") or {}).get("url", ""))
    update = public_reachability(public_url, url)
    return None if update.status == c.TRUE else update.message


def format_text(namespace: str, webhook: dict[str, Any], token: str | None) -> str:
    lines = [f"URL: {webhook['url']}", "Headers:"]
    for header in webhook.get("headers", []):
        ref = header.get("valueFrom")
        if ref is not None:
            value = (
                f"Bearer {token}"
                if token is not None
                else (
                    f"Bearer $(kubectl get secret {ref['name']} -n {namespace} "
                    f"-o jsonpath='{{.data.{ref['key']}}}' | base64 -d)"
                )
            )
        else:
            value = header.get("value", "")
        lines.append(f"  {header['name']}: {value}")
    return "\n".join(lines) + "\n"


async def show(
    credentials: Credentials, name: str, namespace: str | None, output: str, reveal: bool
) -> int:
    namespace = namespace or credentials.default_namespace
    async with KubernetesClient(credentials) as kube:
        try:
            body = await kube.get(
                Resource.custom(GROUP, VERSION, INTEGRATION.plural), namespace, name
            )
        except NotFound:
            print(f"PagerDutyIntegration {namespace}/{name} not found", file=sys.stderr)
            return 1
        except KubernetesError as exc:
            print(
                f"cannot read PagerDutyIntegration {namespace}/{name} "
                f"from {credentials.server}: {exc}",
                file=sys.stderr,
            )
            return 1
        webhook = (body.get("status") or {}).get("bigPandaWebhook")
        if not webhook:
            print(
                f"{namespace}/{name} has no webhook configuration yet (see its conditions)",
                file=sys.stderr,
            )
            return 1
        token = None
        if reveal:
            for header in webhook.get("headers", []):
                ref = header.get("valueFrom")
                if ref is not None:
                    try:
                        secret = await kube.get(Resource.builtin("Secret"), namespace, ref["name"])
                    except KubernetesError as exc:
                        print(f"cannot read the token's Secret: {exc}", file=sys.stderr)
                        return 1
                    # During a rotation the file holds old and new: BigPanda gets the newest.
                    token = base64.b64decode(secret["data"][ref["key"]]).decode().split()[-1]
    warning = reachability_warning(body)
    if warning is not None:
        print(f"warning: {warning}", file=sys.stderr)
    if output == "json":
        print(json.dumps(webhook, indent=2))
    else:
        sys.stdout.write(format_text(namespace, webhook, token))
    return 0
