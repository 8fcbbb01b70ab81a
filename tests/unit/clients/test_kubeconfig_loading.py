"""The kubeconfig loader reads what kubectl reads: several files, relative paths, IPv6, exec
plugins, token files, and says what is wrong without a traceback."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml

from pagerbridge.clients.kube_auth import ExecPlugin, KubeconfigError, StaticToken, TokenFile
from pagerbridge.clients.kubeconfig import (
    ServerNameContext,
    from_kubeconfig,
    in_cluster,
    load_credentials,
    server_url,
)
from pagerbridge_devkit.localcluster import certs


def write(path: Path, config: dict[str, object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def kubeconfig(
    clusters: dict[str, dict[str, object]] | None = None,
    users: dict[str, dict[str, object]] | None = None,
    contexts: dict[str, dict[str, object]] | None = None,
    current: str | None = None,
) -> dict[str, object]:
    config: dict[str, object] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": k, "cluster": v} for k, v in (clusters or {}).items()],
        "users": [{"name": k, "user": v} for k, v in (users or {}).items()],
        "contexts": [{"name": k, "context": v} for k, v in (contexts or {}).items()],
    }
    if current:
        config["current-context"] = current
    return config


# -- several files ------------------------------------------------------------------------


def test_kubeconfig_variable_with_several_files_is_merged_like_kubectl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pki = certs.generate(tmp_path / "pki")
    (tmp_path / "b" / "ca.crt").parent.mkdir(parents=True)
    (tmp_path / "b" / "ca.crt").write_bytes(pki.ca_cert.read_bytes())
    (tmp_path / "a" / "token").parent.mkdir(parents=True)
    (tmp_path / "a" / "token").write_text("token-from-a\n")
    # a: the current-context and the user (a relative tokenFile, relative to a/);
    # b: the context and the cluster (a relative CA path, relative to b/), plus a
    # current-context and a same-named user that must both lose to a's.
    first = write(
        tmp_path / "a" / "config",
        kubeconfig(users={"me": {"tokenFile": "token"}}, current="work"),
    )
    second = write(
        tmp_path / "b" / "config",
        kubeconfig(
            clusters={
                "prod": {"server": "https://127.0.0.1:6443", "certificate-authority": "ca.crt"}
            },
            users={"me": {"token": "token-from-b"}},
            contexts={"work": {"cluster": "prod", "user": "me", "namespace": "team-a"}},
            current="elsewhere",
        ),
    )
    monkeypatch.setenv(
        "KUBECONFIG", os.pathsep.join([str(first), str(tmp_path / "gone"), str(second)])
    )
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)

    credentials = load_credentials()

    assert credentials.server == "https://127.0.0.1:6443"
    assert credentials.default_namespace == "team-a"
    assert credentials.context_name == "work"
    assert isinstance(credentials.auth, TokenFile)
    assert credentials.auth.path == tmp_path / "a" / "token"
    assert credentials.ssl_context.cert_store_stats()["x509_ca"] == 1


async def test_relative_token_file_is_read_from_the_kubeconfig_folder_and_re_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "token").write_text("first\n")
    path = write(
        tmp_path / "conf" / "config",
        kubeconfig(
            clusters={"c": {"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True}},
            users={"u": {"tokenFile": "token"}},
            contexts={"x": {"cluster": "c", "user": "u"}},
            current="x",
        ),
    )
    monkeypatch.chdir(tmp_path)  # not the kubeconfig's folder
    auth = from_kubeconfig(path).auth
    assert auth is not None
    assert await auth.header() == "Bearer first"
    replacement = tmp_path / "conf" / "token.new"
    replacement.write_text("second\n")
    replacement.replace(tmp_path / "conf" / "token")  # how the kubelet swaps it: a rename
    assert await auth.header() == "Bearer second"


def test_context_flag_picks_another_context(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config",
        kubeconfig(
            clusters={
                "a": {"server": "https://a.example:443"},
                "b": {"server": "https://b.example:443"},
            },
            users={"u": {"token": "t"}},
            contexts={"one": {"cluster": "a", "user": "u"}, "two": {"cluster": "b", "user": "u"}},
            current="one",
        ),
    )
    assert from_kubeconfig(path).server == "https://a.example:443"
    assert from_kubeconfig(path, context="two").server == "https://b.example:443"
    assert isinstance(from_kubeconfig(path).auth, StaticToken)


# -- user errors --------------------------------------------------------------------------


def test_unknown_context_names_the_known_ones(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config",
        kubeconfig(
            clusters={"a": {"server": "https://a.example:443"}},
            contexts={"one": {"cluster": "a"}},
            current="one",
        ),
    )
    with pytest.raises(KubeconfigError, match=r"context 'nope' not found .*known: one"):
        from_kubeconfig(path, context="nope")


def test_missing_kubeconfig_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(KubeconfigError, match="not found"):
        load_credentials(tmp_path / "absent")
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'x'}{os.pathsep}{tmp_path / 'y'}")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(KubeconfigError, match="none of the KUBECONFIG files exists"):
        load_credentials()


def test_auth_provider_is_refused_with_a_pointer_to_exec_plugins(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config",
        kubeconfig(
            clusters={"a": {"server": "https://a.example:443"}},
            users={"u": {"auth-provider": {"name": "gcp", "config": {"access-token": "s3cret"}}}},
            contexts={"one": {"cluster": "a", "user": "u"}},
            current="one",
        ),
    )
    with pytest.raises(KubeconfigError, match="exec credential plugin") as caught:
        from_kubeconfig(path)
    assert "s3cret" not in str(caught.value)


# -- IPv6, tls-server-name, proxy-url -----------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("10.96.0.1", "https://10.96.0.1:443"),
        ("fd00:10:96::1", "https://[fd00:10:96::1]:443"),
        ("::1", "https://[::1]:443"),
        ("[::1]", "https://[::1]:443"),
        ("kubernetes.default.svc", "https://kubernetes.default.svc:443"),
    ],
)
def test_server_url_brackets_ipv6_hosts(host: str, expected: str) -> None:
    assert server_url(host, 443) == expected


def test_in_cluster_ipv6_service_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pki = certs.generate(tmp_path / "pki")
    account = tmp_path / "sa"
    account.mkdir()
    (account / "ca.crt").write_bytes(pki.ca_cert.read_bytes())
    (account / "namespace").write_text("pagerbridge-system")
    (account / "token").write_text("sa-token")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00:10:96::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")

    credentials = in_cluster(account)

    assert credentials.server == "https://[fd00:10:96::1]:443"
    assert credentials.default_namespace == "pagerbridge-system"
    assert isinstance(credentials.auth, TokenFile)


def test_tls_server_name_and_proxy_url_are_kept(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config",
        kubeconfig(
            clusters={
                "a": {
                    "server": "https://[2001:db8::10]:6443",
                    "tls-server-name": "api.internal",
                    "proxy-url": "http://proxy.example:3128",
                }
            },
            contexts={"one": {"cluster": "a"}},
            current="one",
        ),
    )
    credentials = from_kubeconfig(path)
    assert credentials.server == "https://[2001:db8::10]:6443"
    assert credentials.proxy_url == "http://proxy.example:3128"
    assert isinstance(credentials.ssl_context, ServerNameContext)
    assert credentials.ssl_context.tls_server_name == "api.internal"


# -- exec plugins -------------------------------------------------------------------------


def exec_plugin_script(folder: Path, expiration: str | None) -> Path:
    """A credential plugin that prints the token in ./token and counts its runs in ./runs."""
    expiry = f'"expirationTimestamp":"{expiration}",' if expiration else ""
    script = folder / "bin" / "get-token"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(
        "#!/bin/sh\n"
        'here="$(cd "$(dirname "$0")/.." && pwd)"\n'
        'echo run >> "$here/runs"\n'
        'case "$KUBERNETES_EXEC_INFO" in *ExecCredential*) ;; *) exit 3 ;; esac\n'
        '[ "$PLUGIN_MODE" = test ] || exit 4\n'
        'token="$(cat "$here/token" 2>/dev/null)"\n'
        'printf \'{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",'
        f'"status":{{{expiry}"token":"%s"}}}}\' "$token"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def exec_kubeconfig(folder: Path, api_version: str = "client.authentication.k8s.io/v1") -> Path:
    return write(
        folder / "config",
        kubeconfig(
            clusters={"a": {"server": "https://127.0.0.1:6443"}},
            users={
                "u": {
                    "exec": {
                        "apiVersion": api_version,
                        "command": "./bin/get-token",  # relative to the kubeconfig's folder
                        "args": [],
                        "env": [{"name": "PLUGIN_MODE", "value": "test"}],
                        "interactiveMode": "Never",
                    }
                }
            },
            contexts={"one": {"cluster": "a", "user": "u"}},
            current="one",
        ),
    )


async def test_exec_plugin_token_is_cached_until_a_401(tmp_path: Path) -> None:
    exec_plugin_script(tmp_path, expiration=None)
    (tmp_path / "token").write_text("one")
    auth = from_kubeconfig(exec_kubeconfig(tmp_path)).auth
    assert isinstance(auth, ExecPlugin)

    assert await auth.header() == "Bearer one"
    assert await auth.header() == "Bearer one"
    assert (tmp_path / "runs").read_text().count("run") == 1

    (tmp_path / "token").write_text("two")
    auth.invalidate()  # what a 401 does
    assert await auth.header() == "Bearer two"
    assert (tmp_path / "runs").read_text().count("run") == 2


async def test_exec_plugin_runs_again_when_its_credential_expires(tmp_path: Path) -> None:
    exec_plugin_script(tmp_path, expiration="2000-01-01T00:00:00Z")
    (tmp_path / "token").write_text("old")
    auth = from_kubeconfig(exec_kubeconfig(tmp_path)).auth
    assert auth is not None
    assert await auth.header() == "Bearer old"
    (tmp_path / "token").write_text("new")
    assert await auth.header() == "Bearer new"  # expired at once: ran again
    assert (tmp_path / "runs").read_text().count("run") == 2


async def test_failing_exec_plugin_is_a_kubeconfig_error(tmp_path: Path) -> None:
    exec_plugin_script(tmp_path, expiration=None)
    # no ./token file: cat fails, the plugin prints an empty token
    auth = from_kubeconfig(exec_kubeconfig(tmp_path)).auth
    assert auth is not None
    with pytest.raises(KubeconfigError, match="returned no token"):
        await auth.header()


def test_unsupported_exec_api_version_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError, match="apiVersion"):
        from_kubeconfig(exec_kubeconfig(tmp_path, "client.authentication.k8s.io/v1alpha1"))
