from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pagerbridge_devkit.sandbox.bigpanda import BigPandaSimulator
from pagerbridge_devkit.sandbox.pagerduty import PagerDutySimulator
from pagerbridge_devkit.sandbox.server import BackgroundServer

from .relayproc import RelayProcess


@pytest.fixture
def pd_sim() -> Iterator[tuple[PagerDutySimulator, str]]:
    sim = PagerDutySimulator()
    with sim, BackgroundServer(sim.app) as server:
        yield sim, server.url


@pytest.fixture
def bp_sim() -> Iterator[tuple[BigPandaSimulator, str]]:
    sim = BigPandaSimulator()
    with BackgroundServer(sim.app) as server:
        yield sim, server.url
    sim.close()


@pytest.fixture
def relays(tmp_path: Path) -> Iterator[list[RelayProcess]]:
    """Relay processes a test starts; all killed in teardown."""
    started: list[RelayProcess] = []
    yield started
    for relay in started:
        relay.kill()


def start_relay(
    relays: list[RelayProcess], config: Path, args: list[str] | None = None
) -> RelayProcess:
    relay = RelayProcess(config, config.parent / f"relay-{len(relays)}.log", args)
    relays.append(relay)
    return relay.start()
