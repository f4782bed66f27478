"""The tracking table ``public.schema_migrations``: its shape, reading it, and the statements that
write it.

The same statements serve the in-process runner (with bound parameters) and the psql paths and
SQL previews (rendered with quoted literals), so a preview is exactly what the runner does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .errors import StateError

SCHEMA = "public"
TABLE = "schema_migrations"
QUALIFIED = f"{SCHEMA}.{TABLE}"
COLUMNS = ("version", "description", "checksum", "applied_at", "execution_ms", "applied_by", "dirty")

CREATE_SQL = f"""CREATE TABLE IF NOT EXISTS {QUALIFIED} (
    version      bigint PRIMARY KEY,
    description  text,
    checksum     text,
    applied_at   timestamptz NOT NULL DEFAULT now(),
    execution_ms integer,
    applied_by   text DEFAULT current_user,
    dirty        boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE {QUALIFIED} IS 'Applied migrations, one row each (pgmigrate)'"""

# Milliseconds since the transaction began (now() is the transaction's start time).
_ELAPSED_IN_TXN = "(extract(epoch FROM clock_timestamp() - now()) * 1000)::integer"
_ELAPSED_SINCE_APPLIED = "(extract(epoch FROM clock_timestamp() - applied_at) * 1000)::integer"

RECORD_SQL = (
    f"INSERT INTO {QUALIFIED} AS m (version, description, checksum, applied_at, execution_ms, applied_by, dirty)\n"
    f"VALUES (%s, %s, %s, now(), {_ELAPSED_IN_TXN}, current_user, false)\n"
    "ON CONFLICT (version) DO UPDATE SET description = EXCLUDED.description, checksum = EXCLUDED.checksum,\n"
    "    applied_at = EXCLUDED.applied_at, execution_ms = EXCLUDED.execution_ms,\n"
    "    applied_by = EXCLUDED.applied_by, dirty = false"
)
MARK_DIRTY_SQL = (
    f"INSERT INTO {QUALIFIED} AS m (version, description, checksum, applied_at, execution_ms, applied_by, dirty)\n"
    "VALUES (%s, %s, %s, clock_timestamp(), NULL, current_user, true)\n"
    "ON CONFLICT (version) DO UPDATE SET description = EXCLUDED.description, checksum = EXCLUDED.checksum,\n"
    "    applied_at = EXCLUDED.applied_at, execution_ms = NULL, applied_by = EXCLUDED.applied_by, dirty = true"
)
MARK_CLEAN_SQL = (
    f"UPDATE {QUALIFIED} SET dirty = false, execution_ms = {_ELAPSED_SINCE_APPLIED} WHERE version = %s"
)
MARK_DIRTY_FOR_DOWN_SQL = f"UPDATE {QUALIFIED} SET dirty = true WHERE version = %s"
DELETE_SQL = f"DELETE FROM {QUALIFIED} WHERE version = %s"
BASELINE_SQL = (
    f"INSERT INTO {QUALIFIED} (version, description, checksum, applied_at, execution_ms, applied_by, dirty)\n"
    "VALUES (%s, %s, %s, now(), NULL, current_user, false) ON CONFLICT (version) DO NOTHING"
)
REHASH_SQL = f"UPDATE {QUALIFIED} SET checksum = %s WHERE version = %s"
FILL_CHECKSUM_SQL = f"UPDATE {QUALIFIED} SET checksum = %s WHERE version = %s AND checksum IS NULL"
SELECT_SQL = f"SELECT {', '.join(COLUMNS)} FROM {QUALIFIED} ORDER BY version"
MAX_VERSION_SQL = f"SELECT coalesce(max(version), 0) FROM {QUALIFIED} WHERE NOT dirty"

# Tracking tables of other tools, looked for in one catalog query.
FOREIGN_TABLES = ("schema_migrations", "seaql_migrations", "goose_db_version", "flyway_schema_history", "schema_version")
SHAPE_SQL = """
SELECT c.relname, array_agg(a.attname::text ORDER BY a.attnum), array_agg(format_type(a.atttypid, NULL) ORDER BY a.attnum)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = %s AND c.relname = ANY(%s) AND c.relkind IN ('r', 'p')
GROUP BY c.relname
"""


@dataclass(frozen=True)
class Row:
    version: int
    description: str | None
    checksum: str | None
    applied_at: datetime | None
    execution_ms: int | None
    applied_by: str | None
    dirty: bool


@dataclass(frozen=True)
class Shape:
    """What the tracking-table catalog query found: ours, absent, or another tool's."""

    ours: bool
    foreign: dict[str, tuple[list[str], list[str]]]  # table -> (columns, types)

    @property
    def exists(self) -> bool:
        return self.ours

    def foreign_tool(self) -> tuple[str, str] | None:
        """``(tool, table)`` of the first other tool's table found, if ours is absent."""
        if self.ours:
            return None
        for table, (columns, types) in self.foreign.items():
            tool = identify(table, columns, types)
            if tool:
                return tool, table
        return None


def identify(table: str, columns: list[str], types: list[str]) -> str | None:
    """Name the tool that made a table of this shape, or None if it is not a known tracking table."""
    cols = set(columns)
    if table == "schema_migrations":
        if cols == {"version", "dirty"}:
            return "golang-migrate"
        if cols == {"version"}:
            return "dbmate"
        if "version" in cols and "description" not in cols:
            return "another tool (Rails, dbmate or golang-migrate)"
        return None
    if table == "seaql_migrations" and {"version", "applied_at"} <= cols:
        return "sea-orm"
    if table == "goose_db_version" and {"version_id", "is_applied"} <= cols:
        return "goose"
    if table == "flyway_schema_history" and {"installed_rank", "version", "checksum"} <= cols:
        return "Flyway"
    if table == "schema_version" and {"version", "applied_at"} <= cols:
        return "a schema_version table (nexus-core style)"
    return None


def read_shape(cur: Any) -> Shape:
    cur.execute(SHAPE_SQL, (SCHEMA, list(FOREIGN_TABLES)))
    found = {name: (list(cols), list(types)) for name, cols, types in cur.fetchall()}
    ours_cols = found.get(TABLE, ([], []))[0]
    ours = set(COLUMNS) <= set(ours_cols)
    if ours:
        found.pop(TABLE)
    return Shape(ours=ours, foreign=found)


def refuse_foreign(shape: Shape) -> None:
    hit = shape.foreign_tool()
    if hit:
        tool, table = hit
        raise StateError(
            f"{SCHEMA}.{table} belongs to {tool}, not to this runner; move its history over with "
            f"'scripts/migrate.py adopt' (see 'adopt --help'), which keeps the old table"
        )


def ensure_table(cur: Any) -> bool:
    """Create the tracking table if needed; refuse another tool's table. Returns whether created."""
    shape = read_shape(cur)
    if shape.ours:
        return False
    refuse_foreign(shape)
    cur.execute(CREATE_SQL)
    return True


def read_rows(cur: Any) -> dict[int, Row]:
    cur.execute(SELECT_SQL)
    return {r[0]: Row(*r) for r in cur.fetchall()}


def literal(value: Any) -> str:
    """An SQL literal for the psql paths and previews (standard_conforming_strings is on)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if "\x00" in text:
        raise ValueError("NUL character in a value")
    return "'" + text.replace("'", "''") + "'"


def render(sql: str, params: tuple[Any, ...]) -> str:
    """The statement with its ``%s`` placeholders replaced by literals."""
    parts = sql.split("%s")
    if len(parts) != len(params) + 1:
        raise ValueError("placeholder count does not match the parameters")
    out = [parts[0]]
    for value, rest in zip(params, parts[1:], strict=True):
        out.append(literal(value))
        out.append(rest)
    return "".join(out)
