"""The operations: up, down, redo, status, version, force, baseline, rehash, verify, fresh, seed, repeat.

``Runner`` holds one command's session on one database (connections, the migration lock, the
tracking table) and strings the flow together: the folder is read (discovery), the rows are read
(tracking), a plan is made and checked (planning), and only then is anything run (apply). It
returns data and raises the package's exceptions; progress goes to callbacks, so the CLI prints
and the Python API logs.
"""

from __future__ import annotations

from collections.abc import Callable

from . import discovery, tracking
from .apply import Applier
from .config import Settings
from .discovery import Folder
from .errors import ConnectError, StateError
from .planning import (
    Plan,
    PlannedRepeatable,
    compute_status,
    out_of_order,
    plan_down,
    plan_force,
    plan_redo,
    plan_repeat,
    plan_up,
    problems,
    repeatable_status,
    runnable_problems,
)
from .results import Result, Status, StatusRow
from .tracking import Recorded

__all__ = ["Result", "Runner", "Status", "StatusRow"]


def _nothing(_: object) -> None:
    return None


class Runner:
    """Runs the operations against one database and one migrations folder."""

    def __init__(self, settings: Settings, *, on_result: Callable[[Result], None] = _nothing,
                 on_note: Callable[[str], None] = _nothing, on_output: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.table = settings.table
        self.on_result = on_result
        self.on_note = on_note
        self.on_output = on_output
        self.conn = None
        self.lock = None
        self.table_ready = False
        self.repeatables_ready = False
        self.elsewhere: dict[int, tracking.Row] = {}  # see planning.check_elsewhere
        self.applier: Applier | None = None

    # --- session ---

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.applier:
            self.applier.close()
            self.applier = None
        if self.lock:
            self.lock.release()
            self.lock = None
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _connect(self):
        if self.conn is None:
            from .db import connect

            self.conn = connect(self.settings.target, notices=self.on_output)
        return self.conn

    def _locked(self) -> Recorded:
        """Connect, take the migration lock, read the tracking rows (none if there is no table yet).

        The table itself is made by the first write, so a command that refuses, because of a bad
        file say, leaves the database exactly as it found it."""
        if self.lock is None:
            from .db import connect_two
            from .lock import MigrationLock

            lock_conn = None
            if self.conn is None:
                self.conn, lock_conn = connect_two(self.settings.target, notices=self.on_output)
            self.lock = MigrationLock(self.settings.target, self.table, wait=self.settings.lock_wait,
                                      on_wait=self.on_note)
            self.lock.acquire(lock_conn)
        recorded = self._recorded()
        if recorded is None:
            self.elsewhere = tracking.history_elsewhere(self._query, self.table)
        self.table_ready = recorded is not None
        self.repeatables_ready = recorded is not None and recorded.repeatables is not None
        return recorded or Recorded({}, None)

    def _ensure_table(self, *, repeatables: bool = False) -> None:
        if not self.table_ready or (repeatables and not self.repeatables_ready):
            tracking.ensure_table(self._query, self.table, repeatables=repeatables)
            self.table_ready = True
            self.repeatables_ready = self.repeatables_ready or repeatables

    def _query(self, sql: str) -> list[tuple]:
        from .db import rows

        return rows(self._connect(), sql)

    def _applier(self) -> Applier:
        if self.applier is None:
            self.applier = Applier(self.settings, self._connect(), on_result=self.on_result, on_note=self.on_note,
                                   on_output=self.on_output)
        return self.applier

    def _run(self, plan: Plan, *, dry_run: bool = False) -> list[Result]:
        if (plan.steps or plan.forget) and not dry_run:
            self._ensure_table(repeatables=any(isinstance(step, PlannedRepeatable) for step in plan))
        return self._applier().run(plan, dry_run=dry_run)

    def folder(self, *, strict: bool = True) -> Folder:
        return discovery.load_folder(self.settings.migrations_dir, self.on_note, strict=strict)

    # --- read-only ---

    def _recorded(self) -> Recorded | None:
        """The tracking rows, or None when the table does not exist yet (another tool's: refused)."""
        return tracking.read_recorded(self._query, self.table)

    def status(self) -> Status:
        """Every migration's state, and every repeatable's. A problem with the files (a down file
        without its up file, a duplicate version...) does not hide the rest: the rows that can be shown
        are, with the problems beside them; only another tool's folder, of which nothing can be read,
        is refused."""
        folder = self.folder(strict=False)
        if folder.foreign:
            folder.raise_problems()
        recorded = self._recorded()
        rows, repeated = recorded or ({}, None)
        pending = [m.up for m in folder.migrations if m.version not in rows and m.up is not None]
        return Status(compute_status(folder, rows), out_of_order=out_of_order(folder, rows),
                      table_exists=recorded is not None, repeatables=repeatable_status(folder, repeated or {}),
                      problems=[*folder.problems, *runnable_problems(pending)])

    def version(self) -> tuple[int, bool]:
        """The highest recorded version (0 when none) and whether it is dirty."""
        if not self.table_ready:  # not yet known to be ours in this session
            shape = tracking.read_shape(self._query, self.table)
            tracking.refuse_foreign(shape, self.table)
            if not shape.ours:
                return 0, False
        row = next(iter(self._query(self.table.newest_sql)), None)
        return (int(row[0]), bool(row[1])) if row else (0, False)

    def history(self) -> list[tracking.Row]:
        recorded = self._recorded()
        return list(recorded.rows.values()) if recorded else []

    # --- planning (nothing runs) ---

    def plan(self, command: str, **options: object) -> Plan:
        """The checked plan of ``up``, ``down``, ``redo`` or ``force``, under the lock; nothing runs."""
        folder = self.folder()
        rows, repeated = self._locked()
        variables = self.settings.variables
        if command == "up":
            return plan_up(folder, rows, repeated=repeated, variables=variables, elsewhere=self.elsewhere, **options)
        if command == "down":
            return plan_down(folder, rows, repeated=repeated, variables=variables, **options)
        if command == "redo":
            return plan_redo(folder, rows, repeated=repeated, variables=variables)
        return plan_force(folder, options["version"], variables=variables)

    # --- changing the database ---

    def init(self) -> dict[str, bool]:
        created_db = False
        try:
            self._connect()
        except ConnectError as exc:
            if exc.remedy is None or exc.remedy.action != "create-database":
                raise
            from .admin import create_database

            created_db = create_database(self.settings.target)
            self._connect()
        self._locked()
        self._ensure_table()
        return {"created_database": created_db}

    def up(self, *, to: int | None = None, steps: int | None = None, dry_run: bool = False,
           allow_out_of_order: bool = False, ignore_changed: bool = False,
           single_transaction: bool = False, repeatables: bool = True) -> list[Result]:
        """Apply the pending migrations, then (when none is left pending, and ``repeatables``) the
        repeatable migrations that changed."""
        folder = self.folder()
        rows, repeated = self._locked()
        plan = plan_up(folder, rows, repeated=repeated, to=to, steps=steps, allow_out_of_order=allow_out_of_order,
                       ignore_changed=ignore_changed, single=single_transaction, variables=self.settings.variables,
                       repeatables=repeatables, elsewhere=self.elsewhere)
        if not dry_run:
            self._fill_checksums(folder, rows)
        return self._run(plan, dry_run=dry_run)

    def _fill_checksums(self, folder: Folder, rows: dict[int, tracking.Row]) -> None:
        """Rows recorded by a file applied by hand with psql have no checksum yet: record it."""
        files = folder.by_version()
        for version, row in rows.items():
            if row.checksum is None and version in files and not row.dirty:
                self._connect().execute(self.table.fill_checksum_sql, (files[version].up.checksum, version))

    def down(self, count: int | None = None, *, to: int | None = None, all_: bool = False,
             dry_run: bool = False) -> list[Result]:
        return self._run(self.plan("down", count=count, to=to, all_=all_), dry_run=dry_run)

    def redo(self, *, dry_run: bool = False) -> list[Result]:
        return self._run(self.plan("redo"), dry_run=dry_run)

    def force(self, version: int) -> Result:
        return self._run(self.plan("force", version=version))[0]

    def repeat(self, names: list[str] | None = None) -> list[Result]:
        """Apply the repeatable migrations named (every one when None) now, whatever else is pending:
        ``check`` builds a live database's state with it."""
        folder = self.folder()
        self._locked()
        return self._run(plan_repeat(folder, names, variables=self.settings.variables))

    def baseline(self, version: int) -> list[Result]:
        folder = self.folder()
        rows = self._locked().rows
        results = []
        for m in folder.migrations:
            if m.version > version or m.version in rows:
                continue
            self._ensure_table()
            self._connect().execute(self.table.baseline_sql, (m.version, m.name, m.up.checksum))
            result = Result("recorded", m.version, m.label)
            self.on_result(result)
            results.append(result)
        return results

    def rehash(self, version: int) -> tuple[str | None, str]:
        folder = self.folder()
        rows = self._locked().rows
        if version not in rows:
            raise StateError(f"version {version} is not recorded as applied; nothing to rehash")
        m = folder.by_version().get(version)
        if m is None:
            raise StateError(f"version {version} is recorded but its file is missing; restore it first")
        self._connect().execute(self.table.rehash_sql, (m.up.checksum, version))
        return rows[version].checksum, m.up.checksum

    def verify(self) -> list[str]:
        """Every problem with the folder and the database's history, as one line each."""
        folder = self.folder(strict=False)
        recorded = self._recorded()
        return problems(folder, *(recorded or (None, None)))

    def fresh(self, *, allow_production: bool = False) -> list[Result]:
        from .admin import drop_everything, refuse_production

        refuse_production(self.settings.environment, allow_production)
        plan_up(self.folder(), {}, variables=self.settings.variables)  # every file checked before the drop
        self._locked()
        drop_everything(self._connect())
        self.table_ready = self.repeatables_ready = False
        return self.up()

    def seed(self) -> list[Result]:
        import time

        from .planning import Planned, check_runnable

        files = discovery.seed_files(self.settings.seeds_dir)
        check_runnable(Plan([Planned(discovery.Migration(0, f.path.name, up=f), "up") for f in files]),
                       self.settings.variables)
        results = []
        for f in files:
            start = time.perf_counter()
            self._applier().execute(f, [], transactional=f.transactional)
            result = Result("seeded", None, f.path.name, (time.perf_counter() - start) * 1000)
            self.on_result(result)
            results.append(result)
        return results
