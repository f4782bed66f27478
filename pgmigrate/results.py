"""What the operations return: plain, documented objects (named tuples), the same for the CLI and
for applications."""

from __future__ import annotations

from collections import namedtuple


class Result(namedtuple("Result", "action version label ms", defaults=(0.0,))):
    """One file that ran, or would run.

    ``action``: applied, rolled back, seeded, recorded, would apply, would roll back, forgot (a
    repeatable migration's row, its file gone), would forget; ``version``: the migration's version
    (None for a repeatable migration and a seed); ``label``: ``000042_add_users`` (a repeatable
    migration: ``R__name``; a seed: its file name); ``ms``: how long it took, in milliseconds."""

    __slots__ = ()


class StatusRow(namedtuple("StatusRow", "version name state applied_at execution_ms applied_by",
                           defaults=(None, None, None))):
    """One migration in 'status'. ``state``: applied, pending, changed (edited since applied),
    missing (recorded, file gone), dirty (stopped part-way: a no-transaction
    file that failed, or a psql-run file that ended its own transaction);
    ``applied_at`` (datetime, UTC), ``execution_ms`` and ``applied_by`` when recorded."""

    __slots__ = ()


class RepeatableStatus(namedtuple("RepeatableStatus", "name state applied_at execution_ms applied_by",
                                   defaults=(None, None, None))):
    """One repeatable migration (``R__name.sql``) in 'status'. ``state``: applied (as the file is
    now), pending (never applied, changed since, or to be applied again after a rollback or a
    part-way failure), missing (recorded, file gone); ``applied_at`` (datetime, UTC), ``execution_ms``
    and ``applied_by`` of its last run, when recorded."""

    __slots__ = ()

    @property
    def label(self) -> str:
        return f"R__{self.name}"


class Status:
    """Every migration's state (``rows``), every repeatable migration's (``repeatables``), the pending
    migrations older than the newest applied (``out_of_order``), whether the tracking table exists,
    and the problems with the migration files (``problems``, one line each: a down file without its up
    file, a duplicate version...)."""

    def __init__(self, rows: list[StatusRow], out_of_order: list[int] | None = None, *,
                 table_exists: bool = True, repeatables: list[RepeatableStatus] | None = None,
                 problems: list[str] | None = None) -> None:
        self.rows = rows
        self.out_of_order = out_of_order or []
        self.table_exists = table_exists
        self.repeatables = repeatables or []
        self.problems = problems or []

    def count(self, state: str) -> int:
        return sum(1 for r in self.rows if r.state == state)

    def count_repeatables(self, state: str) -> int:
        return sum(1 for r in self.repeatables if r.state == state)

    @property
    def clean(self) -> bool:
        """Everything applied, nothing edited, missing or dirty, every repeatable migration applied as
        its file is now, and no problem with the files."""
        return all(r.state == "applied" for r in (*self.rows, *self.repeatables)) and not self.problems

    @property
    def current_version(self) -> int:
        applied = [r.version for r in self.rows if r.state in ("applied", "changed", "missing", "dirty")]
        return max(applied, default=0)
