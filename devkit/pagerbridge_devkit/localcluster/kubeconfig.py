"""Kubeconfig files: the admin one of a local control plane, and ServiceAccount ones.

A ServiceAccount kubeconfig carries a short-lived token from the TokenRequest API
(``kubectl create token``), so RBAC tests can act as the operator's or relay's own account
against any cluster, local or not.
"""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def _write(path: Path, cluster: dict[str, Any], user: dict[str, str], namespace: str) -> Path:
    context: dict[str, str] = {"cluster": "pagerbridge", "user": "user"}
    if namespace:
        context["namespace"] = namespace
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "pagerbridge", "cluster": cluster}],
        "users": [{"name": "user", "user": user}],
        "contexts": [{"name": "pagerbridge", "context": context}],
        "current-context": "pagerbridge",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # Credentials inside: readable by the owner only, from the first byte on.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        yaml.safe_dump(config, out, sort_keys=False)
    return path


def write_admin_kubeconfig(
    path: Path, server: str, ca_cert: Path, client_cert: Path, client_key: Path
) -> Path:
    """A self-contained kubeconfig (certificates embedded) for the admin client identity."""
    user = {
        "client-certificate-data": _b64(client_cert),
        "client-key-data": _b64(client_key),
    }
    cluster = {"server": server, "certificate-authority-data": _b64(ca_cert)}
    return _write(path, cluster, user, namespace="")


def service_account_kubeconfig(
    admin_kubeconfig: Path,
    kubectl: Path | str,
    namespace: str,
    service_account: str,
    path: Path,
    duration: str = "1h",
) -> Path:
    """Writes a kubeconfig acting as ``namespace/service_account`` (created if missing)."""
    env = {**os.environ, "KUBECONFIG": str(admin_kubeconfig)}

    def kubectl_run(*args: str) -> str:
        result = subprocess.run(
            [str(kubectl), *args], env=env, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"kubectl {args[0]} {args[1]} failed: {result.stderr.strip()}")
        return result.stdout

    exists = subprocess.run(
        [str(kubectl), "get", "serviceaccount", service_account, "-n", namespace],
        env=env,
        capture_output=True,
        check=False,
    )
    if exists.returncode != 0:
        kubectl_run("create", "serviceaccount", service_account, "-n", namespace)
    token = kubectl_run(
        "create", "token", service_account, "-n", namespace, f"--duration={duration}"
    ).strip()
    admin: dict[str, Any] = yaml.safe_load(admin_kubeconfig.read_text(encoding="utf-8"))
    current = admin["current-context"]
    context = next(c["context"] for c in admin["contexts"] if c["name"] == current)
    cluster = next(c["cluster"] for c in admin["clusters"] if c["name"] == context["cluster"])
    # Same server and trust settings as the admin's, with the CA embedded.
    sa_cluster = dict(cluster)
    if "certificate-authority" in sa_cluster:
        sa_cluster["certificate-authority-data"] = _b64(
            Path(sa_cluster.pop("certificate-authority"))
        )
    return _write(path, sa_cluster, {"token": token}, namespace=namespace)
