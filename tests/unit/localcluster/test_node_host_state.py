"""The real node's preconditions and host bookkeeping that need no root to check."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from pagerbridge_devkit.localcluster import certs, node


def test_not_root_gives_one_clear_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert node.unavailable_reason() == (
        "a real node needs root (containerd, runc, network namespaces, cgroups)"
    )


def test_not_linux_gives_one_clear_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert node.unavailable_reason() == "a real node needs Linux (this is darwin)"


def test_host_snapshot_round_trips_through_the_state_file() -> None:
    snapshot = node.HostSnapshot(
        sysctls={"net.ipv4.ip_forward": "0"},
        iptables={"nat": [":PREROUTING ACCEPT"]},
        netns=["other"],
        cgroups=["cpu/user.slice"],
        bridge=False,
    )
    assert node.HostSnapshot.from_json(snapshot.to_json()) == snapshot


def test_teardown_without_a_recorded_node_does_nothing(tmp_path: Path) -> None:
    assert node.teardown(tmp_path / "never-started") == []
    assert not (tmp_path / "never-started").exists()


def test_api_server_certificate_is_valid_for_the_pod_side_addresses(tmp_path: Path) -> None:
    """Pods verify the API server at the kubernetes Service's ClusterIP and through the
    bridge gateway it advertises."""
    import subprocess

    pki = certs.generate(tmp_path)
    text = subprocess.run(
        ["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(pki.serving_cert)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "IP Address:10.96.0.1" in text
    assert f"IP Address:{node.GATEWAY}" in text
