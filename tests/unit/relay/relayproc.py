"""A real relay process for tests and benchmarks: config and secret files on disk,
``python -m pagerbridge relay`` on a free loopback port, killed in teardown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from pagerbridge_devkit.ports import free_port

WEBHOOK_TOKEN = "relay-inbound-token-Zq8vR2nK5tL9wX3y"
PD_WEBHOOK_SECRET = "pd-webhook-secret-Hs7dJ2kL9mQ4vB6n"


def write_config(
    tmp: Path,
    *,
    pd_url: str,
    bp_url: str | None = None,
    routing_key: str,
    pd_api_token: str | None = None,
    bp_api_token: str | None = None,
    bp_environment: str | None = None,
    webhook_secrets: list[str] | None = None,
    extra: dict[str, Any] | None = None,
    outbox: Path | None = None,
    admin_token: str | None = None,
    pd_service_id: str | None = None,
) -> Path:
    """Write a RelayConfig plus its secret files under ``tmp``; returns the config path."""
    secrets = tmp / "secrets"
    secrets.mkdir(exist_ok=True)
    (secrets / "routing-key").write_text(routing_key + "\n")
    (secrets / "webhook-token").write_text(WEBHOOK_TOKEN + "\n")
    pd: dict[str, Any] = {
        "eventsUrl": pd_url,
        "apiUrl": pd_url,
        "routingKeyFile": str(secrets / "routing-key"),
        "fromEmail": "pagerbridge@example.com",
    }
    if pd_service_id:
        pd["serviceId"] = pd_service_id
    if pd_api_token:
        (secrets / "pd-api-token").write_text(pd_api_token)
        pd["apiTokenFile"] = str(secrets / "pd-api-token")
    if webhook_secrets:
        (secrets / "pd-webhook-secret").write_text("\n".join(webhook_secrets) + "\n")
        pd["webhookSecretFile"] = str(secrets / "pd-webhook-secret")
    bp: dict[str, Any] = {"webhookTokenFile": str(secrets / "webhook-token")}
    if bp_url:
        bp["apiUrl"] = bp_url
    if bp_api_token:
        (secrets / "bp-api-token").write_text(bp_api_token)
        bp["apiTokenFile"] = str(secrets / "bp-api-token")
    if bp_environment:
        bp["environmentId"] = bp_environment
    config: dict[str, Any] = {
        "pagerDuty": pd,
        "bigPanda": bp,
        "outboxPath": str(outbox or tmp / "outbox.db"),
    }
    if admin_token:
        (secrets / "admin-token").write_text(admin_token + "\n")
        config["adminTokenFile"] = str(secrets / "admin-token")
    config.update(extra or {})
    path = tmp / "relay-config.json"
    tmp_path = tmp / "relay-config.json.tmp"
    tmp_path.write_text(json.dumps(config, indent=2))
    os.replace(tmp_path, path)
    return path


class RelayProcess:
    def __init__(
        self,
        config: Path,
        log_path: Path,
        args: list[str] | None = None,
        cpu: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.env = env
        self.config = config
        self.log_path = log_path
        self.args = args or []
        self.cpu = cpu
        self.port = free_port()
        self.internal_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The public port: the two webhook paths only."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def internal_url(self) -> str:
        """The internal port: probes, metrics, OpenAPI, admin API."""
        return f"http://127.0.0.1:{self.internal_port}"

    def start(self, timeout: float = 60.0) -> RelayProcess:
        cmd = [
            sys.executable,
            "-m",
            "pagerbridge",
            "relay",
            "--config",
            str(self.config),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--internal-port",
            str(self.internal_port),
            *self.args,
        ]
        if self.cpu is not None:
            cmd = ["taskset", "-c", str(self.cpu), *cmd]
        log = self.log_path.open("ab")
        env = {**os.environ, **self.env} if self.env else None
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"relay exited with {self.proc.returncode}: {self.logs()[-2000:]}"
                )
            try:
                if httpx.get(self.internal_url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError("relay did not become healthy: " + self.logs()[-2000:])

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait: the graceful path."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def restart(self) -> RelayProcess:
        self.kill()
        return self.start()

    def post_bigpanda(
        self,
        body: Any,
        headers: dict[str, str] | None = None,
        token: str | None = WEBHOOK_TOKEN,
    ) -> httpx.Response:
        h = {"Content-Type": "application/json"}
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        h.update(headers or {})
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.post(self.url + "/v1/bigpanda/webhook", content=data, headers=h, timeout=10)

    def peak_rss(self) -> int:
        """The process's peak resident set size so far, in bytes (the kernel's high-water
        mark, ``VmHWM``: exact, where sampling ``psutil``'s RSS could miss a spike)."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmHWM in /proc/<pid>/status")

    def metrics(self) -> str:
        return httpx.get(self.internal_url + "/metrics", timeout=5).text

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        total = 0.0
        for line in self.metrics().splitlines():
            if not line.startswith(name) or line.startswith("#"):
                continue
            head, _, value = line.rpartition(" ")
            metric_name = head.split("{")[0]
            if metric_name != name:
                continue
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                total += float(value)
        return total
