"""Where the Kubernetes API is and who we are to it: one loader for the whole process.

:func:`load_credentials` reads, like ``kubectl``:

- in a pod (``KUBERNETES_SERVICE_HOST`` and a mounted token), the ServiceAccount: the server
  ``https://HOST:PORT`` (an IPv6 host gets its brackets), the mounted CA, and the token
  *file*, re-read when it changes and on a 401 (the kubelet rotates bound tokens);
- otherwise the kubeconfig: ``--kubeconfig`` or every file of ``KUBECONFIG`` (``a:b``, merged
  like kubectl: the first file that names a cluster, user, context or current-context wins;
  missing files are skipped) or ``~/.kube/config``.

A kubeconfig entry may give: ``certificate-authority[-data]``, ``insecure-skip-tls-verify``,
``tls-server-name``, ``proxy-url``, ``client-certificate[-data]`` / ``client-key[-data]``,
``token``, ``tokenFile``, ``username``/``password`` and ``exec`` (client-go credential
plugins, as EKS, GKE and AKS use). Relative paths are relative to the file that holds them.

The result, :class:`Credentials`, feeds both HTTP stacks of the operator: the Kubernetes
client of :mod:`pagerbridge.clients.kubernetes` (httpx) and kopf's login handler (aiohttp),
so the process has one authentication story. Secret material lives only in memory: client
keys reach :mod:`ssl` through a private directory removed at once, tokens only in
``Authorization`` headers, never in messages. Every user error (no kubeconfig, unknown
context, a broken file) is a :class:`KubeconfigError` with a message fit for a terminal.
"""

from __future__ import annotations

import base64
import os
import socket
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pagerbridge.clients.kube_auth import (
    BasicAuth,
    ExecPlugin,
    KubeconfigError,
    StaticToken,
    TokenFile,
    TokenSource,
)

__all__ = ["Credentials", "KubeconfigError", "load_credentials"]

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DEFAULT_KUBECONFIG = Path("~/.kube/config")


class ServerNameContext(ssl.SSLContext):
    """An SSL context that presents and verifies ``tls-server-name`` instead of the URL's host.

    Both asyncio (aiohttp, anyio/httpx) and blocking sockets go through ``wrap_bio`` /
    ``wrap_socket``; the name given by the caller (the host of the URL) is replaced.
    """

    tls_server_name: str = ""

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        return super().wrap_bio(
            incoming, outgoing, server_side, self.tls_server_name or server_hostname, session
        )

    def wrap_socket(
        self,
        sock: socket.socket,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLSocket:
        return super().wrap_socket(
            sock,
            server_side,
            do_handshake_on_connect,
            suppress_ragged_eofs,
            self.tls_server_name or server_hostname,
            session,
        )


@dataclass(frozen=True)
class Credentials:
    """The API server's address, how to trust it, and how to authenticate to it."""

    server: str
    ssl_context: ssl.SSLContext
    auth: TokenSource | None = None
    proxy_url: str | None = None
    default_namespace: str = "default"
    source: str = ""  # where they came from, for messages ("in-cluster", a file's path)
    context_name: str = ""


def server_url(host: str, port: str | int, scheme: str = "https") -> str:
    """``scheme://host:port`` with the brackets an IPv6 literal needs."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


# -- TLS ------------------------------------------------------------------------------------


def _ssl_context(
    *,
    ca: bytes | None,
    insecure: bool,
    tls_server_name: str | None,
    client_cert: bytes | None,
    client_key: bytes | None,
) -> ssl.SSLContext:
    # A cluster CA replaces the system's trust store (as kubectl does), it is not added to it.
    context: ssl.SSLContext = (
        ServerNameContext(ssl.PROTOCOL_TLS_CLIENT)
        if tls_server_name
        else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    )
    if isinstance(context, ServerNameContext) and tls_server_name:
        context.tls_server_name = tls_server_name
    if ca:
        context.load_verify_locations(cadata=ca.decode("ascii"))
    elif not insecure:
        context.load_default_certs()
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if client_cert and client_key:
        load_client_certificate(context, client_cert, client_key)
    return context


def load_client_certificate(context: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    """Load a client certificate and key given as bytes.

    ``ssl`` only reads them from files, so they go to a private temporary directory
    (mode 0700) that is removed as soon as the context has read them: no key material
    is left on disk.
    """
    with tempfile.TemporaryDirectory(prefix="pagerbridge-kube-") as tmp:
        cert_path, key_path = Path(tmp) / "client.crt", Path(tmp) / "client.key"
        for target, content in ((cert_path, cert), (key_path, key)):
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
        context.load_cert_chain(str(cert_path), str(key_path))


# -- kubeconfig -----------------------------------------------------------------------------


@dataclass
class _Merged:
    """kubeconfig entries by name, each with the directory its relative paths start from."""

    clusters: dict[str, tuple[dict[str, Any], Path]] = field(default_factory=dict)
    users: dict[str, tuple[dict[str, Any], Path]] = field(default_factory=dict)
    contexts: dict[str, dict[str, Any]] = field(default_factory=dict)
    current_context: str | None = None
    files: list[Path] = field(default_factory=list)

    def add(self, path: Path) -> None:
        try:
            config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError) as exc:
            raise KubeconfigError(
                f"cannot read kubeconfig {path}: {exc.__class__.__name__}"
            ) from None
        except yaml.YAMLError:
            raise KubeconfigError(f"kubeconfig {path} is not valid YAML") from None
        if not isinstance(config, dict):
            raise KubeconfigError(f"kubeconfig {path} is not a kubeconfig (not a mapping)")
        base = path.parent
        self.files.append(path)
        for section, key, target in (
            ("clusters", "cluster", self.clusters),
            ("users", "user", self.users),
        ):
            for entry in config.get(section) or []:
                if isinstance(entry, dict) and "name" in entry:
                    target.setdefault(str(entry["name"]), (entry.get(key) or {}, base))
        for entry in config.get("contexts") or []:
            if isinstance(entry, dict) and "name" in entry:
                self.contexts.setdefault(str(entry["name"]), entry.get("context") or {})
        if self.current_context is None and config.get("current-context"):
            self.current_context = str(config["current-context"])


def kubeconfig_paths(kubeconfig: str | Path | None = None) -> list[Path]:
    """The kubeconfig files to read: the given one, or ``KUBECONFIG``'s, or the default."""
    if kubeconfig:
        path = Path(kubeconfig).expanduser()
        if not path.is_file():
            raise KubeconfigError(f"kubeconfig {path} not found")
        return [path]
    env = os.environ.get("KUBECONFIG", "")
    if env:
        paths = [Path(p).expanduser() for p in env.split(os.pathsep) if p]
        existing = [p for p in paths if p.is_file()]
        if not existing:
            raise KubeconfigError(f"none of the KUBECONFIG files exists: {env}")
        return existing
    default = DEFAULT_KUBECONFIG.expanduser()
    if not default.is_file():
        raise KubeconfigError(
            f"no kubeconfig: {default} does not exist and KUBECONFIG is not set "
            "(give --kubeconfig, or run in a pod with a ServiceAccount)"
        )
    return [default]


def _bytes(data_b64: Any, path: Any, base: Path, what: str) -> bytes | None:
    if data_b64:
        try:
            return base64.b64decode(str(data_b64), validate=True)
        except ValueError:
            raise KubeconfigError(f"{what}-data is not valid base64") from None
    if path:
        full = base / Path(str(path)).expanduser()
        try:
            return full.read_bytes()
        except OSError as exc:
            raise KubeconfigError(f"cannot read {what} {full}: {exc.__class__.__name__}") from None
    return None


def _user_auth(user: dict[str, Any], base: Path, cluster: dict[str, Any]) -> TokenSource | None:
    if user.get("token"):
        return StaticToken(str(user["token"]))
    if user.get("tokenFile"):
        return TokenFile(base / Path(str(user["tokenFile"])).expanduser())
    if user.get("exec"):
        return ExecPlugin.from_kubeconfig(user["exec"], base, cluster)
    if user.get("username") and user.get("password"):
        return BasicAuth(str(user["username"]), str(user["password"]))
    if user.get("auth-provider"):
        name = (user["auth-provider"] or {}).get("name", "?")
        raise KubeconfigError(
            f"auth-provider {name!r} is not supported: use an exec credential plugin "
            "(kubelogin, gke-gcloud-auth-plugin, aws eks get-token)"
        )
    return None


def from_kubeconfig(
    kubeconfig: str | Path | None = None, context: str | None = None
) -> Credentials:
    """Credentials of the current (or named) context of the kubeconfig file(s)."""
    merged = _Merged()
    for path in kubeconfig_paths(kubeconfig):
        merged.add(path)
    where = os.pathsep.join(str(p) for p in merged.files)
    context_name = context or merged.current_context
    if not context_name:
        raise KubeconfigError(f"no current-context in {where} (give --context)")
    if context_name not in merged.contexts:
        known = ", ".join(sorted(merged.contexts)) or "none"
        raise KubeconfigError(f"context {context_name!r} not found in {where} (known: {known})")
    ctx = merged.contexts[context_name]
    cluster_name = str(ctx.get("cluster", ""))
    if cluster_name not in merged.clusters:
        raise KubeconfigError(f"context {context_name!r}: cluster {cluster_name!r} not found")
    cluster, cluster_base = merged.clusters[cluster_name]
    user: dict[str, Any] = {}
    user_base = cluster_base
    if ctx.get("user"):
        if str(ctx["user"]) not in merged.users:
            raise KubeconfigError(f"context {context_name!r}: user {ctx['user']!r} not found")
        user, user_base = merged.users[str(ctx["user"])]
    server = str(cluster.get("server") or "").rstrip("/")
    if not server.startswith(("https://", "http://")):
        raise KubeconfigError(f"cluster {cluster_name!r} has no valid server URL")
    context_ssl = _ssl_context(
        ca=_bytes(
            cluster.get("certificate-authority-data"),
            cluster.get("certificate-authority"),
            cluster_base,
            "certificate-authority",
        ),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        tls_server_name=cluster.get("tls-server-name"),
        client_cert=_bytes(
            user.get("client-certificate-data"),
            user.get("client-certificate"),
            user_base,
            "client-certificate",
        ),
        client_key=_bytes(
            user.get("client-key-data"), user.get("client-key"), user_base, "client-key"
        ),
    )
    return Credentials(
        server=server,
        ssl_context=context_ssl,
        auth=_user_auth(user, user_base, {**cluster, "server": server}),
        proxy_url=cluster.get("proxy-url") or None,
        default_namespace=str(ctx.get("namespace") or "default"),
        source=where,
        context_name=context_name,
    )


def in_cluster(account_dir: Path = SERVICE_ACCOUNT_DIR) -> Credentials:
    """The pod's ServiceAccount; the token file is re-read when the kubelet rotates it."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST", "")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise KubeconfigError("not in a pod: KUBERNETES_SERVICE_HOST is not set")
    try:
        namespace = (account_dir / "namespace").read_text().strip()
        ca = (account_dir / "ca.crt").read_bytes()
    except OSError as exc:
        raise KubeconfigError(f"cannot read the ServiceAccount in {account_dir}: {exc}") from None
    return Credentials(
        server=server_url(host, port),
        ssl_context=_ssl_context(
            ca=ca, insecure=False, tls_server_name=None, client_cert=None, client_key=None
        ),
        auth=TokenFile(account_dir / "token"),
        default_namespace=namespace or "default",
        source="in-cluster",
        context_name="in-cluster",
    )


def running_in_cluster(account_dir: Path = SERVICE_ACCOUNT_DIR) -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and (account_dir / "token").exists()


def load_credentials(
    kubeconfig: str | Path | None = None, context: str | None = None
) -> Credentials:
    """``--kubeconfig``/``--context`` when given; else in a pod its ServiceAccount; else the
    kubeconfig files."""
    if kubeconfig is None and context is None and running_in_cluster():
        return in_cluster()
    return from_kubeconfig(kubeconfig, context)
