"""Planning: what a command will run, decided before anything runs. Pure functions over the folder
and the recorded rows; no database.

One plan serves ``up``, ``up --dry-run``, ``up --sql``, ``down`` (and its previews), ``redo`` and
``force``: every check is made here (dirty, changed, out of order, missing files and down files,
files that cannot run, unset psql variables, what one transaction cannot hold), so whatever ``up``
refuses, its preview refuses too, with the same error.
"""

from __future__ import annotations

from collections import namedtuple

from .discovery import Folder, Migration, SqlFile, display_path, psql_true
from .errors import FileError, Remedy, StateError, UsageError
from .results import StatusRow
from .tracking import Row


class Planned(namedtuple("Planned", "migration direction")):
    """One file to run: ``migration``'s up or down file."""

    __slots__ = ()

    @property
    def file(self) -> SqlFile:
        return self.migration.file(self.direction)


class Plan:
    """The files a command runs, in order, and how: one transaction each, or (``single``) one for all."""

    def __init__(self, steps: list[Planned], *, single: bool = False) -> None:
        self.steps = steps
        self.single = single

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self):
        return iter(self.steps)

    @property
    def files(self) -> list[SqlFile]:
        return [s.file for s in self.steps]


def plan_up(folder: Folder, rows: dict[int, Row], *, to: int | None = None, steps: int | None = None,
            allow_out_of_order: bool = False, ignore_changed: bool = False, single: bool = False,
            variables: dict[str, str] | None = None) -> Plan:
    check_dirty(rows, "up")
    if not ignore_changed:
        check_changed(folder, rows)
    late = out_of_order(folder, rows)
    if late and not allow_out_of_order:
        labels = ", ".join(folder.by_version()[v].label for v in late)
        raise StateError(f"pending migration {labels} is older than the newest applied version {max(rows)} "
                         "(a branch merge?)", remedy=Remedy("out-of-order"))
    plan = Plan([Planned(m, "up") for m in select_pending(folder, rows, to=to, steps=steps)], single=single)
    check_runnable(plan, variables or {})
    return plan


def plan_down(folder: Folder, rows: dict[int, Row], *, count: int | None = None, to: int | None = None,
              all_: bool = False, variables: dict[str, str] | None = None) -> Plan:
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
    plan = Plan([Planned(files[v], "down") for v in targets])
    check_runnable(plan, variables or {})
    return plan


def plan_redo(folder: Folder, rows: dict[int, Row], *, variables: dict[str, str] | None = None) -> Plan:
    """The newest migration's down, then its up; both files checked before the down runs."""
    if not rows:
        raise StateError("nothing is applied, so there is nothing to redo")
    down = plan_down(folder, rows, count=1, variables=variables)
    m = down.steps[0].migration
    up = Plan([Planned(m, "up")])
    check_runnable(up, variables or {})
    return Plan([*down.steps, *up.steps])


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
