"""An outbox the relay owns, or none: two tenants' roles on one real PostgreSQL server.

Invariants (relay.outbox.ownership):
- a squatter that creates another integration's schema first (its name is computable),
  opens it to PUBLIC and plants its own ``pagerbridge_enqueue`` gets nothing: the victim's
  relay (a real process) refuses to serve: ``/readyz`` 503 naming the schema, its owner and
  the relay's role, webhooks 503, one log line and no traceback; once the squatted schema
  is gone the relay creates its own and serves, without a restart;
- on its own schema another tenant's role can neither read, write, drop nor replace
  anything, nor create anything in it;
- tables another role owns, or a write grant to another role (found on a reconnect), are
  refused the same way.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from pagerbridge.api.contract import OUTBOX_DSN_ENV, OUTBOX_SCHEMA_ENV, outbox_schema
from pagerbridge.relay.outbox.port import OutboxClosed
from pagerbridge.relay.outbox.postgres import RECHECK_SECONDS, PostgresOutbox
from pagerbridge_devkit.postgres import PostgresServer
from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_ROUTING_KEY
from pagerbridge_devkit.waiting import wait_for

from .relayproc import RelayProcess, write_config
from .support import incident

VICTIM, SQUATTER = "tenant_victim", "tenant_squatter"


def _run(fn: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(fn())  # type: ignore[arg-type]


async def _sql(dsn: str, *statements: str) -> list[Any]:
    conn = await asyncpg.connect(dsn)
    try:
        return [
            await conn.fetch(s)
            if s.lstrip().upper().startswith("SELECT")
            else await conn.execute(s)
            for s in statements
        ]
    finally:
        await conn.close()


@pytest.fixture
def tenants(pg_server: PostgresServer) -> tuple[str, str, str]:
    """A fresh database and two tenant roles each given CREATE on it (what docs/relay.md
    asked of every relay's role before): (superuser DSN, victim DSN, squatter DSN)."""
    db = f"t_{uuid.uuid4().hex[:12]}"
    admin = pg_server.create_database(db)
    suffix = uuid.uuid4().hex[:6]
    victim, squatter = f"{VICTIM}_{suffix}", f"{SQUATTER}_{suffix}"
    _run(
        lambda: _sql(
            admin,
            f"CREATE ROLE {victim} LOGIN",
            f"CREATE ROLE {squatter} LOGIN",
            f"GRANT CREATE ON DATABASE {db} TO {victim}, {squatter}",
        )
    )

    def as_role(role: str) -> str:
        return admin.replace("postgres@", f"{role}@", 1)

    return admin, as_role(victim), as_role(squatter)


def _role(dsn: str) -> str:
    return dsn.split("//", 1)[1].split("@", 1)[0]


def _relay(tmp_path: Path, relays: list[RelayProcess], dsn: str, schema: str) -> RelayProcess:
    config = write_config(tmp_path, pd_url="http://127.0.0.1:9", routing_key=DEFAULT_ROUTING_KEY)
    relay = RelayProcess(
        config,
        tmp_path / "relay.log",
        args=["--late-trigger-after", "3600"],
        env={OUTBOX_DSN_ENV: dsn, OUTBOX_SCHEMA_ENV: schema},
    )
    relays.append(relay)
    return relay.start()


@pytest.mark.component
def test_a_squatted_schema_is_refused_with_one_line_and_the_relay_recovers_by_itself(
    tmp_path: Path, tenants: tuple[str, str, str], relays: list[RelayProcess]
) -> None:
    admin, victim_dsn, squatter_dsn = tenants
    victim, squatter = _role(victim_dsn), _role(squatter_dsn)
    schema = outbox_schema("payments", "pagerduty")  # anyone can compute it
    # The squatter gets there first, opens the schema to everyone and plants an enqueue
    # that stores nothing (webhooks would be answered "duplicate" while pages are dropped).
    _run(
        lambda: _sql(
            squatter_dsn,
            f"CREATE SCHEMA {schema}",
            f"GRANT ALL ON SCHEMA {schema} TO PUBLIC",
            f"CREATE FUNCTION {schema}.pagerbridge_enqueue() RETURNS INTEGER LANGUAGE sql "
            "AS 'SELECT 0'",
        )
    )
    relay = _relay(tmp_path, relays, victim_dsn, schema)

    ready = httpx.get(relay.internal_url + "/readyz", timeout=5)
    assert ready.status_code == 503
    reason = ready.json()["outbox"]
    assert reason.startswith("outbox refused: ")
    assert f"schema {schema}" in reason
    assert repr(squatter) in reason
    assert repr(victim) in reason
    answer = relay.post_bigpanda(incident(1))
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"] == "outbox_unavailable"
    # Nothing of the victim's was created in the squatter's schema.
    tables = _run(
        lambda: _sql(
            admin, f"SELECT relname FROM pg_class WHERE relnamespace = '{schema}'::regnamespace"
        )
    )[0]
    assert tables == []
    # One log line says it (its JSON message), and no traceback anywhere.
    wait_for(lambda: "outbox refused" in relay.logs(), timeout=10)
    refusals = [
        json.loads(line)
        for line in relay.logs().splitlines()
        if line.startswith("{") and json.loads(line).get("msg", "").startswith("outbox refused")
    ]
    assert len(refusals) == 1, relay.logs()[-3000:]
    assert refusals[0]["objectRole"] == squatter
    assert refusals[0]["relayRole"] == victim
    assert "Traceback" not in relay.logs()
    assert "permission denied" not in relay.logs()

    # The platform team removes the squatter's schema: the relay creates its own and
    # serves, without a restart (it looks again every RECHECK_SECONDS).
    _run(lambda: _sql(admin, f"DROP SCHEMA {schema} CASCADE"))
    wait_for(
        lambda: httpx.get(relay.internal_url + "/readyz", timeout=5).status_code == 200,
        timeout=RECHECK_SECONDS * 6,
    )
    stored = relay.post_bigpanda(incident(2))
    assert stored.status_code == 202, stored.text
    assert stored.json()["queued"] >= 1
    owner = _run(
        lambda: _sql(
            admin,
            f"SELECT pg_get_userbyid(nspowner) AS o FROM pg_namespace WHERE nspname = '{schema}'",
        )
    )[0]
    assert owner[0]["o"] == victim


def test_another_tenant_can_neither_read_nor_drop_nor_replace_anything(
    tenants: tuple[str, str, str],
) -> None:
    admin, victim_dsn, squatter_dsn = tenants
    schema = outbox_schema("payments", "pagerduty")

    async def main() -> None:
        outbox = PostgresOutbox(victim_dsn, schema=schema)
        outbox.open(asyncio.get_running_loop())
        await outbox.start()
        assert outbox.refused is None
        assert outbox.healthy
        await outbox.close()

    _run(main)
    attempts = [
        f"SELECT * FROM {schema}.pagerbridge_jobs",
        f"SELECT * FROM {schema}.pagerbridge_seen",
        f"INSERT INTO {schema}.pagerbridge_seen(key, at) VALUES ('k', 0)",
        f"DELETE FROM {schema}.pagerbridge_jobs",
        f"TRUNCATE {schema}.pagerbridge_incidents",
        f"SELECT {schema}.pagerbridge_now()",
        f"SELECT nextval('{schema}.pagerbridge_jobs_id_seq')",
        f"DROP TABLE {schema}.pagerbridge_jobs",
        f"DROP FUNCTION {schema}.pagerbridge_now()",
        f"DROP SCHEMA {schema} CASCADE",
        f"ALTER TABLE {schema}.pagerbridge_jobs ADD COLUMN x INT",
        f"CREATE OR REPLACE FUNCTION {schema}.pagerbridge_now() RETURNS DOUBLE PRECISION "
        "LANGUAGE sql AS 'SELECT 0::double precision'",
        f"CREATE TABLE {schema}.planted (x INT)",
        f"ALTER SCHEMA {schema} RENAME TO stolen",
    ]

    async def attempt(statement: str) -> str | None:
        conn = await asyncpg.connect(squatter_dsn)
        try:
            await conn.execute(statement)
        except asyncpg.PostgresError as exc:
            return f"{type(exc).__name__}: {exc}"
        finally:
            await conn.close()
        return None

    for statement in attempts:
        refused = _run(lambda s=statement: attempt(s))  # type: ignore[misc]
        assert refused is not None, f"another tenant's role could run: {statement}"
        assert "permission denied" in refused or "must be owner" in refused, refused
    # And nothing of the victim's is open to PUBLIC: no grants at all on its objects.
    grants = _run(
        lambda: _sql(
            admin,
            "SELECT c.relname, a.grantee FROM pg_class c, aclexplode(c.relacl) a "
            f"WHERE c.relnamespace = '{schema}'::regnamespace AND a.grantee <> c.relowner "
            "UNION ALL SELECT p.proname, a.grantee FROM pg_proc p, aclexplode(p.proacl) a "
            f"WHERE p.pronamespace = '{schema}'::regnamespace AND a.grantee <> p.proowner",
        )
    )[0]
    assert grants == []


def test_tables_another_role_owns_are_refused(tenants: tuple[str, str, str]) -> None:
    admin, victim_dsn, _ = tenants
    victim = _role(victim_dsn)
    schema = outbox_schema("payments", "pagerduty")
    # The schema is the victim's (as the docs say to make it), but a table in it is not.
    _run(
        lambda: _sql(
            admin,
            f"CREATE SCHEMA {schema} AUTHORIZATION {victim}",
            f"CREATE TABLE {schema}.pagerbridge_jobs (id BIGSERIAL PRIMARY KEY)",
        )
    )

    async def main() -> str | None:
        outbox = PostgresOutbox(victim_dsn, schema=schema)
        outbox.open(asyncio.get_running_loop())
        await outbox.start()
        with pytest.raises(OutboxClosed):
            await outbox.pending()
        await outbox.close()
        return outbox.refused

    refused = _run(main)
    assert refused is not None
    assert f"table pagerbridge_jobs in schema {schema} is owned by role 'postgres'" in refused
    assert repr(victim) in refused


def test_a_write_grant_to_another_role_is_found_on_reconnect(
    tenants: tuple[str, str, str],
) -> None:
    admin, victim_dsn, squatter_dsn = tenants
    victim, squatter = _role(victim_dsn), _role(squatter_dsn)
    schema = outbox_schema("payments", "pagerduty")

    async def main() -> tuple[str | None, str | None]:
        outbox = PostgresOutbox(victim_dsn, schema=schema)
        outbox.open(asyncio.get_running_loop())
        await outbox.start()
        assert await outbox.pending() == []
        # A grant slips in (the victim's own mistake, or an admin's), then the database
        # drops the relay's connections: the reconnect looks again.
        await _sql(
            victim_dsn,
            f"GRANT USAGE ON SCHEMA {schema} TO {squatter}",
            f"GRANT INSERT ON {schema}.pagerbridge_jobs TO {squatter}",
        )
        await _sql(
            admin,
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{victim}'"
            " AND pid <> pg_backend_pid()",
        )
        for _ in range(3):  # the first call may meet the dead connection
            with pytest.raises(OutboxClosed):
                await outbox.pending()
        refused = outbox.refused
        await _sql(victim_dsn, f"REVOKE INSERT ON {schema}.pagerbridge_jobs FROM {squatter}")
        await asyncio.sleep(RECHECK_SECONDS + 0.5)
        await outbox.pending()  # looked at again: accepted
        after = outbox.refused
        await outbox.close()
        return refused, after

    refused, after = _run(main)
    assert refused is not None
    assert f"role {squatter!r} holds INSERT on table pagerbridge_jobs" in refused
    assert after is None


def test_a_squatted_schema_without_grants_is_refused_not_a_permission_error(
    tenants: tuple[str, str, str],
) -> None:
    """The squatter creates the schema and the tables, grants nothing: before, the relay
    failed at start with a traceback (``permission denied for schema ...``); now it refuses
    with the line that says who owns the schema (and counts the table and its sequence)."""
    _, victim_dsn, squatter_dsn = tenants
    victim, squatter = _role(victim_dsn), _role(squatter_dsn)
    schema = outbox_schema("payments", "pagerduty")
    _run(
        lambda: _sql(
            squatter_dsn,
            f"CREATE SCHEMA {schema}",
            f"CREATE TABLE {schema}.pagerbridge_jobs (id BIGSERIAL PRIMARY KEY)",
        )
    )

    async def main() -> str | None:
        outbox = PostgresOutbox(victim_dsn, schema=schema)
        outbox.open(asyncio.get_running_loop())
        await outbox.start()  # does not raise
        assert await outbox.check_writable() is False
        with pytest.raises(OutboxClosed):
            await outbox.pending()
        await outbox.close()
        return outbox.refused

    refused = _run(main)
    assert refused == (
        f"outbox refused: schema {schema} is owned by role {squatter!r}, not by the relay's "
        f"role {victim!r} (and 2 more); give the integration a schema its own role created "
        "(one PostgreSQL role per integration)"
    )
