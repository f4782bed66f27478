"""The tracking table ``public.schema_migrations``: its shape, reading it, and the statements that
write it.

The same statements serve the in-process runner (with bound parameters) and the psql paths and
SQL previews (rendered with quoted literals), so a preview is exactly what the runner does.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable
from datetime import UTC, datetime

from .errors import Remedy, StateError

TYPE_CHECKING = False  # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any

SCHEMA = "public"
TABLE = "schema_migrations"
QUALIFIED = f"{SCHEMA}.{TABLE}"
Step = tuple[str, tuple[object, ...]]  # a statement with %s placeholders and its parameters
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
SELECT_SQL = (
    "SELECT version, description, checksum, extract(epoch FROM applied_at), execution_ms, applied_by, dirty "
    f"FROM {QUALIFIED} ORDER BY version"
)


def dirty_mark(step: Step) -> Step:
    """The statement that marks dirty what ``step`` (a RECORD or DELETE) would have recorded cleanly."""
    sql, params = step
    return (MARK_DIRTY_SQL if sql == RECORD_SQL else MARK_DIRTY_FOR_DOWN_SQL), params


NEWEST_SQL = f"SELECT version, dirty FROM {QUALIFIED} ORDER BY version DESC LIMIT 1"

_SHAPE_SQL: list[str] = []


def shape_sql() -> str:
    """One catalog query for our table and the other tools' tables where those tools keep them
    (``pgmigrate/formats/``); constants only, no parameters, so the read-only path can run it as it is."""
    if not _SHAPE_SQL:
        from . import formats

        places = ", ".join(f"('{schema}', '{table}')" for schema, table in formats.home_locations())
        _SHAPE_SQL.append(f"""
SELECT n.nspname, c.relname, string_agg(a.attname, ',' ORDER BY a.attnum),
       string_agg(format_type(a.atttypid, NULL), ',' ORDER BY a.attnum)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE (n.nspname, c.relname) IN (('{SCHEMA}', '{TABLE}'), {places}) AND c.relkind IN ('r', 'p')
GROUP BY 1, 2""")
    return _SHAPE_SQL[0]


Query = Callable[[str], list[tuple]]


def as_query(source: Any) -> Query:
    """A query function from a query function or a psycopg cursor."""
    if callable(source):
        return source
    return lambda sql: source.execute(sql).fetchall()


class Row(namedtuple("Row", COLUMNS)):
    """One row of the tracking table: version (int), description, checksum, applied_at (datetime),
    execution_ms (int), applied_by, dirty (bool)."""

    __slots__ = ()


class Shape(namedtuple("Shape", "ours foreign")):
    """What the tracking-table catalog query found: ``ours`` (bool), and ``foreign``, the other
    tools' tables found where they keep them, as (schema, table) -> {column: type}."""

    __slots__ = ()

    @property
    def exists(self) -> bool:
        return self.ours

    def foreign_tool(self):
        """``(format, schema, table)`` of the first other tool's table found, if ours is absent."""
        if self.ours:
            return None
        from . import formats

        for (schema, table), columns in sorted(self.foreign.items()):
            beside = {t for s, t in self.foreign if s == schema}
            fmt = formats.identify(formats.Found(schema, table, columns), beside)
            if fmt:
                return fmt, schema, table
        return None


def read_shape(source: Any) -> Shape:
    rows = as_query(source)(shape_sql())
    found = {(schema, name): dict(zip(cols.split(","), types.split(","))) for schema, name, cols, types in rows}
    ours = set(COLUMNS) <= set(found.get((SCHEMA, TABLE), ()))
    if ours:
        found.pop((SCHEMA, TABLE))
    return Shape(ours=ours, foreign=found)


def refuse_foreign(shape: Shape) -> None:
    """Stop, in one line, when another tool's tracking table is there and ours is not; also when
    ``schema_migrations`` exists in a shape nobody here knows (reading or writing it would go wrong)."""
    if shape.ours:
        return
    hit = shape.foreign_tool()
    if hit:
        fmt, schema, table = hit
        raise StateError(
            f"{schema}.{table} is the tracking table of {fmt.title}, not of this runner, and nothing was changed",
            remedy=Remedy("adopt", name=fmt.name),
        )
    if (SCHEMA, TABLE) in shape.foreign:
        columns = ", ".join(shape.foreign[(SCHEMA, TABLE)])
        raise StateError(
            f"{QUALIFIED} exists but is not this runner's tracking table (columns: {columns}) nor one "
            "'adopt' knows; rename it or move it to another schema, then run the command again"
        )


def ensure_table(query: Query) -> bool:
    """Create the tracking table if needed; refuse another tool's table. Returns whether created."""
    shape = read_shape(query)
    if shape.ours:
        return False
    refuse_foreign(shape)
    query(CREATE_SQL)
    return True


def read_rows(source: Any) -> dict[int, Row]:
    return {row.version: row for row in (parse_row(*r) for r in as_query(source)(SELECT_SQL))}


def parse_row(version: Any, description: Any, checksum: Any, epoch: Any, ms: Any, by: Any, dirty: Any) -> Row:
    """A Row from the values psycopg read."""
    applied_at = None if epoch is None else datetime.fromtimestamp(float(epoch), UTC)
    return Row(int(version), description, checksum, applied_at, None if ms is None else int(ms), by,
               dirty in (True, "t"))


def literal(value: Any) -> str:
    """An SQL literal for the tracking statements, as the runner, psql and previews send them; right
    whatever standard_conforming_strings says (an E'' string where there is a backslash)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if "\x00" in text:
        raise ValueError("NUL character in a value")
    if "\\" in text:
        return "E'" + text.replace("\\", "\\\\").replace("'", "''") + "'"
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
