"""``adopt``: take over a database another migration tool manages.

The other tool's tracking table says which versions are applied; ``adopt`` writes one row per
applied version into ``public.schema_migrations`` (created here) with the checksum of the folder's
up file and the file's name as description, the time the other tool recorded where it recorded one
(otherwise now), and a version the other tool left half-done as dirty. Versions the other tool
recorded that have no file in the folder are recorded too, so no history is lost; ``status`` shows
them as ``missing``. The old table is renamed (see ``retired_name``), or left as it is with
``--keep``. Everything happens in one transaction under the migration lock, so a failure leaves the
database as it was; ``--dry-run`` reads and reports, and writes nothing.

How each tool's history reads:

* golang-migrate: one row, the current version (and ``dirty``): every folder version up to it is
  applied; a dirty current version is recorded as dirty.
* dbmate, Rails: one row per applied version, a string of digits.
* goose: one row per up or down; the latest row (highest id) of each version decides; version 0
  is goose's own start marker and is skipped.
* Flyway: versioned rows in ``installed_rank`` order; a successful apply marks the version applied,
  a failed one (``success = false``) dirty, a later successful undo or delete un-applies it; a
  baseline marker counts every folder version up to it as applied; repeatable rows are ignored.
  Versions must be whole numbers (``1``, ``1.0`` and ``001`` are version 1; ``1.1`` is refused).
* sea-orm: ``mYYYYMMDD_HHMMSS_name`` maps to version ``YYYYMMDDHHMMSS`` (the digit groups after
  the ``m``, joined); when the folder has no such version but exactly one migration called ``name``,
  it maps to that one.
* a hand-rolled ``schema_version(version, applied_at, description)``: one row per applied version.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import db, discovery, tracking
from .config import Settings
from .discovery import Folder, Migration
from .errors import StateError, UsageError
from .lock import MigrationLock

COMMAND = "scripts/migrate.py"
TOOLS = {
    "golang-migrate": "golang-migrate",
    "dbmate": "dbmate",
    "rails": "Rails",
    "sea-orm": "sea-orm-cli",
    "goose": "goose",
    "flyway": "Flyway",
    "schema_version": "schema_version",
}
_SAME_SHAPE = {"dbmate": "rails", "rails": "dbmate"}  # one table shape, two tools

INSERT_SQL = (
    f"INSERT INTO {tracking.QUALIFIED} (version, description, checksum, applied_at, execution_ms, applied_by, dirty)\n"
    "VALUES (%s, %s, %s, coalesce(%s::timestamptz, now()), %s, coalesce(%s::text, current_user::text), %s)"
)


@dataclass
class Entry:
    """One version the other tool recorded."""

    version: int
    dirty: bool = False
    applied_at: datetime | None = None
    description: str | None = None  # the other tool's name for it, used when the folder has no file
    execution_ms: int | None = None
    applied_by: str | None = None
    note: str = ""


@dataclass
class History:
    entries: list[Entry] = field(default_factory=list)
    upto: int | None = None  # every folder version up to this one counts as applied
    summary: str = ""


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


def adopt(settings: Settings, *, tool: str | None = None, dry_run: bool = False, keep: bool = False,
          on_note: Callable[[str], None] = _nothing) -> list[str]:
    """Move another tool's history into ``public.schema_migrations``; return the lines to print."""
    import psycopg

    if tool is not None and tool not in TOOLS:
        raise UsageError(f"unknown tool '{tool}' for --from; choose one of: {', '.join(TOOLS)}")
    folder = discovery.load_folder(settings.migrations_dir, on_note)
    table = "its tracking table"
    conn = db.connect(settings.target)
    lock = MigrationLock(settings.target, wait=settings.lock_wait, on_wait=on_note)
    try:
        lock.acquire()
        with conn.transaction():
            cur = conn.cursor()
            if settings.lock_timeout:
                cur.execute(f"SET LOCAL lock_timeout = '{int(settings.lock_timeout * 1000)}ms'")
            shape = tracking.read_shape(cur)
            tool, found = choose_tool(shape, tool)
            table = found
            if keep and table == tracking.TABLE:
                raise UsageError(
                    f"--keep cannot leave {TOOLS[tool]}'s {tracking.QUALIFIED} in place: this runner's table needs "
                    f"that name; run adopt without --keep, which keeps the old table as "
                    f"{tracking.SCHEMA}.{retired_name(table, tool)}"
                )
            columns, types = shape.foreign[table]
            history = READERS[tool](cur, table, dict(zip(columns, types)), folder)
            records = plan(folder, history, tool)
            new_name = None if keep else retired_name(table, tool)
            if new_name:
                _check_free(cur, table, new_name)
            lines = describe(tool, table, history, folder, records, new_name, dry_run=dry_run)
            if not dry_run:
                if new_name:
                    _retire(cur, table, new_name, tool)
                cur.execute(tracking.CREATE_SQL)
                cur.executemany(INSERT_SQL, [(r.version, r.description, r.checksum, r.applied_at, r.execution_ms,
                                              r.applied_by, r.dirty) for r in records.values()])
    except psycopg.errors.LockNotAvailable:
        raise StateError(
            f"another session holds a lock on {table} (is {TOOLS.get(tool or '', 'the other tool')} running?); "
            "nothing was changed; run adopt again when it is idle"
        ) from None
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise StateError(f"adopt failed and changed nothing: {first}") from None
    finally:
        lock.release()
        conn.close()
    return lines


# --- which tool ---


def tools_found(shape: tracking.Shape) -> dict[str, str]:
    """tool -> table, for every other tool's tracking table in the database."""
    found: dict[str, str] = {}
    for table in tracking.FOREIGN_TABLES:
        if table not in shape.foreign:
            continue
        tool = tracking.identify(table, *shape.foreign[table])
        if tool == "dbmate" and "ar_internal_metadata" in shape.foreign:
            tool = "rails"
        if tool:
            found.setdefault(tool, table)
    return found


def choose_tool(shape: tracking.Shape, wanted: str | None) -> tuple[str, str]:
    if shape.ours:
        raise StateError(
            f"{tracking.QUALIFIED} is already this runner's tracking table, so there is nothing to adopt "
            "(adopt only runs on a database that has none yet); see 'status'"
        )
    found = tools_found(shape)
    listing = ", ".join(f"{t} ({tracking.SCHEMA}.{table})" for t, table in found.items())
    if wanted is None:
        if len(found) == 1:
            return next(iter(found.items()))
        if found:
            raise UsageError(f"found the tracking tables of several tools: {listing}; choose one with --from TOOL")
        if tracking.TABLE in shape.foreign:
            tracking.refuse_foreign(shape)  # explains the unknown schema_migrations
        raise StateError(
            f"no other tool's tracking table in schema {tracking.SCHEMA} (looked for "
            f"{', '.join(t for t in tracking.FOREIGN_TABLES if t != 'ar_internal_metadata')}); nothing to adopt - "
            f"'{COMMAND} up' starts tracking from scratch, 'baseline V' records an existing schema"
        )
    for tool in (wanted, _SAME_SHAPE.get(wanted)):
        if tool in found:
            return wanted, found[tool]
    elsewhere = f"; found {listing} instead" if found else ""
    raise StateError(f"no {TOOLS[wanted]} tracking table in schema {tracking.SCHEMA}{elsewhere}")


def retired_name(table: str, tool: str) -> str:
    """Where the old table goes: ``schema_migrations_<tool>`` for the tools that used our table's
    name, ``<table>_old`` for the others."""
    if table == tracking.TABLE:
        return f"{table}_{tool.replace('-', '_')}"
    return f"{table}_old"


# --- reading each tool's history ---


def _q(table: str) -> str:
    return f'{tracking.SCHEMA}."{table}"'


def _time_expr(column: str, type_name: str) -> str:
    """SQL turning a recorded time (timestamp, timestamptz, unix seconds, text) into timestamptz."""
    if type_name in ("bigint", "integer", "numeric", "double precision", "real", "smallint"):
        return f'to_timestamp("{column}")'
    return f'"{column}"::timestamptz'


def _int_version(text: str, tool: str, table: str) -> int:
    value = text.strip()
    if not value.isdigit() or int(value) > discovery.MAX_VERSION:
        raise StateError(
            f"{TOOLS[tool]} recorded version '{text}' in {tracking.SCHEMA}.{table}, which is not a whole number this "
            "runner can use as a version; nothing was changed"
        )
    return int(value)


def read_golang_migrate(cur: Any, table: str, types: dict[str, str], folder: Folder) -> History:
    cur.execute(f"SELECT version, dirty FROM {_q(table)}")
    rows = cur.fetchall()
    if not rows:
        return History(summary="no version recorded (nothing applied)")
    if len(rows) > 1:
        raise StateError(
            f"{tracking.SCHEMA}.{table} has {len(rows)} rows but golang-migrate keeps exactly one (the current "
            "version); set it right with golang-migrate's 'force V' first; nothing was changed"
        )
    version, dirty = int(rows[0][0]), bool(rows[0][1])
    if version < 0:
        raise StateError(
            f"golang-migrate recorded version {version} (dirty: {str(dirty).lower()}): a first migration failed "
            "part-way; repair the schema and set a real version with golang-migrate's 'force V' first"
        )
    if version == 0:
        return History(summary="version 0 (nothing applied)")
    note = "it stopped part-way under golang-migrate" if dirty else ""
    return History([Entry(version, dirty=dirty, note=note)], upto=version,
                   summary=f"version {version}" + (" (dirty)" if dirty else ""))


def read_dbmate(cur: Any, table: str, types: dict[str, str], folder: Folder, tool: str = "dbmate") -> History:
    cur.execute(f"SELECT version FROM {_q(table)}")
    versions = sorted(_int_version(str(r[0]), tool, table) for r in cur.fetchall())
    return History([Entry(v) for v in versions if v], summary=f"{len(versions)} version(s) applied")


def read_rails(cur: Any, table: str, types: dict[str, str], folder: Folder) -> History:
    return read_dbmate(cur, table, types, folder, tool="rails")


def read_goose(cur: Any, table: str, types: dict[str, str], folder: Folder) -> History:
    order = '"id" DESC' if "id" in types else '"tstamp" DESC'
    stamp = _time_expr("tstamp", types["tstamp"]) if "tstamp" in types else "NULL::timestamptz"
    cur.execute(
        f'SELECT DISTINCT ON ("version_id") "version_id", "is_applied", {stamp} FROM {_q(table)} '
        f'ORDER BY "version_id", {order}'
    )
    entries = [Entry(int(v), applied_at=at) for v, applied, at in cur.fetchall() if applied and int(v) > 0]
    return History(entries, summary=f"{len(entries)} version(s) applied")


_FLYWAY_VERSION = re.compile(r"^\d+([._]\d+)*$")


def flyway_version(text: str) -> int | None:
    """A Flyway version as a whole number: ``7``, ``007``, ``7.0`` and ``7_0`` are 7; ``7.1`` has none."""
    text = text.strip()
    if not _FLYWAY_VERSION.match(text):
        return None
    first, *rest = re.split(r"[._]", text)
    if any(int(part) for part in rest) or int(first) > discovery.MAX_VERSION:
        return None
    return int(first)


def read_flyway(cur: Any, table: str, types: dict[str, str], folder: Folder) -> History:
    cur.execute(
        'SELECT "version", "description", "type", "installed_by", '
        f'{_time_expr("installed_on", types.get("installed_on", "timestamp"))}, "execution_time", "success" '
        f'FROM {_q(table)} ORDER BY "installed_rank"'
    )
    state: dict[int, Entry] = {}
    upto = None
    odd = []
    for version, description, kind, by, on, ms, success in cur.fetchall():
        kind = (kind or "").upper()
        if version is None or kind == "SCHEMA":
            continue  # repeatable migrations; the marker of schemas Flyway created
        v = flyway_version(version)
        if v is None:
            odd.append(version)
            continue
        if kind.endswith("BASELINE"):
            upto = max(upto or 0, v)
        elif kind.startswith("UNDO") or kind == "DELETE":
            if success:
                state.pop(v, None)
        elif v:
            note = "it failed part-way under Flyway (success = false)" if not success else ""
            state[v] = Entry(v, dirty=not success, applied_at=on, description=description, execution_ms=ms,
                             applied_by=by, note=note)
    if odd:
        raise StateError(
            f"Flyway recorded version(s) {', '.join(odd)} in {tracking.SCHEMA}.{table}, which have no whole-number "
            "equivalent here; renumber those migrations to whole numbers in Flyway first; nothing was changed"
        )
    summary = f"{len(state)} version(s) applied" + (f", baseline {upto}" if upto else "")
    return History(sorted(state.values(), key=lambda e: e.version), upto=upto, summary=summary)


_SEA_ORM_NAME = re.compile(r"^m?((?:\d+_?)*\d)(?:_(.*))?$")


def sea_orm_version(name: str, folder: Folder) -> tuple[int | None, str]:
    """``(version, how)`` for a sea-orm migration name; version None when it cannot be mapped."""
    m = _SEA_ORM_NAME.match(name)
    digits = m.group(1).replace("_", "") if m else ""
    rest = (m.group(2) or "") if m else name.removeprefix("m").lstrip("_")
    files = folder.by_version()
    if digits and int(digits) in files:
        return int(digits), ""
    same_name = [mig for mig in folder.migrations if rest and mig.name == rest]
    if len(same_name) == 1:
        return same_name[0].version, f"sea-orm '{name}', matched by name"
    if digits and 0 < int(digits) <= discovery.MAX_VERSION:
        return int(digits), f"sea-orm '{name}'"
    return None, ""


def read_sea_orm(cur: Any, table: str, types: dict[str, str], folder: Folder) -> History:
    cur.execute(f'SELECT "version", {_time_expr("applied_at", types["applied_at"])} FROM {_q(table)} ORDER BY 1')
    entries: dict[int, Entry] = {}
    unmapped = []
    for name, at in cur.fetchall():
        version, how = sea_orm_version(name, folder)
        if version is None:
            unmapped.append(name)
            continue
        if version in entries:
            raise StateError(
                f"sea-orm migrations '{entries[version].description}' and '{name}' both map to version {version}; "
                "give their SQL files distinct versions (mYYYYMMDD_HHMMSS_name -> YYYYMMDDHHMMSS_name.up.sql)"
            )
        entries[version] = Entry(version, applied_at=at, description=name, note=how)
    if unmapped:
        raise StateError(
            f"sea-orm migration(s) {', '.join(unmapped)} have no version digits and no migration of the same name "
            "in the folder; name their SQL files NNNNNN_<name>.up.sql and run adopt again; nothing was changed"
        )
    return History(sorted(entries.values(), key=lambda e: e.version), summary=f"{len(entries)} version(s) applied")


def read_schema_version(cur: Any, table: str, types: dict[str, str], folder: Folder) -> History:
    description = '"description"::text' if "description" in types else "NULL::text"
    cur.execute(
        f'SELECT "version"::text, {_time_expr("applied_at", types["applied_at"])}, {description} '
        f'FROM {_q(table)} ORDER BY 1'
    )
    entries = []
    for version, at, desc in cur.fetchall():
        v = _int_version(version, "schema_version", table)
        if v:
            entries.append(Entry(v, applied_at=at, description=desc))
    entries.sort(key=lambda e: e.version)
    return History(entries, summary=f"{len(entries)} version(s) applied")


READERS: dict[str, Callable[[Any, str, dict[str, str], Folder], History]] = {
    "golang-migrate": read_golang_migrate,
    "dbmate": read_dbmate,
    "rails": read_rails,
    "goose": read_goose,
    "flyway": read_flyway,
    "sea-orm": read_sea_orm,
    "schema_version": read_schema_version,
}


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


def describe(tool: str, table: str, history: History, folder: Folder, records: dict[int, Record],
             new_name: str | None, *, dry_run: bool) -> list[str]:
    would = "would " if dry_run else ""
    name = TOOLS[tool]
    lines = [f"{name} history in {tracking.SCHEMA}.{table}: {history.summary}"]
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
    old = f"{tracking.SCHEMA}.{table}"
    if new_name:
        lines.append(f"{would}rename {old} to {tracking.SCHEMA}.{new_name} (kept for reference, no longer updated)")
    else:
        lines.append(f"{would}leave {old} as it is (--keep); nothing updates it from now on")
    lines.append(f"{would}create {tracking.QUALIFIED} with {len(records)} row(s)")
    missing = sum(1 for r in records.values() if not r.in_folder)
    dirty = [r.version for r in records.values() if r.dirty]
    tail = [f"{len(pending)} pending"]
    if missing:
        tail.append(f"{missing} missing from the folder")
    if dirty:
        tail.append(f"version {', '.join(map(str, dirty))} dirty (see '{COMMAND} status')")
    if dry_run:
        again = f"{COMMAND} adopt --from {tool}" + ("" if new_name else " --keep")
        lines.append(f"dry run: nothing changed ({', '.join(tail)}); run '{again}' to do it")
    else:
        lines.append(f"adopted {len(records)} version(s) from {name} ({', '.join(tail)}); next: '{COMMAND} status'")
    return lines


# --- changing the database ---


def _owned_names(cur: Any, table: str) -> list[tuple[str, str]]:
    """``(kind, name)`` of the indexes and owned sequences of a table whose names start with its name."""
    cur.execute(
        """SELECT 'INDEX', c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
           WHERE i.indrelid = %(t)s::regclass
           UNION ALL
           SELECT 'SEQUENCE', c.relname FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
           WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
             AND d.refobjid = %(t)s::regclass AND c.relkind = 'S' AND d.deptype IN ('a', 'i')""",
        {"t": f'{tracking.SCHEMA}."{table}"'},
    )
    return [(kind, name) for kind, name in cur.fetchall() if name.startswith(table + "_")]


def _renames(cur: Any, table: str, new_name: str) -> list[tuple[str, str, str]]:
    return [(kind, name, new_name + name[len(table):]) for kind, name in _owned_names(cur, table)]


def _check_free(cur: Any, table: str, new_name: str) -> None:
    wanted = [new_name] + [new for _, _, new in _renames(cur, table, new_name)]
    for name in wanted:
        if len(name) > 63:
            raise StateError(f"cannot rename {table}'s objects: '{name}' is longer than PostgreSQL's 63 characters")
        cur.execute("SELECT to_regclass(%s)", (f'{tracking.SCHEMA}."{name}"',))
        if cur.fetchone()[0] is not None:
            raise StateError(
                f"cannot keep the old table as {tracking.SCHEMA}.{new_name}: {tracking.SCHEMA}.{name} already exists; "
                "rename or drop it, or pass --keep (when the old table is not schema_migrations); nothing was changed"
            )


def _retire(cur: Any, table: str, new_name: str, tool: str) -> None:
    from psycopg import sql

    schema = sql.Identifier(tracking.SCHEMA)
    renames = _renames(cur, table, new_name)
    cur.execute(sql.SQL("ALTER TABLE {}.{} RENAME TO {}").format(schema, sql.Identifier(table),
                                                                  sql.Identifier(new_name)))
    for kind, old, new in renames:
        cur.execute(sql.SQL("ALTER {} {}.{} RENAME TO {}").format(sql.SQL(kind), schema, sql.Identifier(old),
                                                                   sql.Identifier(new)))
    cur.execute(sql.SQL("COMMENT ON TABLE {}.{} IS {}").format(
        schema, sql.Identifier(new_name),
        sql.Literal(f"{TOOLS[tool]} history, copied into {tracking.QUALIFIED} by 'adopt'; no longer updated"),
    ))
