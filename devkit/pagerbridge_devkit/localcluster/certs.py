"""Throwaway PKI of a local control plane, made with the ``openssl`` command line.

One CA signs the API server's serving certificate (SANs 127.0.0.1, localhost) and the admin
client certificate (group ``system:masters``); a separate key pair signs service-account
tokens. EC P-256 keys keep generation fast.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

ADMIN_USER = "pagerbridge-admin"
ADMIN_GROUP = "system:masters"
_DAYS = "30"


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def _key(path: Path) -> None:
    _openssl(
        "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(path), cwd=path.parent
    )
    path.chmod(0o600)


def _signed_cert(
    directory: Path, name: str, subject: str, extensions: str, ca_cert: Path, ca_key: Path
) -> tuple[Path, Path]:
    key, csr, cert, ext = (directory / f"{name}{s}" for s in (".key", ".csr", ".crt", ".ext"))
    _key(key)
    _openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr), cwd=directory)
    ext.write_text(extensions)
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", _DAYS, "-sha256", "-extfile", str(ext), "-out", str(cert),
        cwd=directory,
    )  # fmt: skip
    csr.unlink()
    ext.unlink()
    return cert, key


def generate(directory: Path) -> Pki:
    """Writes a fresh PKI into ``directory`` (created if needed)."""
    if shutil.which("openssl") is None:
        raise RuntimeError("the openssl command is needed to make the control plane's certificates")
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = directory / "ca.key", directory / "ca.crt"
    _key(ca_key)
    _openssl(
        "req", "-x509", "-new", "-key", str(ca_key), "-subj", "/CN=pagerbridge-local-ca",
        "-days", _DAYS, "-sha256", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", str(ca_cert),
        cwd=directory,
    )  # fmt: skip
    serving_cert, serving_key = _signed_cert(
        directory,
        "apiserver",
        "/CN=kube-apiserver",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,IP:10.244.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
        "DNS:kubernetes.default.svc\n",
        ca_cert,
        ca_key,
    )
    admin_cert, admin_key = _signed_cert(
        directory,
        "admin",
        f"/O={ADMIN_GROUP}/CN={ADMIN_USER}",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=clientAuth\n",
        ca_cert,
        ca_key,
    )
    sa_key, sa_pub = directory / "sa.key", directory / "sa.pub"
    _key(sa_key)
    _openssl("ec", "-in", str(sa_key), "-pubout", "-out", str(sa_pub), cwd=directory)
    return Pki(ca_cert, ca_key, serving_cert, serving_key, admin_cert, admin_key, sa_key, sa_pub)
