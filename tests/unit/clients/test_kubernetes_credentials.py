"""The Kubernetes client reads kubeconfig credentials without leaving key material on disk."""

from __future__ import annotations

import os
import ssl
import tempfile
from pathlib import Path

import pytest

from pagerbridge.clients.kubeconfig import from_kubeconfig
from pagerbridge_devkit.localcluster import certs
from pagerbridge_devkit.localcluster.kubeconfig import write_admin_kubeconfig


@pytest.fixture
def private_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the tempfile module at an empty directory we can inspect afterwards."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    return scratch


def test_inline_client_certificate_leaves_no_file_behind(
    tmp_path: Path, private_tmpdir: Path
) -> None:
    pki = certs.generate(tmp_path / "pki")
    kubeconfig = write_admin_kubeconfig(
        tmp_path / "kubeconfig",
        "https://127.0.0.1:6443",
        pki.ca_cert,
        pki.admin_cert,
        pki.admin_key,
    )

    connection = from_kubeconfig(kubeconfig)

    assert isinstance(connection.ssl_context, ssl.SSLContext)
    assert connection.ssl_context.verify_mode == ssl.CERT_REQUIRED
    # The CA was loaded from memory and the client key went through a directory that is gone.
    assert connection.ssl_context.cert_store_stats()["x509_ca"] >= 1
    assert list(private_tmpdir.iterdir()) == []


def test_client_certificate_files_are_read_in_place(tmp_path: Path, private_tmpdir: Path) -> None:
    pki = certs.generate(tmp_path / "pki")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: k, cluster: {{server: 'https://127.0.0.1:6443', "
        f"certificate-authority: {os.path.relpath(pki.ca_cert, tmp_path)}}}}}]\n"
        f"users: [{{name: u, user: {{client-certificate: {pki.admin_cert}, "
        f"client-key: {pki.admin_key}}}}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u, namespace: team-a}}]\n"
    )

    connection = from_kubeconfig(kubeconfig)

    assert connection.server == "https://127.0.0.1:6443"
    assert connection.default_namespace == "team-a"
    assert isinstance(connection.ssl_context, ssl.SSLContext)
    assert list(private_tmpdir.iterdir()) == []


async def test_client_and_kopf_login_leave_no_key_material(
    tmp_path: Path, private_tmpdir: Path
) -> None:
    """Both HTTP stacks of the operator (ours and kopf's) get the same in-memory TLS context:
    neither lightkube nor kopf writes the client key to a temporary file."""
    from pagerbridge.clients.kubernetes import KubernetesClient
    from pagerbridge.controller.runtime.login import kopf_session

    pki = certs.generate(tmp_path / "pki")
    kubeconfig = write_admin_kubeconfig(
        tmp_path / "kubeconfig",
        "https://127.0.0.1:6443",
        pki.ca_cert,
        pki.admin_cert,
        pki.admin_key,
    )
    credentials = from_kubeconfig(kubeconfig)
    async with KubernetesClient(credentials):
        session = kopf_session(credentials)
        assert session.server == "https://127.0.0.1:6443"
        await session.aiohttp_session.close()
    assert list(private_tmpdir.iterdir()) == []
