"""Planning: what a command will run, decided before anything runs. Pure functions over the folder
and the recorded rows; no database.

One plan serves ``up``, ``up --dry-run``, ``up --sql``, ``down`` (and its previews), ``redo`` and
``force``: every check is made here (dirty, changed, out of order, missing files and down files,
files that cannot run, unset psql variables, what one transaction cannot hold), so whatever ``up``
refuses, its preview refuses too, with the same error.

Repeatable migrations (``R__name.sql``) come after the versioned ones of a run that leaves no
versioned migration pending (they are written for the newest schema), in name order, each when its
checksum differs from the one recorded. A rollback marks them all to be applied again (see
``Planned.tracking``); they themselves are never rolled back.
"""

from __future__ import annotations

from collections import namedtuple

from .discovery import Folder, Migration, Repeatable, SqlFile, display_path, psql_true
from .errors import FileError, Remedy, StateError, UsageError
from .results import RepeatableStatus, StatusRow
from .tracking import RepeatableRow, Row, Step, Table


class Planned(namedtuple("Planned", "migration direction stale_repeatables", defaults=(False,))):
    """One file to run: ``migration``'s up or down file; ``stale_repeatables``: a rollback that marks
    the recorded repeatable migrations to be applied again, in its own transaction."""

    __slots__ = ()

    @property
    def file(self) -> SqlFile:
        return self.migration.file(self.direction)

    @property
    def version(self) -> int:
        return self.migration.version

    @property
    def label(self) -> str:
        return self.migration.label

    def tracking(self, table: Table, transactional: bool) -> list[Step]:
        """The tracking statements that go with the file: one (``transactional``: in the file's
        transaction) or a dirty mark before it and a clean mark after it."""
        m = self.migration
        if self.direction == "up":
            if transactional:
                return [(table.record_sql, (m.version, m.name, m.up.checksum))]
            return [(table.mark_dirty_sql, (m.version, m.name, m.up.checksum)), (table.mark_clean_sql, (m.version,))]
        stale = [(table.repeatables_stale_sql, ())] if self.stale_repeatables else []
        if transactional:
            return [(table.delete_sql, (m.version,)), *stale]
        return [(table.mark_dirty_for_down_sql, (m.version,)), (table.delete_sql, (m.version,)), *stale]


class PlannedRepeatable(namedtuple("PlannedRepeatable", "repeatable")):
    """A repeatable migration to (re-)apply."""

    __slots__ = ()
    direction = "up"
    version = None

    @property
    def file(self) -> SqlFile:
        return self.repeatable.file

    @property
    def label(self) -> str:
        return self.repeatable.label

    def tracking(self, table: Table, transactional: bool) -> list[Step]:
        """Its row, in its transaction; or, outside one, 'to be applied again' before and the
        checksum after (a part-way failure leaves it pending)."""
        r = self.repeatable
        if transactional:
            return [(table.repeatable_record_sql, (r.name, r.file.checksum))]
        return [(table.repeatable_unmark_sql, (r.name,)), (table.repeatable_finish_sql, (r.file.checksum, r.name))]


def escape_mark(step: Planned | PlannedRepeatable, table: Table) -> Step:
    """What marks ``step``'s row honestly when its file ended the transaction that was to record it:
    the mark its file would get before it ran outside a transaction (dirty; for a repeatable, 'to be
    applied again')."""
    return step.tracking(table, False)[0]


class Plan:
    """The files a command runs, in order, and how: one transaction each, or (``single``) one for all;
    ``forget``: the recorded repeatable migrations whose files are gone, whose rows go after the files."""

    def __init__(self, steps: list[Planned | PlannedRepeatable], *, single: bool = False,
                 forget: list[str] | None = None) -> None:
        self.steps = steps
        self.single = single
        self.forget = forget or []

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self):
        return iter(self.steps)

    @property
    def files(self) -> list[SqlFile]:
        return [s.file for s in self.steps]


def plan_up(folder: Folder, rows: dict[int, Row], *, repeated: dict[str, RepeatableRow] | None = None,
            to: int | None = None, steps: int | None = None, allow_out_of_order: bool = False,
            ignore_changed: bool = False, single: bool = False, variables: dict[str, str] | None = None,
            repeatables: bool = True, elsewhere: dict[int, Row] | None = None) -> Plan:
    """The pending migrations (up to ``to``, at most ``steps``) and, when that leaves none pending
    and ``repeatables``, the repeatable ones that changed (``repeated``: their rows). ``elsewhere``:
    the rows of the default tracking table when another one is configured and does not exist yet."""
    check_elsewhere(folder, rows, elsewhere or {})
    check_dirty(rows, "up")
    if not ignore_changed:
        check_changed(folder, rows)
    late = out_of_order(folder, rows)
    if late and not allow_out_of_order:
        labels = ", ".join(folder.by_version()[v].label for v in late)
        raise StateError(f"pending migration {labels} is older than the newest applied version {max(rows)} "
                         "(a branch merge?)", remedy=Remedy("out-of-order"))
    pending = select_pending(folder, rows, to=to, steps=steps)
    planned: list[Planned | PlannedRepeatable] = [Planned(m, "up") for m in pending]
    forget = []
    if repeatables and len(pending) == sum(1 for m in folder.migrations if m.version not in rows):
        planned += [PlannedRepeatable(r) for r in pending_repeatables(folder, repeated or {})]
        forget = missing_repeatables(folder, repeated or {})
    plan = Plan(planned, single=single, forget=forget)
    check_runnable(plan, variables or {})
    return plan


def pending_repeatables(folder: Folder, repeated: dict[str, RepeatableRow]) -> list[Repeatable]:
    """The repeatable migrations never applied, changed since, or marked to be applied again."""
    return [r for r in folder.repeatables if r.name not in repeated or repeated[r.name].checksum != r.file.checksum]


def missing_repeatables(folder: Folder, repeated: dict[str, RepeatableRow]) -> list[str]:
    names = {r.name for r in folder.repeatables}
    return [name for name in repeated if name not in names]


def plan_down(folder: Folder, rows: dict[int, Row], *, repeated: dict[str, RepeatableRow] | None = None,
              count: int | None = None, to: int | None = None, all_: bool = False,
              variables: dict[str, str] | None = None) -> Plan:
    targets = select_rollback(rows, count=count, to=to, all_=all_)
    dirty = [v for v, r in rows.items() if r.dirty]
    if dirty and dirty != targets[:1]:
        check_dirty(rows, "down")
    files = folder.by_version()
    for version in targets:
        m = files.get(version)
        if m is None:
            raise StateError(f"version {version} ({rows[version].description}) is recorded but its files are "
                             "missing; restore its .up.sql/.down.sql from version control to roll it back")
        if m.down is None:
            raise StateError(f"{m.label} has no down file ({m.label}.down.sql); nothing was rolled back",
                             remedy=Remedy("write-down"))
    stale = any(r.checksum is not None for r in (repeated or {}).values())
    plan = Plan([Planned(files[v], "down", stale) for v in targets])
    check_runnable(plan, variables or {})
    return plan


def plan_redo(folder: Folder, rows: dict[int, Row], *, repeated: dict[str, RepeatableRow] | None = None,
              variables: dict[str, str] | None = None) -> Plan:
    """The newest migration's down, then its up, then the repeatable migrations (the down marked
    them to be applied again); every file checked before the down runs."""
    if not rows:
        raise StateError("nothing is applied, so there is nothing to redo")
    down = plan_down(folder, rows, repeated=repeated, count=1, variables=variables)
    m = down.steps[0].migration
    up = Plan([Planned(m, "up")])
    if all(x.version in rows for x in folder.migrations):  # nothing else pending: the repeatables follow
        up.steps += [PlannedRepeatable(r) for r in pending_repeatables(folder, {})]
        up.forget = missing_repeatables(folder, repeated or {})
    check_runnable(up, variables or {})
    return Plan([*down.steps, *up.steps], forget=up.forget)


def plan_repeat(folder: Folder, names: list[str] | None = None, *,
                variables: dict[str, str] | None = None) -> Plan:
    """The repeatable migrations named (every one when None), now, whatever else is pending."""
    plan = Plan([PlannedRepeatable(r) for r in folder.repeatables if names is None or r.name in names])
    check_runnable(plan, variables or {})
    return plan


def plan_force(folder: Folder, version: int, *, variables: dict[str, str] | None = None) -> Plan:
    m = folder.by_version().get(version)
    if m is None:
        raise UsageError(f"no migration with version {version} in {folder.path}")
    plan = Plan([Planned(m, "up")])
    check_runnable(plan, variables or {})
    return plan


# --- the checks ---


def check_runnable(plan: Plan, variables: dict[str, str]) -> None:
    """Read and check every file the plan runs before any of it runs."""
    from .psql import variables_problem

    if "ON_ERROR_STOP" in variables and not psql_true([variables["ON_ERROR_STOP"]]):
        raise UsageError(f"the psql variable ON_ERROR_STOP={variables['ON_ERROR_STOP']} (--set) would let psql go on "
                         "after an error, and a failed migration could be recorded as applied; leave it out (the "
                         "runner stops at the first error)")
    for f in plan.files:
        f.check_runnable()
        if f.needs_psql:
            problem = variables_problem(f, variables)
            if problem:
                raise FileError(problem[0], remedy=Remedy("set-variable", name=problem[1]))
    if plan.single:
        for step in plan.steps:
            if not step.file.transactional:
                raise FileError(f"{display_path(step.file)} is marked '-- migrate:no-transaction', so it cannot "
                                "run inside the one transaction of --single-transaction; apply it in a run of its "
                                "own, without --single-transaction")


def check_elsewhere(folder: Folder, rows: dict[int, Row], elsewhere: dict[int, Row]) -> None:
    """Refuse to start this folder's history afresh while the default tracking table holds it (the
    same versions under the same names): --table / MIGRATIONS_TABLE was set without moving it.
    Another project's history there (other versions or names) is no reason to stop."""
    files = folder.by_version()
    same = [v for v, row in elsewhere.items() if v in files and row.description == files[v].name]
    if same and not rows:
        raise StateError(f"public.schema_migrations holds the history of this folder ({len(same)} of its migrations, "
                         f"up to {files[max(same)].label}), but another tracking table is configured (--table / "
                         "MIGRATIONS_TABLE) and has none: nothing was changed; move the history there first "
                         "(MIGRATION_GUIDE.md, 'Where the history is kept'), or unset --table / MIGRATIONS_TABLE")


def dirty_message(version: int, name: str | None) -> str:
    return f"version {version} ({name}) is dirty: its migration stopped part-way, and what ran before that is committed"


def check_dirty(rows: dict[int, Row], command: str) -> None:
    for version, row in rows.items():
        if row.dirty:
            raise StateError(f"'{command}' refused: " + dirty_message(version, row.description),
                             remedy=Remedy("force", version))


def changed_message(m: Migration, row: Row) -> str:
    return (f"{display_path(m.up)} changed since it was applied (recorded {row.checksum[:8]}, now "
            f"{m.up.checksum[:8]})")


def check_changed(folder: Folder, rows: dict[int, Row]) -> None:
    files = folder.by_version()
    for version, row in rows.items():
        m = files.get(version)
        if m and row.checksum is not None and not row.dirty and row.checksum != m.up.checksum:
            raise StateError("'up' refused: " + changed_message(m, row), remedy=Remedy("changed", version))


# --- selection and status, over the folder and the rows ---


def select_pending(folder: Folder, rows: dict[int, Row], *, to: int | None, steps: int | None) -> list[Migration]:
    if to is not None and to not in folder.by_version():
        raise UsageError(f"no migration with version {to} in {folder.path}; see 'status' for the versions")
    if steps is not None and steps < 1:
        raise UsageError("steps must be 1 or more")
    pending = [m for m in folder.migrations if m.version not in rows and (to is None or m.version <= to)]
    return pending[:steps] if steps is not None else pending


def select_rollback(rows: dict[int, Row], *, count: int | None, to: int | None, all_: bool) -> list[int]:
    given = [name for name, value in (("a count", count), ("--to", to), ("--all", all_ or None))
             if value is not None]
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)} cannot be combined: say how far to roll back in one way")
    applied = sorted(rows, reverse=True)
    if all_:
        return applied
    if to is not None:
        if to != 0 and to not in rows:
            raise UsageError(f"version {to} is not applied; 'down --to' takes an applied version (or 0 for all)")
        return [v for v in applied if v > to]
    count = 1 if count is None else count
    if count < 1:
        raise UsageError("the number of migrations to roll back must be 1 or more")
    return applied[:count]


def out_of_order(folder: Folder, rows: dict[int, Row]) -> list[int]:
    if not rows:
        return []
    newest = max(rows)
    return [m.version for m in folder.migrations if m.version not in rows and m.version < newest]


def compute_status(folder: Folder, rows: dict[int, Row]) -> list[StatusRow]:
    out = []
    files = folder.by_version()
    for version in sorted(set(files) | set(rows)):
        m, row = files.get(version), rows.get(version)
        if row is None:
            out.append(StatusRow(version, m.name, "pending"))
            continue
        if row.dirty:
            state = "dirty"
        elif m is None:
            state = "missing"
        elif row.checksum is not None and row.checksum != m.up.checksum:
            state = "changed"
        else:
            state = "applied"
        name = m.name if m else (row.description or "?")
        out.append(StatusRow(version, name, state, row.applied_at, row.execution_ms, row.applied_by))
    return out


def repeatable_status(folder: Folder, repeated: dict[str, RepeatableRow]) -> list[RepeatableStatus]:
    """Every repeatable migration: applied (its checksum recorded), pending (never applied, changed
    since, or marked to be applied again), missing (recorded, file gone: 'up' forgets it)."""
    files = {r.name: r for r in folder.repeatables}
    out = []
    for name in sorted(set(files) | set(repeated)):
        r, row = files.get(name), repeated.get(name)
        if r is None:
            state = "missing"
        elif row is None or row.checksum != r.file.checksum:
            state = "pending"
        else:
            state = "applied"
        out.append(RepeatableStatus(name, state, *(row[2:] if row else ())))
    return out


def runnable_problems(files: list[SqlFile]) -> list[str]:
    """What ``check_runnable`` finds wrong with each of ``files``, one line each."""
    found = []
    for f in files:
        try:
            f.check_runnable()
        except FileError as exc:
            found.append(str(exc.message))
    return found


def problems(folder: Folder, rows: dict[int, Row] | None, repeated: dict[str, RepeatableRow] | None) -> list[str]:
    """Every problem with the folder (already scanned, not strict) and the recorded history (``rows``
    None: no tracking table yet), one line each: what ``verify`` reports."""
    every = [f for m in folder.migrations for f in (m.up, m.down) if f is not None]
    found = [*folder.problems, *runnable_problems(every + [r.file for r in folder.repeatables])]
    if rows is None:
        return found
    files = folder.by_version()
    for row in compute_status(folder, rows):
        if row.state == "changed":
            found.append(changed_message(files[row.version], rows[row.version]))
        elif row.state == "missing":
            found.append(f"version {row.version} ({row.name}) is recorded but its file is missing")
        elif row.state == "dirty":
            found.append(dirty_message(row.version, row.name))
    for v in out_of_order(folder, rows):
        found.append(f"{files[v].label} is pending but older than the newest applied version")
    for name in missing_repeatables(folder, repeated or {}):
        found.append(f"repeatable migration R__{name} is recorded but its file R__{name}.sql is missing; restore it, "
                     "or let the next 'up' forget it (what it made stays in the database)")
    return found
