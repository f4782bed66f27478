"""The tracking tables: ours (``public.schema_migrations`` unless ``--table`` / ``MIGRATIONS_TABLE``
name another) and, beside it, the repeatable migrations' (``<name>_repeatables``); their shape,
reading them, and the statements that write them.

A ``Table`` holds the names, quoted once, and builds every statement over them. The same
statements serve the in-process runner (with bound parameters) and the psql paths and SQL previews
(rendered with quoted literals), so a preview is exactly what the runner does.
"""

from __future__ import annotations

import re
from collections import namedtuple
from collections.abc import Callable
from datetime import UTC, datetime

from .errors import Remedy, StateError, UsageError

TYPE_CHECKING = False  # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any

DEFAULT_SCHEMA = "public"
DEFAULT_NAME = "schema_migrations"
REPEATABLES_SUFFIX = "_repeatables"
MAX_IDENTIFIER = 63  # bytes: PostgreSQL's NAMEDATALEN - 1
Step = tuple[str, tuple[object, ...]]  # a statement with %s placeholders and its parameters
COLUMNS = ("version", "description", "checksum", "applied_at", "execution_ms", "applied_by", "dirty")
REPEATABLE_COLUMNS = ("name", "checksum", "applied_at", "execution_ms", "applied_by")

# Milliseconds since the transaction began (now() is the transaction's start time).
_ELAPSED_IN_TXN = "(extract(epoch FROM clock_timestamp() - now()) * 1000)::integer"
_ELAPSED_SINCE_APPLIED = "(extract(epoch FROM clock_timestamp() - applied_at) * 1000)::integer"
_PLAIN = re.compile(r"[a-z_][a-z0-9_$]*")
_PART = re.compile(r'"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z0-9_$]*)')


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def show_ident(name: str) -> str:
    """A name as it is written in SQL: as it is when it needs no quotes, else quoted."""
    return name if _PLAIN.fullmatch(name) else quote_ident(name)


class Table:
    """Our tracking table and the repeatables' table beside it (same schema, name + ``_repeatables``):
    their names and every statement over them."""

    def __init__(self, schema: str = DEFAULT_SCHEMA, name: str = DEFAULT_NAME) -> None:
        self.schema = schema
        self.name = name
        self.qualified = f"{show_ident(schema)}.{show_ident(name)}"  # messages, the lock key
        self.sql = f"{quote_ident(schema)}.{quote_ident(name)}"
        self.repeatables_name = name + REPEATABLES_SUFFIX
        self.repeatables_qualified = f"{show_ident(schema)}.{show_ident(self.repeatables_name)}"
        self.repeatables_sql = f"{quote_ident(schema)}.{quote_ident(self.repeatables_name)}"
        self._shape_sql = ""
        self._statements()
        self._repeatable_statements()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Table) and (self.schema, self.name) == (other.schema, other.name)

    def __hash__(self) -> int:
        return hash((self.schema, self.name))

    def __repr__(self) -> str:
        return f"Table({self.qualified!r})"

    @property
    def default(self) -> bool:
        return (self.schema, self.name) == (DEFAULT_SCHEMA, DEFAULT_NAME)

    # --- statements ---

    def schema_sql(self) -> str:
        """Creates the schema when it is missing (and only then: CREATE SCHEMA IF NOT EXISTS needs the
        CREATE privilege on the database even when the schema is there)."""
        return (f"DO $pgmigrate$BEGIN IF NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = {literal(self.schema)}) "
                f"THEN CREATE SCHEMA {quote_ident(self.schema)}; END IF; END$pgmigrate$")

    def create_sql(self) -> str:
        t = self.sql
        return f"""CREATE TABLE IF NOT EXISTS {t} (
    version      bigint PRIMARY KEY,
    description  text,
    checksum     text,
    applied_at   timestamptz NOT NULL DEFAULT now(),
    execution_ms integer,
    applied_by   text DEFAULT current_user,
    dirty        boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE {t} IS 'Applied migrations, one row each (pgmigrate)'"""

    def create_repeatables_sql(self) -> str:
        t = self.repeatables_sql
        return f"""CREATE TABLE IF NOT EXISTS {t} (
    name         text PRIMARY KEY,
    checksum     text,
    applied_at   timestamptz NOT NULL DEFAULT now(),
    execution_ms integer,
    applied_by   text DEFAULT current_user
);
COMMENT ON TABLE {t} IS 'Repeatable migrations (R__name.sql), each with its checksum when last applied (pgmigrate)'"""

    def _statements(self) -> None:
        t = self.sql
        self.record_sql = (
            f"INSERT INTO {t} AS m (version, description, checksum, applied_at, execution_ms, applied_by, dirty)\n"
            f"VALUES (%s, %s, %s, now(), {_ELAPSED_IN_TXN}, current_user, false)\n"
            "ON CONFLICT (version) DO UPDATE SET description = EXCLUDED.description, checksum = EXCLUDED.checksum,\n"
            "    applied_at = EXCLUDED.applied_at, execution_ms = EXCLUDED.execution_ms,\n"
            "    applied_by = EXCLUDED.applied_by, dirty = false"
        )
        self.mark_dirty_sql = (
            f"INSERT INTO {t} AS m (version, description, checksum, applied_at, execution_ms, applied_by, dirty)\n"
            "VALUES (%s, %s, %s, clock_timestamp(), NULL, current_user, true)\n"
            "ON CONFLICT (version) DO UPDATE SET description = EXCLUDED.description, checksum = EXCLUDED.checksum,\n"
            "    applied_at = EXCLUDED.applied_at, execution_ms = NULL, applied_by = EXCLUDED.applied_by, dirty = true"
        )
        self.mark_clean_sql = (
            f"UPDATE {t} SET dirty = false, execution_ms = {_ELAPSED_SINCE_APPLIED} WHERE version = %s"
        )
        self.mark_dirty_for_down_sql = f"UPDATE {t} SET dirty = true WHERE version = %s"
        self.delete_sql = f"DELETE FROM {t} WHERE version = %s"
        self.baseline_sql = (
            f"INSERT INTO {t} (version, description, checksum, applied_at, execution_ms, applied_by, dirty)\n"
            "VALUES (%s, %s, %s, now(), NULL, current_user, false) ON CONFLICT (version) DO NOTHING"
        )
        self.adopt_sql = (
            f"INSERT INTO {t} (version, description, checksum, applied_at, execution_ms, applied_by, dirty)\n"
            "VALUES (%s, %s, %s, coalesce(%s::timestamptz, now()), %s, coalesce(%s::text, current_user::text), %s)"
        )
        self.rehash_sql = f"UPDATE {t} SET checksum = %s WHERE version = %s"
        self.fill_checksum_sql = f"UPDATE {t} SET checksum = %s WHERE version = %s AND checksum IS NULL"
        self.select_sql = ("SELECT version, description, checksum, extract(epoch FROM applied_at), execution_ms, "
                           f"applied_by, dirty FROM {t} ORDER BY version")
        self.newest_sql = f"SELECT version, dirty FROM {t} ORDER BY version DESC LIMIT 1"

    def _repeatable_statements(self) -> None:
        r = self.repeatables_sql
        self.repeatable_record_sql = (
            f"INSERT INTO {r} AS r (name, checksum, applied_at, execution_ms, applied_by)\n"
            f"VALUES (%s, %s, now(), {_ELAPSED_IN_TXN}, current_user)\n"
            "ON CONFLICT (name) DO UPDATE SET checksum = EXCLUDED.checksum, applied_at = EXCLUDED.applied_at,\n"
            "    execution_ms = EXCLUDED.execution_ms, applied_by = EXCLUDED.applied_by"
        )
        # Before a repeatable that does not run in one transaction with its row (and when one escapes
        # its transaction): the row says 'to be applied again' until it has run to the end.
        self.repeatable_unmark_sql = (
            f"INSERT INTO {r} AS r (name, checksum, applied_at, execution_ms, applied_by)\n"
            "VALUES (%s, NULL, clock_timestamp(), NULL, current_user)\n"
            "ON CONFLICT (name) DO UPDATE SET checksum = NULL, applied_at = EXCLUDED.applied_at,\n"
            "    execution_ms = NULL, applied_by = EXCLUDED.applied_by"
        )
        self.repeatable_finish_sql = (
            f"UPDATE {r} SET checksum = %s, execution_ms = {_ELAPSED_SINCE_APPLIED} WHERE name = %s"
        )
        # After a rollback, every repeatable is applied again by the next 'up' that reaches the newest
        # migration: what a down file dropped or changed may be what a repeatable had made or uses.
        self.repeatables_stale_sql = f"UPDATE {r} SET checksum = NULL WHERE checksum IS NOT NULL"
        self.repeatable_forget_sql = f"DELETE FROM {r} WHERE name = %s"
        self.repeatable_adopt_sql = (
            f"INSERT INTO {r} (name, checksum, applied_at, execution_ms, applied_by)\n"
            "VALUES (%s, %s, coalesce(%s::timestamptz, now()), %s, coalesce(%s::text, current_user::text))"
        )
        self.select_repeatables_sql = ("SELECT name, checksum, extract(epoch FROM applied_at), execution_ms, "
                                       f"applied_by FROM {r} ORDER BY name")

    # --- the catalog ---

    def shape_sql(self) -> str:
        """One catalog query for our tables and the other tools' tables where those tools keep them
        (``pgmigrate/formats/``); no parameters, so the read-only path can run it as it is."""
        if not self._shape_sql:
            from . import formats

            places = [(self.schema, self.name), (self.schema, self.repeatables_name), *formats.home_locations()]
            listed = ", ".join(f"({literal(s)}, {literal(t)})" for s, t in places)
            self._shape_sql = f"""
SELECT n.nspname, c.relname, string_agg(a.attname, ',' ORDER BY a.attnum),
       string_agg(format_type(a.atttypid, NULL), ',' ORDER BY a.attnum)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE (n.nspname::text, c.relname::text) IN ({listed}) AND c.relkind IN ('r', 'p')
GROUP BY 1, 2"""
        return self._shape_sql


def parse_table(text: str, source: str) -> Table:
    """The table ``--table`` / ``MIGRATIONS_TABLE`` names: ``SCHEMA.NAME`` or ``NAME`` (in public),
    written as in SQL (unquoted names are lower-cased, double quotes keep them as they are)."""
    parts, rest = [], "." + text.strip()
    while rest.startswith("."):
        m = _PART.match(rest, 1)
        if not m:
            break
        parts.append(m.group(1).replace('""', '"') if m.group(1) is not None else m.group(2).lower())
        rest = rest[m.end():]
    if not parts or rest or len(parts) > 2:
        raise UsageError(f"{source}: {text!r} is not a table name; write SCHEMA.NAME (e.g. "
                         "pgmigrate.schema_migrations), with double quotes around a name that holds other characters "
                         "than letters, digits and _")
    schema, name = parts if len(parts) == 2 else (DEFAULT_SCHEMA, parts[0])
    if schema.startswith("pg_") or schema == "information_schema":
        raise UsageError(f"{source}: schema {schema} is PostgreSQL's own; keep the tracking table in another schema")
    if len(schema.encode()) > MAX_IDENTIFIER or len((name + REPEATABLES_SUFFIX).encode()) > MAX_IDENTIFIER:
        raise UsageError(f"{source}: {text!r} is too long: the schema may have {MAX_IDENTIFIER} bytes, the table "
                         f"{MAX_IDENTIFIER - len(REPEATABLES_SUFFIX)} (its repeatables' table adds "
                         f"'{REPEATABLES_SUFFIX}')")
    if "\x00" in schema + name or "%" in schema + name:
        raise UsageError(f"{source}: {text!r}: a tracking table's name cannot hold '%' or a NUL character; "
                         "choose another name")
    return Table(schema, name)


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


class RepeatableRow(namedtuple("RepeatableRow", REPEATABLE_COLUMNS)):
    """One row of the repeatables' table: name (``R__name.sql`` without ``R__`` and ``.sql``), checksum
    (None: to be applied again), applied_at (datetime), execution_ms, applied_by."""

    __slots__ = ()


class Recorded(namedtuple("Recorded", "rows repeatables")):
    """What the tracking tables hold: ``rows`` (version -> Row) and ``repeatables`` (name ->
    RepeatableRow, or None when that table does not exist yet)."""

    __slots__ = ()


class Shape(namedtuple("Shape", "ours foreign repeatables", defaults=(False,))):
    """What the tracking-table catalog query found: ``ours`` (bool), ``repeatables`` (whether the
    repeatables' table exists), and ``foreign``, the other tools' tables found where they keep them
    (and anything else found at our tables' names), as (schema, table) -> {column: type}."""

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


def read_shape(source: Any, table: Table) -> Shape:
    rows = as_query(source)(table.shape_sql())
    found = {(schema, name): dict(zip(cols.split(","), types.split(","))) for schema, name, cols, types in rows}
    ours = set(COLUMNS) <= set(found.get((table.schema, table.name), ()))
    if ours:
        found.pop((table.schema, table.name))
    repeatables = set(REPEATABLE_COLUMNS) <= set(found.get((table.schema, table.repeatables_name), ()))
    if repeatables:
        found.pop((table.schema, table.repeatables_name))
    return Shape(ours=ours, foreign=found, repeatables=repeatables)


def refuse_foreign(shape: Shape, table: Table) -> None:
    """Stop, in one line, when another tool's tracking table is there and ours is not; also when a
    table holds one of our tables' names in a shape nobody here knows (reading or writing it would
    go wrong)."""
    odd = (table.schema, table.repeatables_name)
    if odd in shape.foreign:
        raise StateError(f"{table.repeatables_qualified} exists but is not this runner's table of repeatable "
                         f"migrations (columns: {', '.join(shape.foreign[odd])}); rename it, or name another "
                         "tracking table with --table / MIGRATIONS_TABLE")
    if shape.ours:
        return
    hit = shape.foreign_tool()
    if hit:
        fmt, schema, name = hit
        raise StateError(
            f"{schema}.{name} is the tracking table of {fmt.title}, not of this runner, and nothing was changed",
            remedy=Remedy("adopt", name=fmt.name),
        )
    if (table.schema, table.name) in shape.foreign:
        columns = ", ".join(shape.foreign[(table.schema, table.name)])
        raise StateError(
            f"{table.qualified} exists but is not this runner's tracking table (columns: {columns}) nor one "
            "'adopt' knows; rename it or move it to another schema, or name another tracking table with "
            "--table / MIGRATIONS_TABLE, then run the command again"
        )


def history_elsewhere(query: Query, table: Table) -> dict[int, Row]:
    """When ``table`` is not the default one: the rows of this runner's table in the default place
    ({} if there is none), so that a project whose history is there is not run again from scratch
    because --table / MIGRATIONS_TABLE was set without moving it."""
    default = Table()
    if table.default or not read_shape(query, default).ours:
        return {}
    return read_rows(query, default)


def ensure_table(query: Query, table: Table, *, repeatables: bool = False) -> bool:
    """Create the tracking table (and its schema) if needed, and the repeatables' table when
    ``repeatables``; refuse another tool's table. Returns whether ours was created."""
    shape = read_shape(query, table)
    refuse_foreign(shape, table)
    missing = [sql for sql, there in ((table.create_sql(), shape.ours),
                                      (table.create_repeatables_sql(), shape.repeatables or not repeatables))
               if not there]
    if missing:
        query(";\n".join([table.schema_sql(), *missing]))
    return not shape.ours


def read_recorded(source: Any, table: Table) -> Recorded | None:
    """Both tables' rows, or None when ours does not exist yet (another tool's: refused)."""
    query = as_query(source)
    shape = read_shape(query, table)
    refuse_foreign(shape, table)
    if not shape.ours:
        return None
    repeatables = None
    if shape.repeatables:
        repeatables = {row.name: row for row in (parse_repeatable(*r) for r in query(table.select_repeatables_sql))}
    return Recorded(read_rows(query, table), repeatables)


def read_rows(source: Any, table: Table) -> dict[int, Row]:
    return {row.version: row for row in (parse_row(*r) for r in as_query(source)(table.select_sql))}


def _time(epoch: Any) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(float(epoch), UTC)


def parse_row(version: Any, description: Any, checksum: Any, epoch: Any, ms: Any, by: Any, dirty: Any) -> Row:
    """A Row from the values psycopg read."""
    return Row(int(version), description, checksum, _time(epoch), None if ms is None else int(ms), by,
               dirty in (True, "t"))


def parse_repeatable(name: Any, checksum: Any, epoch: Any, ms: Any, by: Any) -> RepeatableRow:
    return RepeatableRow(name, checksum, _time(epoch), None if ms is None else int(ms), by)


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
