"""Standard Kubernetes authentication, against the real API server: an exec credential
plugin (how EKS, GKE and AKS log in) serving a ServiceAccount token to both the CLI and the
operator, a token rotated (and the old one revoked) while the operator runs, and the
network settings of a kubeconfig (an IPv6 server address, ``tls-server-name``,
``proxy-url``)."""

from __future__ import annotations

import base64
import contextlib
import os
import select
import socket
import ssl
import stat
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from pagerbridge_devkit.localcluster.kubelet import HarnessKubelet
from pagerbridge_devkit.ports import free_port
from pagerbridge_devkit.sandbox.pagerduty import PagerDutySimulator

from ..conftest import Cluster
from .conftest import OperatorProcess, condition, get_json, integration, pd_secret, wait_for

pytestmark = pytest.mark.e2e


# -- a ServiceAccount whose tokens can be revoked ------------------------------------------


class Account:
    """A cluster-admin ServiceAccount; each token is bound to a Secret, so deleting the
    Secret revokes that token (the API server then answers 401)."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.cluster, self.namespace = cluster, namespace
        self.name = f"pb-auth-{uuid.uuid4().hex[:6]}"
        cluster.kubectl("create", "serviceaccount", self.name, "-n", namespace)
        cluster.kubectl(
            "create",
            "clusterrolebinding",
            self.name,
            "--clusterrole=cluster-admin",
            f"--serviceaccount={namespace}:{self.name}",
        )

    def token(self, binding: str) -> str:
        self.cluster.kubectl("create", "secret", "generic", binding, "-n", self.namespace)
        return self.cluster.kubectl(
            "create",
            "token",
            self.name,
            "-n",
            self.namespace,
            "--bound-object-kind=Secret",
            f"--bound-object-name={binding}",
            "--duration=1h",
        ).stdout.strip()

    def revoke(self, binding: str) -> None:
        self.cluster.kubectl("delete", "secret", binding, "-n", self.namespace)

    def close(self) -> None:
        self.cluster.kubectl("delete", "clusterrolebinding", self.name, check=False)


@pytest.fixture
def account(cluster: Cluster, namespace: str) -> Iterator[Account]:
    handle = Account(cluster, namespace)
    yield handle
    handle.close()


def admin_cluster_entry(cluster: Cluster) -> dict[str, Any]:
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    current = config["current-context"]
    context = next(c["context"] for c in config["contexts"] if c["name"] == current)
    entry: dict[str, Any] = next(
        c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"]
    )
    entry = dict(entry)
    if "certificate-authority" in entry:
        entry["certificate-authority-data"] = base64.b64encode(
            Path(entry.pop("certificate-authority")).read_bytes()
        ).decode()
    return entry


def write_kubeconfig(
    path: Path, cluster_entry: dict[str, Any], user: dict[str, Any], namespace: str
) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster_entry}],
        "users": [{"name": "u", "user": user}],
        "contexts": [
            {"name": "x", "context": {"cluster": "c", "user": "u", "namespace": namespace}}
        ],
        "current-context": "x",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def write_token(folder: Path, token: str) -> None:
    """Replace ``folder/token`` atomically, as the kubelet rotates a projected token."""
    staged = folder / f".token-{uuid.uuid4().hex}"
    staged.write_text(token + "\n")
    staged.replace(folder / "token")


def exec_kubeconfig(folder: Path, cluster: Cluster, namespace: str) -> Path:
    """A kubeconfig whose user is an exec plugin (a relative command) printing ./token."""
    plugin = folder / "bin" / "token-plugin"
    plugin.parent.mkdir(parents=True, exist_ok=True)
    plugin.write_text(
        "#!/bin/sh\n"
        'here="$(cd "$(dirname "$0")/.." && pwd)"\n'
        'echo run >> "$here/runs"\n'
        'printf \'{"apiVersion":"client.authentication.k8s.io/v1",'
        '"kind":"ExecCredential","status":{"token":"%s"}}\' "$(cat "$here/token")"\n'
    )
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": "./bin/token-plugin",
            "interactiveMode": "Never",
        }
    }
    return write_kubeconfig(folder / "config", admin_cluster_entry(cluster), user, namespace)


def pagerbridge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pagerbridge", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def rejected(cluster: Cluster, token: str) -> bool:
    """The API server refuses this token (401)."""
    entry = admin_cluster_entry(cluster)
    ca = base64.b64decode(entry["certificate-authority-data"]).decode()

    context = ssl.create_default_context(cadata=ca)
    response = httpx.get(
        f"{entry['server']}/api/v1/namespaces",
        headers={"Authorization": f"Bearer {token}"},
        verify=context,
    )
    return response.status_code == 401


def test_exec_plugin_serves_cli_and_operator_and_survives_token_rotation(
    cluster: Cluster,
    namespace: str,
    account: Account,
    kubelet: HarnessKubelet,
    pagerduty: tuple[PagerDutySimulator, str],
    tmp_path: Path,
) -> None:
    _, pd_url = pagerduty
    folder = tmp_path / "exec"
    folder.mkdir()
    write_token(folder, account.token("auth-1"))
    kubeconfig = exec_kubeconfig(folder, cluster, namespace)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=pd_secret())
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=integration("before", pd_url))

    operator = OperatorProcess(
        cluster,
        namespace,
        tmp_path / "operator.log",
        free_port(),
        free_port(),
        # Only the exec kubeconfig: no admin credentials anywhere in the environment. Short
        # watches, so kopf reconnects (and authenticates again) after the rotation.
        extra_env={
            "KUBECONFIG": str(kubeconfig),
            "PAGERBRIDGE_WATCH_SERVER_TIMEOUT": "5",
            "PAGERBRIDGE_WATCH_CLIENT_TIMEOUT": "10",
        },
    )
    operator.start()
    try:
        wait_for(
            lambda: (
                condition(get_json(cluster, namespace, "pdi", "before")).get("status") == "True"
            ),
            90,
            "Ready through the exec plugin",
        )
        # The CLI, with the same kubeconfig (given by flag; KUBECONFIG unset).
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        shown = pagerbridge(
            "webhook-config", "before", "-n", namespace, "--kubeconfig", str(kubeconfig), env=env
        )
        assert shown.returncode == 0, shown.stderr
        assert "URL: " in shown.stdout
        runs_before = (folder / "runs").read_text().count("run")

        # Rotate: a new token in the file, the old one revoked.
        old = (folder / "token").read_text().strip()
        write_token(folder, account.token("auth-2"))
        account.revoke("auth-1")
        wait_for(lambda: rejected(cluster, old), 30, "the old token to be revoked")

        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=integration("after", pd_url))
        wait_for(
            lambda: condition(get_json(cluster, namespace, "pdi", "after")).get("status") == "True",
            90,
            "Ready after the rotation",
        )
        shown = pagerbridge(
            "webhook-config", "after", "-n", namespace, "--kubeconfig", str(kubeconfig), env=env
        )
        assert shown.returncode == 0, shown.stderr
        # The plugin ran again: a 401 made the operator ask for a fresh credential.
        assert (folder / "runs").read_text().count("run") > runs_before
        assert operator.process is not None
        assert operator.process.poll() is None
        log = operator.log()
        assert "APIUnauthorizedError" not in log
        assert old not in log
        assert (folder / "token").read_text().strip() not in log
    finally:
        operator.stop()


def test_relative_token_file_rotated_while_the_operator_runs(
    cluster: Cluster,
    namespace: str,
    account: Account,
    kubelet: HarnessKubelet,
    pagerduty: tuple[PagerDutySimulator, str],
    tmp_path: Path,
) -> None:
    _, pd_url = pagerduty
    folder = tmp_path / "tokenfile"
    folder.mkdir()
    write_token(folder, account.token("file-1"))
    kubeconfig = write_kubeconfig(
        folder / "config", admin_cluster_entry(cluster), {"tokenFile": "token"}, namespace
    )
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=pd_secret())
    operator = OperatorProcess(
        cluster,
        namespace,
        tmp_path / "operator.log",
        free_port(),
        free_port(),
        extra_env={
            "KUBECONFIG": str(kubeconfig),
            "PAGERBRIDGE_WATCH_SERVER_TIMEOUT": "5",
            "PAGERBRIDGE_WATCH_CLIENT_TIMEOUT": "10",
        },
    )
    # Started from another directory: the token file is found next to the kubeconfig.
    operator.start()
    try:
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=integration("one", pd_url))
        wait_for(
            lambda: condition(get_json(cluster, namespace, "pdi", "one")).get("status") == "True",
            90,
            "Ready with the token file",
        )
        old = (folder / "token").read_text().strip()
        write_token(folder, account.token("file-2"))
        account.revoke("file-1")
        wait_for(lambda: rejected(cluster, old), 30, "the old token to be revoked")
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=integration("two", pd_url))
        wait_for(
            lambda: condition(get_json(cluster, namespace, "pdi", "two")).get("status") == "True",
            90,
            "Ready after the token file rotated",
        )
        assert operator.process is not None
        assert operator.process.poll() is None
        assert "APIUnauthorizedError" not in operator.log()
    finally:
        operator.stop()


# -- IPv6 server address, tls-server-name and proxy-url ------------------------------------


class Forwarder:
    """A TCP forwarder listening on ``[::1]`` to the API server (which listens on IPv4 only),
    optionally acting as an HTTP CONNECT proxy; records what it was asked to connect to."""

    def __init__(self, target: tuple[str, int], proxy: bool = False) -> None:
        self.target, self.proxy = target, proxy
        self.connects: list[str] = []
        self.server = socket.create_server(("::1", 0), family=socket.AF_INET6)
        self.port = self.server.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.server.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:  # closed
                return
            threading.Thread(target=self._pipe, args=(client,), daemon=True).start()

    def _pipe(self, client: socket.socket) -> None:
        with contextlib.ExitStack() as stack:
            stack.enter_context(client)
            if self.proxy:
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = client.recv(4096)
                    if not chunk:
                        return
                    request += chunk
                line = request.split(b"\r\n", 1)[0].decode()
                self.connects.append(line)
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            upstream = stack.enter_context(socket.create_connection(self.target))
            sockets = [client, upstream]
            while not self._stop.is_set():
                readable, _, _ = select.select(sockets, [], [], 0.2)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is client else client).sendall(data)

    def close(self) -> None:
        self._stop.set()
        self.server.close()


def test_ipv6_server_with_tls_server_name_and_proxy_url(
    cluster: Cluster, namespace: str, account: Account, tmp_path: Path
) -> None:
    entry = admin_cluster_entry(cluster)
    server = httpx.URL(entry["server"])
    assert server.host
    assert server.port
    token = account.token("net-1")
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}

    def webhook_config(
        cluster_entry: dict[str, Any], name: str
    ) -> subprocess.CompletedProcess[str]:
        path = write_kubeconfig(
            tmp_path / name / "config", cluster_entry, {"token": token}, namespace
        )
        return pagerbridge("webhook-config", "absent", "--kubeconfig", str(path), env=env)

    forwarder = Forwarder((server.host, server.port))
    proxy = Forwarder((server.host, server.port), proxy=True)
    try:
        ipv6 = {**entry, "server": f"https://[::1]:{forwarder.port}"}
        # The serving certificate names localhost and 127.0.0.1, not ::1: only the
        # tls-server-name makes the TLS check pass.
        refused = webhook_config(ipv6, "plain")
        assert refused.returncode == 1
        assert "cannot read" in refused.stderr
        assert "Traceback" not in refused.stderr

        named = webhook_config({**ipv6, "tls-server-name": "localhost"}, "named")
        # Connected, authenticated and authorized: the integration itself is absent.
        assert named.returncode == 1, named.stderr
        assert f"PagerDutyIntegration {namespace}/absent not found" in named.stderr

        proxied = webhook_config(
            {
                **entry,
                "server": f"https://localhost:{server.port}",
                "proxy-url": f"http://[::1]:{proxy.port}",
            },
            "proxied",
        )
        assert f"PagerDutyIntegration {namespace}/absent not found" in proxied.stderr
        assert proxy.connects == [f"CONNECT localhost:{server.port} HTTP/1.1"]
    finally:
        forwarder.close()
        proxy.close()
