"""Rendering of the relay's two ports: webhooks public, everything else internal.

The Service (what an Ingress, HTTPRoute or LoadBalancer exposes) carries the public port
only; probes use the internal one; the relay finds its admin token and identity in its
RelayConfig, and the token's Secret is mounted.
"""

from __future__ import annotations

from pagerbridge.api.contract import (
    RELAY_INTERNAL_PORT,
    RELAY_INTERNAL_PORT_FLAG,
    RELAY_INTERNAL_PORT_NAME,
    RELAY_PORT_FLAG,
    RELAY_PUBLIC_PORT,
    RELAY_PUBLIC_PORT_NAME,
)
from pagerbridge.cli import build_parser
from pagerbridge.controller import names as n
from pagerbridge.controller.render.children import render_admin_secret, render_children

from .builders import OWNER, SETTINGS, compiled_for, spec


def test_probes_on_the_internal_port_and_service_only_public() -> None:
    s = spec()
    children = render_children(OWNER, s, compiled_for(s), SETTINGS)
    container = children.deployment["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {
        RELAY_PUBLIC_PORT_NAME: RELAY_PUBLIC_PORT,
        RELAY_INTERNAL_PORT_NAME: RELAY_INTERNAL_PORT,
    }
    assert RELAY_PUBLIC_PORT != RELAY_INTERNAL_PORT
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == RELAY_INTERNAL_PORT_NAME
    command = container["command"]
    assert command[command.index(RELAY_PORT_FLAG) + 1] == str(RELAY_PUBLIC_PORT)
    assert command[command.index(RELAY_INTERNAL_PORT_FLAG) + 1] == str(RELAY_INTERNAL_PORT)
    parsed = build_parser().parse_args(command[1:])
    assert (parsed.port, parsed.internal_port) == (RELAY_PUBLIC_PORT, RELAY_INTERNAL_PORT)
    service_ports = children.service["spec"]["ports"]
    assert [p["targetPort"] for p in service_ports] == [RELAY_PUBLIC_PORT_NAME]


def test_admin_token_and_identity_reach_the_relay() -> None:
    s = spec()
    compiled = compiled_for(s)
    names = n.ChildNames(OWNER.name)
    assert compiled.config.admin_token_file == n.secret_file(names.admin_secret, "token")
    assert compiled.config.integration is not None
    assert (compiled.config.integration.namespace, compiled.config.integration.name) == (
        OWNER.namespace,
        OWNER.name,
    )
    deployment = render_children(OWNER, s, compiled, SETTINGS).deployment
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert n.secret_mount_dir(names.admin_secret) in mounts
    secret = render_admin_secret(OWNER, "generated")
    assert secret["metadata"]["name"] == names.admin_secret
    assert secret["metadata"]["ownerReferences"][0]["uid"] == OWNER.uid
    assert secret["stringData"] == {n.ADMIN_TOKEN_KEY: "generated"}
