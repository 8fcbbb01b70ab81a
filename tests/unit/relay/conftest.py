from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pagerbridge_devkit.postgres import APT_PACKAGE, PostgresServer, find_bin_dir
from pagerbridge_devkit.sandbox.bigpanda import BigPandaSimulator
from pagerbridge_devkit.sandbox.pagerduty import PagerDutySimulator
from pagerbridge_devkit.sandbox.server import BackgroundServer

from .relayproc import RelayProcess


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session (dev kit); each test gets its own database
    (``pg_dsn``). Missing PostgreSQL skips on a developer's machine and fails under CI."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        message = f"PostgreSQL is not installed (apt-get install {APT_PACKAGE})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    server = PostgresServer(bin_dir).start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def pg_dsn(pg_server: PostgresServer) -> str:
    return pg_server.create_database(f"t_{uuid.uuid4().hex[:12]}")


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
