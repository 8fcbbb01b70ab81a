"""Fixtures of the chart tests: releases installed with the real ``helm`` (namespaced,
cluster-wide, default), an unwatched namespace, a PagerDuty simulator, and the operators
started as a release's ServiceAccount (stopped after the test)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pagerbridge_devkit.sandbox.pagerduty import PagerDutySimulator
from pagerbridge_devkit.sandbox.server import BackgroundServer

from ..conftest import Cluster
from .release import ChartOperator, Release, install


@pytest.fixture
def namespaced_release(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[Release]:
    yield from install(
        cluster,
        tmp_path,
        "--set",
        "rbac.scope=namespace",
        "--set",
        f"watchNamespaces={{{namespace}}}",
    )


@pytest.fixture
def cluster_release(cluster: Cluster, tmp_path: Path) -> Iterator[Release]:
    yield from install(cluster, tmp_path, "--set", "rbac.scope=cluster")


@pytest.fixture
def default_release(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[Release]:
    """``helm install`` with no values, into the test's namespace (as a team would)."""
    yield from install(cluster, tmp_path, into=namespace)


@pytest.fixture
def unwatched(cluster: Cluster) -> Iterator[str]:
    name = f"pb-unwatched-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def pd_url() -> Iterator[str]:
    sim = PagerDutySimulator()
    with BackgroundServer(sim.app) as server:
        yield server.url
    sim.close()


@pytest.fixture
def chart_operator(tmp_path: Path) -> Iterator[list[ChartOperator]]:
    started: list[ChartOperator] = []
    yield started
    for proc in started:
        proc.stop()
