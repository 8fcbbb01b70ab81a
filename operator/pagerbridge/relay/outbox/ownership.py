"""An outbox the relay owns, or none: who owns and who may write the PostgreSQL outbox.

Why: many integrations share one database server, and an outbox schema's name
(``pagerbridge_<sha256(namespace/name)[:20]>``) is computable by anyone. A role with CREATE
on the database could create another integration's schema first, open it to PUBLIC and
swap the relay's functions (``pagerbridge_enqueue``) for its own: webhooks then answered
202 while pages were dropped, and payloads and override keys were readable. So the relay
trusts only what its own role owns and nobody else can change:

- the schema (when one is configured) is owned by the relay's role (``current_user``) and
  no other role (PUBLIC included) holds CREATE on it;
- every table, sequence, view and function in it (an index goes with its table; in the
  connection's default schema when none is configured, only the ``pagerbridge_*``
  objects, that schema being shared by design) is owned by the relay's role, and no
  other role holds a privilege that writes (INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES,
  TRIGGER; on a sequence USAGE and UPDATE, which advance it).

:func:`problems` asks the catalogs (pg_namespace, pg_class, pg_proc, aclexplode) in one
query, at start and on every new connection of the pool (a reconnect); :func:`revoke_public`
takes PUBLIC's default privileges off what the relay created. Superusers bypass every
privilege: a relay cannot defend against them, and the docs say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# One row per finding: what, its name, who owns it or holds the grant, and which grant.
_FINDINGS = """
WITH me AS (SELECT current_user::text AS role),
target AS (
    SELECT n.oid, n.nspname::text AS name, pg_get_userbyid(n.nspowner)::text AS owner,
           n.nspacl
    FROM pg_namespace n WHERE n.nspname = coalesce($1::text, current_schema())
),
objects AS (
    SELECT CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view' WHEN 'm' THEN 'view'
                ELSE 'table' END AS kind,
           c.relname::text AS name, pg_get_userbyid(c.relowner)::text AS owner,
           c.relacl AS acl, c.relkind = 'S' AS is_sequence
    FROM pg_class c, target t
    WHERE c.relnamespace = t.oid AND c.relkind IN ('r', 'p', 'S', 'v', 'm', 'f')
      AND ($1::text IS NOT NULL OR c.relname LIKE 'pagerbridge\\_%')
    UNION ALL
    SELECT 'function', p.proname::text, pg_get_userbyid(p.proowner)::text, NULL, FALSE
    FROM pg_proc p, target t
    WHERE p.pronamespace = t.oid
      AND ($1::text IS NOT NULL OR p.proname LIKE 'pagerbridge\\_%')
)
SELECT 'schema' AS kind, t.name, t.owner AS role, NULL::text AS privilege FROM target t, me
    WHERE $1::text IS NOT NULL AND t.owner <> me.role
UNION ALL
SELECT 'schema', t.name,
       CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee)::text END,
       a.privilege_type
    FROM target t, me, aclexplode(t.nspacl) a
    WHERE $1::text IS NOT NULL AND a.privilege_type = 'CREATE'
      AND (a.grantee = 0 OR pg_get_userbyid(a.grantee)::text <> me.role)
UNION ALL
SELECT o.kind, o.name, o.owner, NULL FROM objects o, me WHERE o.owner <> me.role
UNION ALL
SELECT o.kind, o.name,
       CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee)::text END,
       a.privilege_type
    FROM objects o, me, aclexplode(o.acl) a
    WHERE (a.grantee = 0 OR pg_get_userbyid(a.grantee)::text <> me.role)
      AND (a.privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES',
                                'TRIGGER')
           OR (o.is_sequence AND a.privilege_type = 'USAGE'))
"""

_KINDS = ("schema", "table", "function", "sequence", "view")  # the order findings are told
_ROLE = "SELECT current_user::text, coalesce($1::text, current_schema())::text"


@dataclass(frozen=True)
class Finding:
    """One object of the outbox another role owns (``privilege`` None) or may write."""

    kind: str  # schema | table | sequence | index | view | function
    name: str
    role: str  # its owner, or the grantee ("PUBLIC" for everyone)
    privilege: str | None = None

    def describe(self, schema: str, relay_role: str) -> str:
        where = "" if self.kind == "schema" else f" in schema {schema}"
        if self.privilege is None:
            return (
                f"{self.kind} {self.name}{where} is owned by role {self.role!r}, "
                f"not by the relay's role {relay_role!r}"
            )
        holder = "PUBLIC (every role)" if self.role == "PUBLIC" else f"role {self.role!r}"
        return (
            f"{holder} holds {self.privilege} on {self.kind} {self.name}{where}; only the "
            f"relay's role {relay_role!r} may"
        )


class OutboxNotOwned(Exception):
    """The outbox is not the relay's alone: the relay refuses to serve from it.

    ``str()`` is one line naming the first object found, its owner (or the role holding a
    grant) and the relay's role; ``findings`` holds every one."""

    def __init__(self, schema: str, relay_role: str, findings: list[Finding]) -> None:
        self.schema = schema
        self.relay_role = relay_role
        self.findings = findings
        more = f" (and {len(findings) - 1} more)" if len(findings) > 1 else ""
        super().__init__(
            f"outbox refused: {findings[0].describe(schema, relay_role)}{more}; give the "
            "integration a schema its own role created (one PostgreSQL role per integration)"
        )


async def problems(conn: Any, schema: str | None) -> None:
    """Raise :class:`OutboxNotOwned` unless the outbox in ``schema`` (None: the
    connection's default schema, its ``pagerbridge_*`` objects) is the relay's role's alone.
    A schema that does not exist yet passes (the relay creates it)."""
    rows = await conn.fetch(_FINDINGS, schema)
    if not rows:
        return
    role, where = await conn.fetchrow(_ROLE, schema)
    findings = sorted(
        (Finding(r["kind"], r["name"], r["role"], r["privilege"]) for r in rows),
        key=lambda f: (_KINDS.index(f.kind), f.name, f.privilege or ""),
    )
    raise OutboxNotOwned(str(where), str(role), findings)


async def revoke_public(conn: Any, schema: str | None) -> None:
    """Take PUBLIC's privileges off the schema (when the relay's own) and off every
    ``pagerbridge_*`` table, sequence and function in it (functions are executable by
    PUBLIC by default). Run in the transaction that created them."""
    if schema is not None:
        # A validated identifier (postgres._IDENTIFIER), so quoting it is enough.
        await conn.execute(f'REVOKE ALL ON SCHEMA "{schema}" FROM PUBLIC')
    rows = await conn.fetch(
        """
        SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE ' ELSE 'TABLE ' END
                   || c.oid::regclass::text AS target FROM pg_class c
            WHERE c.relnamespace = coalesce($1::text, current_schema())::regnamespace
              AND c.relkind IN ('r', 'p', 'S') AND c.relname LIKE 'pagerbridge\\_%'
        UNION ALL
        SELECT 'FUNCTION ' || p.oid::regprocedure::text FROM pg_proc p
            WHERE p.pronamespace = coalesce($1::text, current_schema())::regnamespace
              AND p.proname LIKE 'pagerbridge\\_%'
        """,
        schema,
    )
    for row in rows:
        # Names from the catalog (regclass/regprocedure output is quoted as needed).
        await conn.execute(f"REVOKE ALL ON {row['target']} FROM PUBLIC")
