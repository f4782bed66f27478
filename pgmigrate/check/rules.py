"""The rules of ``check``: stable names, default severities, and the wording of each finding.

Names and severities are part of the interface (CI jobs filter on them); messages name the table
and say what the finding means for the application's traffic, then what to do instead.
"""

from __future__ import annotations

from collections import namedtuple

ERROR, WARNING, INFO = "error", "warning", "info"
SEVERITIES = (ERROR, WARNING, INFO)

DOWN_NOT_REVERTING = "down-not-reverting"
INDEX_WITHOUT_CONCURRENTLY = "index-without-concurrently"
TABLE_REWRITE = "table-rewrite"
CONSTRAINT_VALIDATION = "constraint-validation"
ACCESS_EXCLUSIVE_LOCK = "access-exclusive-lock"
NEEDS_NO_TRANSACTION = "needs-no-transaction"
DRIFT = "drift"
UP_FAILS = "up-fails"

# name -> (severity, what it means); a hazard's severity may be raised by the live table's size.
RULES = {
    DOWN_NOT_REVERTING: (ERROR, "after up then down the schema differs from before up (info: no down file)"),
    INDEX_WITHOUT_CONCURRENTLY: (WARNING, "an index built on an existing table without CONCURRENTLY"),
    TABLE_REWRITE: (WARNING, "an existing table rewritten (new relfilenode)"),
    CONSTRAINT_VALIDATION: (WARNING, "a constraint added to an existing table and validated at once"),
    ACCESS_EXCLUSIVE_LOCK: (INFO, "ACCESS EXCLUSIVE on an existing table (warning: held while more runs)"),
    NEEDS_NO_TRANSACTION: (ERROR, "a statement that cannot run in a transaction, in a transactional file"),
    DRIFT: (ERROR, "the live schema differs from what the migrations build at its version"),
    UP_FAILS: (ERROR, "the up file fails on a fresh database; later migrations are not checked"),
}
HAZARDS = (INDEX_WITHOUT_CONCURRENTLY, TABLE_REWRITE, CONSTRAINT_VALIDATION, ACCESS_EXCLUSIVE_LOCK)

# A hazard on a live table above either limit is an error.
LARGE_ROWS = 100_000
LARGE_BYTES = 100 * 1024 * 1024


class Finding(namedtuple("Finding", "rule severity version file line message table", defaults=(None,))):
    """One finding: ``file`` as shown to the user, ``line`` 1-based (None when there is none: drift),
    ``table`` the table a hazard is about (for judging it by the live table's size)."""

    __slots__ = ()

    def as_dict(self) -> dict[str, object]:
        return dict(self._asdict())


# --- locks ---

_LOCK_NAMES = {
    "AccessShareLock": "ACCESS SHARE", "RowShareLock": "ROW SHARE", "RowExclusiveLock": "ROW EXCLUSIVE",
    "ShareUpdateExclusiveLock": "SHARE UPDATE EXCLUSIVE", "ShareLock": "SHARE",
    "ShareRowExclusiveLock": "SHARE ROW EXCLUSIVE", "ExclusiveLock": "EXCLUSIVE",
    "AccessExclusiveLock": "ACCESS EXCLUSIVE",
}
_LOCK_ORDER = list(_LOCK_NAMES)
ACCESS_EXCLUSIVE = "AccessExclusiveLock"


def strongest(modes: set[str] | frozenset[str]) -> str | None:
    """The strongest of the lock modes (pg_locks names), or None."""
    known = [m for m in modes if m in _LOCK_NAMES]
    return max(known, key=_LOCK_ORDER.index) if known else None


def lock_effect(mode: str | None) -> str:
    """``SHARE lock: writes wait`` for a pg_locks mode."""
    if mode is None:
        return "a lock that could not be observed (the statement ran outside a transaction, or in psql)"
    name = _LOCK_NAMES.get(mode, mode)
    if mode == ACCESS_EXCLUSIVE:
        return f"{name} lock: reads and writes wait"
    if _LOCK_ORDER.index(mode) >= _LOCK_ORDER.index("ShareLock"):
        return f"{name} lock: writes wait"
    return f"{name} lock"


# --- hazard messages ---

NO_TRANSACTION_HINT = "in a file of its own with '-- migrate:no-transaction' at the top"


def index_message(index: str, table: str, mode: str | None, *, rebuilt: bool = False) -> str:
    verb = "is rebuilt" if rebuilt else "is built"
    fix = "REINDEX ... CONCURRENTLY (or a new index built CONCURRENTLY)" if rebuilt else "CREATE INDEX CONCURRENTLY"
    return (f"index {index} {verb} on existing table {table} without CONCURRENTLY, under {lock_effect(mode)} "
            f"until the migration commits, for as long as the build takes; use {fix} {NO_TRANSACTION_HINT}")


def rewrite_message(table: str, relkind: str, mode: str | None) -> str:
    if relkind == "m":
        return (f"materialized view {table} is rebuilt under {lock_effect(mode)} until the migration commits; "
                "use REFRESH MATERIALIZED VIEW CONCURRENTLY (it needs a unique index)")
    return (f"existing table {table} is rewritten (new relfilenode) under {lock_effect(mode)}, for as long as "
            "copying it and rebuilding its indexes takes; avoid the rewrite (add the column without a volatile "
            "default and backfill in batches; change a type through a new column)")


def constraint_message(kind: str, name: str, table: str, mode: str | None) -> str:
    what = {"c": "CHECK", "f": "FOREIGN KEY"}.get(kind, kind)
    return (f"{what} constraint {name} is added to existing table {table} and validated at once: a full scan "
            f"of {table} under {lock_effect(mode)}; add it NOT VALID, then VALIDATE CONSTRAINT in a later "
            "migration (which lets writes go on)")


def not_null_message(column: str, table: str, mode: str | None) -> str:
    return (f"column {column} of existing table {table} is set NOT NULL: a full scan of {table} under "
            f"{lock_effect(mode)}; first add CHECK ({column} IS NOT NULL) NOT VALID and validate it in a later "
            "migration, then SET NOT NULL skips the scan")


def access_exclusive_message(table: str, dropped: bool, held_for: int) -> str:
    text = (f"takes ACCESS EXCLUSIVE lock on existing table {table}"
            + (" (dropping it)" if dropped else "")
            + ": every query on it waits until the migration commits, and queues behind any long query "
              "already running on it")
    if held_for:
        text += (f"; the same transaction runs {held_for} more statement(s) while holding it: run this "
                 "statement last, or in a migration of its own")
    return text


def needs_no_transaction_message(statement: str) -> str:
    return (f"'{shorten(statement)}' cannot run inside a transaction block and this file runs in one, so the "
            f"migration fails; put it {NO_TRANSACTION_HINT}")


def shorten(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


# --- sizes ---


def is_large(rows: int | None, size: int) -> bool:
    return (rows or 0) > LARGE_ROWS or size > LARGE_BYTES


def size_text(rows: int | None, size: int) -> str:
    """``200,000 rows, 9.8 MB`` (no row count for a table never analyzed)."""
    if rows is None:
        return f"{pretty_bytes(size)}, never analyzed"
    return f"{rows:,} rows, {pretty_bytes(size)}"


def pretty_bytes(size: int) -> str:
    """Sizes as PostgreSQL's pg_size_pretty shows them (powers of 1024)."""
    if size < 1024:
        return f"{size} bytes"
    value = float(size)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1024
        if value < 1024 or unit == "TB":
            break
    return f"{value:.1f} {unit}"
