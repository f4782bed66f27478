"""``adopt``: take over a database another migration tool manages.

The other tool's tracking table, looked for in every schema, says which versions are applied
(each tool's module in ``pgmigrate/formats/`` reads its own); ``adopt`` writes one row per applied
version into our tracking table (``--table``, default ``public.schema_migrations``; created here,
with its schema when missing) with the checksum of the folder's up file
and the file's name as description, the time the other tool recorded where it recorded one
(otherwise now), and a version the other tool left half-done as dirty. Versions the other tool
recorded that have no file in the folder are recorded too, so no history is lost; ``status`` shows
them as ``missing``. A repeatable migration the other tool ran (Flyway's ``R__`` files) is recorded
as applied when the folder's file is the one it ran (the tool's own checksum says so), so ``up``
does not run it again. The old table is renamed in its schema (see ``Format.retired_name``), or left
as it is with ``--keep``. Everything happens in one transaction under the migration lock, so a failure
leaves the database as it was; ``--dry-run`` reads and reports, and writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from . import db, discovery, formats, tracking
from .config import Settings
from .discovery import Folder, Migration
from .errors import StateError, UsageError
from .formats import Found
from .formats._base import Entry, History, RepeatableEntry
from .lock import MigrationLock

COMMAND = "scripts/migrate.py"

_OUTSIDE_SYSTEM = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'"
TABLES_SQL = f"""
SELECT n.nspname, c.relname, array_agg(a.attname::text ORDER BY a.attnum),
       array_agg(format_type(a.atttypid, NULL) ORDER BY a.attnum)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relname = ANY(%s) AND c.relkind IN ('r', 'p') AND {_OUTSIDE_SYSTEM}
GROUP BY 1, 2 ORDER BY 1, 2"""
# What the database holds besides our tables and what extensions own: is it empty?
USER_TABLES_SQL = f"""
SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm') AND {_OUTSIDE_SYSTEM}
  AND NOT (n.nspname = %s AND c.relname IN (%s, %s))
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                  AND d.deptype = 'e')
ORDER BY 1"""


@dataclass
class Record:
    """One row to write into our tracking table."""

    version: int
    label: str
    description: str | None
    checksum: str | None
    applied_at: datetime | None
    execution_ms: int | None
    applied_by: str | None
    dirty: bool
    in_folder: bool
    note: str = ""


def _nothing(_: object) -> None:
    return None


def adopt(settings: Settings, *, tool: str | None = None, table: str | None = None, dry_run: bool = False,
          keep: bool = False, on_note: Callable[[str], None] = _nothing) -> list[str]:
    """Move another tool's history into our tracking table (``settings.table``); return the lines to print."""
    import psycopg

    fmt = formats.get(tool) if tool is not None else None
    folder = discovery.load_folder(settings.migrations_dir, on_note)
    ours = settings.table
    chosen = None
    conn = db.connect(settings.target)
    lock = MigrationLock(settings.target, ours, wait=settings.lock_wait, on_wait=on_note)
    try:
        lock.acquire()
        with conn.transaction():
            cur = conn.cursor()
            if settings.lock_timeout:
                cur.execute(f"SET LOCAL lock_timeout = '{int(settings.lock_timeout * 1000)}ms'")
            found = find_tables(cur, ours)
            chosen = choose(cur, found, fmt, table, ours)
            if not ours.default and (chosen.schema, chosen.name) == (ours.schema, ours.name):
                raise UsageError(
                    f"--table / MIGRATIONS_TABLE names {ours.qualified}, {chosen.format.title}'s table, as this "
                    "runner's tracking table; name the table to adopt with --from-table SCHEMA.NAME, and ours "
                    "(if not public.schema_migrations) with --table; nothing was changed"
                )
            if keep and (chosen.schema, chosen.name) == (ours.schema, ours.name):
                raise UsageError(
                    f"--keep cannot leave {chosen.format.title}'s {ours.qualified} in place: this runner's table "
                    f"needs that name; run adopt without --keep, which keeps the old table as "
                    f"{ours.schema}.{chosen.format.retired_name(chosen.name)}, or keep ours elsewhere with "
                    "--table SCHEMA.NAME"
                )
            history = chosen.format.read(cur, chosen, folder)
            records = plan(folder, history, chosen.format.title)
            repeated = plan_repeatables(folder, history, chosen.format)
            new_name = None if keep else chosen.format.retired_name(chosen.name)
            if new_name:
                _check_free(cur, chosen, new_name)
            lines = [f"found {f.format.title}'s tracking table {f.display}" for f in found if f.format]
            lines += describe(chosen, history, folder, records, new_name, ours, dry_run=dry_run)
            lines[-1:-1] = describe_repeatables(repeated, chosen.format.title, ours, dry_run=dry_run)
            if not dry_run:
                if new_name:
                    _retire(cur, chosen, new_name, ours)
                cur.execute(ours.schema_sql())
                cur.execute(ours.create_sql())
                cur.executemany(ours.adopt_sql, [(r.version, r.description, r.checksum, r.applied_at, r.execution_ms,
                                                  r.applied_by, r.dirty) for r in records.values()])
                _write_repeatables(cur, ours, repeated)
    except psycopg.errors.LockNotAvailable:
        who = chosen.format.title if chosen and chosen.format else "the other tool"
        raise StateError(
            f"another session holds a lock on {chosen.display if chosen else 'its tracking table'} (is {who} "
            "running?); nothing was changed; run adopt again when it is idle"
        ) from None
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise StateError(f"adopt failed and changed nothing: {first}") from None
    finally:
        lock.release()
        conn.close()
    return lines


# --- which table ---


def find_tables(cur: Any, ours: tracking.Table) -> list[Found]:
    """Every table in any schema named like a tracking table, identified where a tool's module
    knows its shape (``format`` None otherwise); ours refused: there is nothing left to adopt."""
    if tracking.read_shape(cur, ours).ours:
        raise StateError(
            f"{ours.qualified} is already this runner's tracking table, so there is nothing to adopt "
            "(adopt only runs on a database that has none yet); see 'status'"
        )
    cur.execute(TABLES_SQL, (formats.table_names(),))
    rows = [Found(schema, name, dict(zip(cols, types))) for schema, name, cols, types in cur.fetchall()]
    beside: dict[str, set[str]] = {}
    for t in rows:
        beside.setdefault(t.schema, set()).add(t.name)
    for t in rows:
        t.format = formats.identify(t, beside[t.schema])
    return rows


def choose(cur: Any, found: list[Found], fmt: formats.Format | None, table: str | None,
           ours: tracking.Table) -> Found:
    """The table to adopt: the one ``--from-table`` names, else the one of ``--from``'s tool, else the
    only one."""
    known = [t for t in found if t.format]
    listing = ", ".join(f"{t.format.name} ({t.display})" for t in known)
    if table is not None:
        return _named(found, fmt, table)
    if fmt is not None:
        mine = [t for t in known if fmt.name in (t.format.name, t.format.same_shape)]
        if len(mine) == 1:
            mine[0].format = fmt
            return mine[0]
        if mine:
            raise UsageError(f"found several {fmt.title} tracking tables: {', '.join(t.display for t in mine)}; "
                             "choose one with --from-table SCHEMA.NAME")
        elsewhere = f"; found {listing} instead" if known else ""
        raise StateError(f"no {fmt.title} tracking table in any schema{elsewhere}")
    if len(known) == 1:
        return known[0]
    if known:
        raise UsageError(f"found the tracking tables of several tools: {listing}; choose one with --from TOOL "
                         "or --from-table SCHEMA.NAME")
    for t in found:
        if (t.schema, t.name) == (ours.schema, ours.name):
            raise StateError(
                f"{ours.qualified} exists but is not this runner's tracking table (columns: "
                f"{', '.join(t.columns)}) nor one 'adopt' knows; rename it or move it to another schema, or keep ours "
                "elsewhere with --table SCHEMA.NAME"
            )
    raise StateError(nothing_found(cur, ours))


def _named(found: list[Found], fmt: formats.Format | None, table: str) -> Found:
    schema, _, name = table.rpartition(".")
    hits = [t for t in found if t.name == name and (not schema or t.schema == schema)]
    if len(hits) != 1:
        what = "several tables are" if hits else "no table is"
        raise UsageError(f"--from-table {table}: {what} named so among the tracking tables adopt knows "
                         f"({', '.join(formats.table_names())}); give SCHEMA.NAME of one")
    hit = hits[0]
    if hit.format is None or (fmt and fmt.name not in (hit.format.name, hit.format.same_shape)):
        what = f"{hit.format.title}'s" if hit.format else "no tool's that adopt knows"
        raise StateError(f"{hit.display} is {what} tracking table (columns: {', '.join(hit.columns)})"
                         + (f", not {fmt.title}'s" if fmt and hit.format else "") + "; nothing was changed")
    if fmt:
        hit.format = fmt
    return hit


def nothing_found(cur: Any, ours: tracking.Table) -> str:
    """Why there is nothing to adopt, and the next step that works on this database."""
    looked = ", ".join(formats.table_names())
    cur.execute(USER_TABLES_SQL, (ours.schema, ours.name, ours.repeatables_name))
    tables = [r[0] for r in cur.fetchall()]
    if not tables:
        return (f"no other tool's tracking table in any schema (looked for {looked}), and the database has no "
                f"tables: nothing to adopt; '{COMMAND} up' applies every migration")
    shown = ", ".join(tables[:3]) + (", ..." if len(tables) > 3 else "")
    return (f"no other tool's tracking table in any schema (looked for {looked}), but the database already has "
            f"{len(tables)} table(s) ({shown}); if migrations of the folder made them, record those as applied "
            f"without running them with '{COMMAND} baseline V' (V: the newest one the schema already has), then "
            f"'{COMMAND} up' applies the rest; nothing was changed")


# --- the plan, and what it says ---


def _record(version: int, m: Migration | None, entry: Entry | None, tool: str) -> Record:
    e = entry or Entry(version)
    if m is not None:
        return Record(version, m.label, m.name, m.up.checksum, e.applied_at, e.execution_ms, e.applied_by, e.dirty,
                      True, e.note)
    label = f"{version:06d}" + (f" ({e.description})" if e.description else "")
    description = e.description or f"adopted from {tool}"  # what status and verify show for it
    return Record(version, label, description, None, e.applied_at, e.execution_ms, e.applied_by, e.dirty, False,
                  e.note)


def plan(folder: Folder, history: History, tool: str) -> dict[int, Record]:
    """version -> the row to write, in version order."""
    files = folder.by_version()
    records: dict[int, Record] = {}
    if history.upto:
        for m in folder.migrations:
            if m.version <= history.upto:
                records[m.version] = _record(m.version, m, None, tool)
    for e in history.entries:
        records[e.version] = _record(e.version, files.get(e.version), e, tool)
    return dict(sorted(records.items()))


def describe(table: Found, history: History, folder: Folder, records: dict[int, Record], new_name: str | None,
             ours: tracking.Table, *, dry_run: bool) -> list[str]:
    would = "would " if dry_run else ""
    name = table.format.title
    lines = [f"{name} history in {table.display}: {history.summary}"]
    for r in records.values():
        state = "dirty" if r.dirty else "applied"
        when = f" at {r.applied_at.isoformat(sep=' ', timespec='seconds')}" if r.applied_at else \
            " (time unknown: recorded as now)"
        details = [state + when] + ([r.note] if r.note else [])
        if not r.in_folder:
            details.append(f"no file in {folder.path}: recorded anyway, 'status' shows it as missing")
        lines.append(f"{would}record {r.label}: {'; '.join(details)}")
    pending = [m for m in folder.migrations if m.version not in records]
    for m in pending:
        lines.append(f"pending {m.label}: not applied by {name}; 'up' applies it")
    lines += [f"note: {n}" for n in history.notes]
    if new_name:
        lines.append(f"{would}rename {table.display} to {table.schema}.{new_name} (kept for reference, no longer "
                     "updated)")
    else:
        lines.append(f"{would}leave {table.display} as it is (--keep); nothing updates it from now on")
    lines.append(f"{would}create {ours.qualified} with {len(records)} row(s)")
    missing = sum(1 for r in records.values() if not r.in_folder)
    dirty = [r.version for r in records.values() if r.dirty]
    tail = [f"{len(pending)} pending"]
    if missing:
        tail.append(f"{missing} missing from the folder")
    if dirty:
        tail.append(f"version {', '.join(map(str, dirty))} dirty (see '{COMMAND} status')")
    if dry_run:
        mine = "" if ours.default else f"--table {ours.qualified} "
        again = f"{COMMAND} {mine}adopt --from-table {table.display}" + ("" if new_name else " --keep")
        lines.append(f"dry run: nothing changed ({', '.join(tail)}); run '{again}' to do it")
    else:
        lines.append(f"adopted {len(records)} version(s) from {name} ({', '.join(tail)}); next: '{COMMAND} status'")
    return lines


class RepeatableRecord(NamedTuple):
    """A repeatable migration the tool ran or the folder holds: ``checksum`` (ours, of the folder's
    file) when that file is the one the tool ran last, so it is recorded as applied; else None."""

    name: str
    entry: RepeatableEntry | None
    in_folder: bool
    checksum: str | None


def plan_repeatables(folder: Folder, history: History, fmt: formats.Format) -> list[RepeatableRecord]:
    files = {r.name: r for r in folder.repeatables}
    ran = {e.name: e for e in history.repeatables}
    out = []
    for name in sorted(set(files) | set(ran)):
        r, e = files.get(name), ran.get(name)
        same = r is not None and e is not None and fmt.repeatable_checksum(r.file.text) == e.checksum
        out.append(RepeatableRecord(name, e, r is not None, r.file.checksum if same else None))
    return out


def describe_repeatables(repeated: list[RepeatableRecord], tool: str, ours: tracking.Table, *,
                         dry_run: bool) -> list[str]:
    would = "would " if dry_run else ""
    lines = []
    for r in repeated:
        if r.checksum is not None:
            when = f" at {r.entry.applied_at.isoformat(sep=' ', timespec='seconds')}" if r.entry.applied_at else ""
            lines.append(f"{would}record R__{r.name}: applied{when}; the file is the one {tool} ran last")
        elif r.entry is None:
            lines.append(f"pending R__{r.name}: not applied by {tool}; 'up' applies it")
        elif r.in_folder:
            lines.append(f"pending R__{r.name}: changed since {tool} ran it; 'up' applies it")
        else:
            lines.append(f"note: {tool} ran the repeatable migration R__{r.name}, which has no file in the folder: "
                         "not recorded")
    recorded = sum(1 for r in repeated if r.checksum is not None)
    if recorded:
        lines.append(f"{would}create {ours.repeatables_qualified} with {recorded} row(s)")
    return lines


def _write_repeatables(cur: Any, ours: tracking.Table, repeated: list[RepeatableRecord]) -> None:
    rows = [(r.name, r.checksum, r.entry.applied_at, r.entry.execution_ms, r.entry.applied_by) for r in repeated
            if r.checksum is not None]
    if rows:
        cur.execute(ours.create_repeatables_sql())
        cur.executemany(ours.repeatable_adopt_sql, rows)


# --- changing the database ---


def _owned_names(cur: Any, table: Found) -> list[tuple[str, str]]:
    """``(kind, name)`` of the indexes and owned sequences of a table whose names start with its name."""
    cur.execute(
        """SELECT 'INDEX', c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
           WHERE i.indrelid = %(t)s::regclass
           UNION ALL
           SELECT 'SEQUENCE', c.relname FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
           WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
             AND d.refobjid = %(t)s::regclass AND c.relkind = 'S' AND d.deptype IN ('a', 'i')""",
        {"t": table.sql},
    )
    return [(kind, name) for kind, name in cur.fetchall() if name.startswith(table.name + "_")]


def _renames(cur: Any, table: Found, new_name: str) -> list[tuple[str, str, str]]:
    return [(kind, name, new_name + name[len(table.name):]) for kind, name in _owned_names(cur, table)]


def _check_free(cur: Any, table: Found, new_name: str) -> None:
    wanted = [new_name] + [new for _, _, new in _renames(cur, table, new_name)]
    for name in wanted:
        if len(name) > 63:
            raise StateError(f"cannot rename {table.display}'s objects: '{name}' is longer than PostgreSQL's 63 "
                             "characters")
        cur.execute("SELECT to_regclass(%s)", (Found(table.schema, name, {}).sql,))
        if cur.fetchone()[0] is not None:
            raise StateError(
                f"cannot keep the old table as {table.schema}.{new_name}: {table.schema}.{name} already exists; "
                "rename or drop it, or pass --keep (when the old table is not schema_migrations); nothing was changed"
            )


def _retire(cur: Any, table: Found, new_name: str, ours: tracking.Table) -> None:
    from psycopg import sql

    schema = sql.Identifier(table.schema)
    renames = _renames(cur, table, new_name)
    cur.execute(sql.SQL("ALTER TABLE {}.{} RENAME TO {}").format(schema, sql.Identifier(table.name),
                                                                  sql.Identifier(new_name)))
    for kind, old, new in renames:
        cur.execute(sql.SQL("ALTER {} {}.{} RENAME TO {}").format(sql.SQL(kind), schema, sql.Identifier(old),
                                                                   sql.Identifier(new)))
    cur.execute(sql.SQL("COMMENT ON TABLE {}.{} IS {}").format(
        schema, sql.Identifier(new_name),
        sql.Literal(f"{table.format.title} history, copied into {ours.qualified} by 'adopt'; no longer updated"),
    ))
