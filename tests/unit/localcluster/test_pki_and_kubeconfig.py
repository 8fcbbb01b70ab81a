"""The local control plane's PKI and kubeconfig files (no binaries needed)."""

from __future__ import annotations

import base64
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from pagerbridge_devkit.localcluster import Binaries, BinariesNotFound, certs, find_binaries
from pagerbridge_devkit.localcluster.binaries import NAMES
from pagerbridge_devkit.localcluster.kubeconfig import write_admin_kubeconfig
from pagerbridge_devkit.ports import free_port


def _text(cert: Path) -> str:
    return subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> certs.Pki:
    return certs.generate(tmp_path_factory.mktemp("pki"))


def test_certificates_chain_to_the_ca(pki: certs.Pki) -> None:
    for cert in (pki.serving_cert, pki.admin_cert):
        verify = subprocess.run(
            ["openssl", "verify", "-CAfile", str(pki.ca_cert), str(cert)],
            capture_output=True,
            text=True,
        )
        assert verify.returncode == 0, verify.stderr


def test_serving_cert_names_loopback(pki: certs.Pki) -> None:
    text = _text(pki.serving_cert)
    assert "IP Address:127.0.0.1" in text
    assert "DNS:localhost" in text
    assert "TLS Web Server Authentication" in text


def test_admin_is_a_system_master(pki: certs.Pki) -> None:
    text = _text(pki.admin_cert)
    assert f"O = {certs.ADMIN_GROUP}" in text
    assert f"CN = {certs.ADMIN_USER}" in text
    assert "TLS Web Client Authentication" in text


def test_private_keys_are_owner_only(pki: certs.Pki) -> None:
    for key in (pki.ca_key, pki.serving_key, pki.admin_key, pki.sa_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert "PUBLIC KEY" in pki.sa_pub.read_text()


def test_admin_kubeconfig_is_self_contained_and_private(pki: certs.Pki, tmp_path: Path) -> None:
    path = write_admin_kubeconfig(
        tmp_path / "kubeconfig",
        "https://127.0.0.1:6443",
        pki.ca_cert,
        pki.admin_cert,
        pki.admin_key,
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = yaml.safe_load(path.read_text())
    cluster = config["clusters"][0]["cluster"]
    assert cluster["server"] == "https://127.0.0.1:6443"
    assert base64.b64decode(cluster["certificate-authority-data"]) == pki.ca_cert.read_bytes()
    user = config["users"][0]["user"]
    assert base64.b64decode(user["client-key-data"]) == pki.admin_key.read_bytes()
    assert config["current-context"] == config["contexts"][0]["name"]


def test_free_port_is_bindable() -> None:
    import socket

    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_missing_binaries_are_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGERBRIDGE_TOOLS_DIR", str(tmp_path))
    with pytest.raises(BinariesNotFound, match="kube-apiserver"):
        find_binaries(build=False)
    assert [p.name for p in Binaries.in_dir(tmp_path).missing()] == list(NAMES)
