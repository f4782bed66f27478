"""Whole-database operations: create the database (``init``), drop everything in it (``fresh``),
and the production guard that stands in front of the latter."""

from __future__ import annotations

from collections.abc import Mapping

import psycopg

from .config import production
from .db import in_transaction, rows
from .errors import ConnectError, StateError, UsageError
from .target import Target


def refuse_production(env: Mapping[str, str], allow: bool) -> None:
    """Stop a destructive command when the configuration (environment or .env) says production."""
    said = production(env)
    if said and not allow:
        raise StateError(f"{said}: refusing to drop the database's schemas in production; "
                         "allow it explicitly if you really mean it (--allow-production)")


def create_database(target: Target) -> bool:
    """Create the target's database through the ``postgres`` maintenance database."""
    from .db import connect

    name = target.params().get("dbname")
    if not name:
        raise UsageError("the connection settings name no database to create; add one to DATABASE_URL")
    with connect(target, dbname="postgres", watch_client=False) as maint:
        try:
            maint.execute(f"CREATE DATABASE {quote_ident(name)}")
        except psycopg.Error as exc:
            if exc.sqlstate in ("42P04", "23505"):  # duplicate_database; unique_violation in a race
                return False
            if exc.sqlstate == "42501":
                raise ConnectError(
                    f'database "{name}" does not exist and this user may not create it; ask an administrator '
                    "to create it, or grant CREATEDB"
                ) from None
            raise
    return True


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def drop_everything(conn: object) -> None:
    """Drop every non-system schema and everything in public (extensions included)."""
    schemas = [r[0] for r in rows(conn,
        """SELECT nspname FROM pg_namespace
           WHERE nspname <> 'public' AND nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'"""
    )]
    extensions = [r[0] for r in rows(conn, "SELECT extname FROM pg_extension WHERE extname <> 'plpgsql'")]
    conn.execute("BEGIN")
    try:
        for ext in extensions:
            conn.execute(f"DROP EXTENSION IF EXISTS {quote_ident(ext)} CASCADE")
        for schema in schemas:
            conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(schema)} CASCADE")
        for kind, statement in _PUBLIC_OBJECTS:
            for (name,) in rows(conn, kind):
                conn.execute(statement.format(name))
        conn.execute("COMMIT")
    finally:
        if in_transaction(conn):
            conn.execute("ROLLBACK")


# Objects in public, found and dropped kind by kind (names come back already quoted by the server).
_PUBLIC_OBJECTS = [
    ("SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
     "WHERE n.nspname = 'public' AND c.relkind = 'v'", "DROP VIEW IF EXISTS {} CASCADE"),
    ("SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
     "WHERE n.nspname = 'public' AND c.relkind = 'm'", "DROP MATERIALIZED VIEW IF EXISTS {} CASCADE"),
    ("SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
     "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition",
     "DROP TABLE IF EXISTS {} CASCADE"),
    ("SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
     "WHERE n.nspname = 'public' AND c.relkind = 'f'", "DROP FOREIGN TABLE IF EXISTS {} CASCADE"),
    ("SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
     "WHERE n.nspname = 'public' AND c.relkind = 'S'", "DROP SEQUENCE IF EXISTS {} CASCADE"),
    ("SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
     "WHERE n.nspname = 'public' AND p.prokind IN ('f', 'p', 'a', 'w')", "DROP ROUTINE IF EXISTS {} CASCADE"),
    ("SELECT format('%I.%I', n.nspname, t.typname) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
     "WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd', 'r', 'm') OR (n.nspname = 'public' AND t.typtype = 'c' "
     "AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')", "DROP TYPE IF EXISTS {} CASCADE"),
]
