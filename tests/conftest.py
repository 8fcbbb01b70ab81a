"""Fixtures shared by the unit and e2e tiers: a real PostgreSQL server (dev kit)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from pagerbridge_devkit.postgres import APT_PACKAGE, PostgresServer, find_bin_dir


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
