"""Fixtures the controller tests share: the fake API server, a reconciler over it, and the
PagerDuty and BigPanda simulators served on loopback (a module may override any of them)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pagerbridge.controller.reconcile.reconciler import Reconciler
from pagerbridge_devkit.sandbox.bigpanda import BigPandaSimulator
from pagerbridge_devkit.sandbox.pagerduty import PagerDutySimulator
from pagerbridge_devkit.sandbox.server import BackgroundServer

from .fake_kube import FakeKube, FakeWorld
from .objects import settings


@pytest.fixture
def kube() -> FakeKube:
    return FakeKube()


@pytest.fixture
def reconciler(kube: FakeKube) -> Reconciler:
    return Reconciler(kube, settings(), FakeWorld(kube))


@pytest.fixture
def pagerduty() -> Iterator[tuple[PagerDutySimulator, str]]:
    sim = PagerDutySimulator()
    with BackgroundServer(sim.app) as server:
        yield sim, server.url
    sim.close()


@pytest.fixture
def bigpanda() -> Iterator[tuple[BigPandaSimulator, str]]:
    sim = BigPandaSimulator(requests_per_second=None)
    with BackgroundServer(sim.app) as server:
        yield sim, server.url
    sim.close()
