"""A chart release for the e2e tests: ``helm install`` with given values, what it grants,
and the operator run locally with the release's arguments as its ServiceAccount.

A support module, not a test module: the chart tests import from here (and their fixtures
from this folder's conftest), never from each other.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from pagerbridge_devkit.ports import free_port
from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_ROUTING_KEY
from pagerbridge_devkit.sandbox.server import loopback_egress_env

from ..conftest import REPO, Cluster
from ..kube import condition, get_json, start_operator, stop_operator, wait_for

CHART = REPO / "charts" / "pagerbridge"
# An RBAC denial as the API server words it (a 403 for a terminating namespace is not one).
PERMISSION_ERROR = re.compile(r'forbidden: User \\?"system:serviceaccount:|Not enough permissions')


@dataclasses.dataclass
class Release:
    name: str
    namespace: str
    service_account: str
    operator_args: list[str]
    kubeconfig: Path  # acts as the chart's ServiceAccount
    role_kind: str
    role_name: str
    role_namespace: str | None


AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"


def aggregated(doc: dict[str, Any]) -> bool:
    labels = doc["metadata"].get("labels", {})
    return any(label.startswith(AGGREGATE) for label in labels)


def install(
    cluster: Cluster, tmp_path: Path, *values: str, into: str | None = None, roles_expected: int = 1
) -> Iterator[Release]:
    """``helm install`` into a namespace of its own, or ``into`` an existing one
    (``roles_expected``: the operator's Roles, one per watched namespace; the first is
    the Release's)."""
    name = f"pb-{uuid.uuid4().hex[:6]}"
    namespace = into or f"{name}-system"
    if into is None:
        cluster.kubectl("create", "namespace", namespace)
    try:
        # The session applied crds/ already (not owned by a release): the chart leaves them.
        cluster.helm(
            "install", name, str(CHART), "--namespace", namespace, "--set", "crds.enabled=false",
            *values,
        )  # fmt: skip
        manifest = cluster.helm("get", "manifest", name, "--namespace", namespace).stdout
        docs = [doc for doc in yaml.safe_load_all(manifest) if doc]
        (account,) = [d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"]
        (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
        roles = [
            d
            for d in docs
            if d["kind"] in {"Role", "ClusterRole"}
            and not aggregated(d)
            and not d["metadata"]["name"].endswith(("-leader-election", "-accounts"))
        ]
        assert len(roles) == roles_expected, "one Role per watched namespace or one ClusterRole"
        kubeconfig = cluster.service_account_kubeconfig(
            namespace, account, tmp_path / f"{name}.kubeconfig"
        )
        yield Release(
            name=name,
            namespace=namespace,
            service_account=account,
            operator_args=deployment["spec"]["template"]["spec"]["containers"][0]["args"],
            kubeconfig=kubeconfig,
            role_kind=roles[0]["kind"],
            role_name=roles[0]["metadata"]["name"],
            role_namespace=roles[0]["metadata"].get("namespace"),
        )
    finally:
        cluster.helm("uninstall", name, "--namespace", namespace, check=False)
        if into is None:
            cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@dataclasses.dataclass
class ChartOperator:
    """`pagerbridge <the chart's args>`, as the chart's ServiceAccount, on loopback ports."""

    release: Release
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    extra_env: dict[str, str] = dataclasses.field(default_factory=dict)

    def start(self) -> None:
        args = []
        for arg in self.release.operator_args:
            if arg.startswith("--liveness="):
                arg = f"--liveness=http://127.0.0.1:{free_port()}/healthz"
            elif arg.startswith("--metrics-port="):
                arg = f"--metrics-port={free_port()}"
            args.append(arg)
        env = {
            **os.environ,
            "KUBECONFIG": str(self.release.kubeconfig),
            "PAGERBRIDGE_RESYNC_SECONDS": "3",
            "PAGERBRIDGE_WATCH_SERVER_TIMEOUT": "30",
            "PAGERBRIDGE_WATCH_CLIENT_TIMEOUT": "45",
            **loopback_egress_env(),
            **self.extra_env,
        }
        self.process = start_operator(args, env, self.log_path)

    def stop(self) -> None:
        if self.process is not None:
            stop_operator(self.process)
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def run_operator(
    started: list[ChartOperator], release: Release, log: Path, **env: str
) -> ChartOperator:
    proc = ChartOperator(release, log, extra_env=env)
    started.append(proc)
    proc.start()
    return proc


def minimal_example(pd_url: str) -> str:
    """examples/01-minimal.yaml with a sandbox routing key and Events API URL."""
    docs = list(yaml.safe_load_all((REPO / "examples" / "01-minimal.yaml").read_text()))
    for doc in docs:
        if doc["kind"] == "Secret":
            doc["stringData"] = {key: DEFAULT_ROUTING_KEY for key in doc["stringData"]}
        if doc["kind"] == "PagerDutyIntegration":
            doc["spec"]["pagerDuty"]["eventsUrl"] = pd_url
    return yaml.safe_dump_all(docs)


def permission_errors(log: str) -> list[str]:
    return [line for line in log.splitlines() if PERMISSION_ERROR.search(line)]


def can_i(cluster: Cluster, release: Release, *args: str) -> bool:
    result = cluster.kubectl(
        "auth",
        "can-i",
        *args,
        f"--as=system:serviceaccount:{release.namespace}:{release.service_account}",
        check=False,
    )
    return result.stdout.strip() == "yes"


def wait_ready(cluster: Cluster, namespace: str, operator: ChartOperator) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        assert operator.process is not None
        assert operator.process.poll() is None, f"operator exited:\n{operator.log()[-3000:]}"
        body = get_json(cluster, namespace, "pdi", "minimal")
        return body if condition(body).get("status") == "True" else None

    try:
        body: dict[str, Any] = wait_for(ready, 90, "pdi/minimal Ready")
    except AssertionError as exc:
        status = (get_json(cluster, namespace, "pdi", "minimal") or {}).get("status")
        raise AssertionError(f"{exc}\nstatus: {status}\nlog:\n{operator.log()[-4000:]}") from None
    return body


def rules_of(cluster: Cluster, release: Release) -> list[dict[str, Any]]:
    where = ["-n", release.role_namespace] if release.role_namespace else []
    body = json.loads(
        cluster.kubectl("get", release.role_kind, release.role_name, *where, "-o", "json").stdout
    )
    rules: list[dict[str, Any]] = body["rules"]
    return rules


def rule_keys(rules: list[dict[str, Any]]) -> list[str]:
    """``group/resource`` of each rule's first group and resource, plus ``:verbs`` when
    several rules share it (the three Secret rules)."""
    bases = [f"{r['apiGroups'][0]}/{r['resources'][0]}" for r in rules]
    return [
        f"{base}:{','.join(rule['verbs'])}" if bases.count(base) > 1 else base
        for base, rule in zip(bases, rules, strict=True)
    ]
