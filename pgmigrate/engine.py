"""The operations: up, down, redo, status, version, force, baseline, rehash, verify, fresh, seed.

They return plain data and raise the package's exceptions; progress (one result per migration, as
it happens) and notes (waits, retries, warnings) go to callbacks, so the CLI prints and the Python
API stays silent.
"""

from __future__ import annotations

import os
import time
from collections import namedtuple
from collections.abc import Callable

from . import discovery, tracking
from .config import APPLICATION_NAME, Limits, Settings, connection_failure
from .discovery import Folder, Migration, SqlFile, display_path
from .errors import ConnectError, FileError, MigrationFailed, StateError, UsageError
from .tracking import Step

# The modules that write (db, executor, psql) are imported where a command writes: the read-only
# commands (status, version) need only a libpq connection and start faster.

COMMAND = "scripts/migrate.py"
QUEUE_DEPTH = 4  # psql-run files sent ahead of the one running (see Runner._apply)
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")


class Result(namedtuple("Result", "action version label ms", defaults=(0.0,))):
    """One file that ran, or would run. ``action``: applied, rolled back, seeded, recorded, would
    apply, would roll back; ``ms``: how long it took."""

    __slots__ = ()


class StatusRow(namedtuple("StatusRow", "version name state applied_at execution_ms applied_by",
                           defaults=(None, None, None))):
    """One line of 'status'. ``state``: applied, pending, changed, missing, dirty."""

    __slots__ = ()


class Status:
    """Every migration's state, the pending ones older than the newest applied, and whether the
    tracking table exists."""

    def __init__(self, rows: list[StatusRow], out_of_order: list[int] | None = None, *,
                 table_exists: bool = True) -> None:
        self.rows = rows
        self.out_of_order = out_of_order or []
        self.table_exists = table_exists

    def count(self, state: str) -> int:
        return sum(1 for r in self.rows if r.state == state)

    @property
    def clean(self) -> bool:
        return all(r.state == "applied" for r in self.rows)

    @property
    def current_version(self) -> int:
        applied = [r.version for r in self.rows if r.state in ("applied", "changed", "missing", "dirty")]
        return max(applied, default=0)


def _nothing(_: object) -> None:
    return None


class Runner:
    """Runs the operations against one database and one migrations folder."""

    def __init__(self, settings: Settings, *, on_result: Callable[[Result], None] = _nothing,
                 on_note: Callable[[str], None] = _nothing, on_output: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.on_result = on_result
        self.on_note = on_note
        self.on_output = on_output
        self.limits = Limits(settings.lock_timeout, settings.statement_timeout, settings.lock_retries)
        self.conn = None  # a libpq.Connection, for the commands that write
        self.reader = None  # a libpq.Connection, for the read-only commands
        self.lock = None
        self.table_ready = False
        self.psql = None
        self.watch = None  # executor.BlockerWatch, made by the first transactional migration

    # --- session management ---

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.watch:
            self.watch.close()
            self.watch = None
        if self.psql:
            self.psql.close()
            self.psql = None
        if self.lock:
            self.lock.release()
            self.lock = None
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.reader is not None:
            self.reader.close()
            self.reader = None

    def _connect(self) -> None:
        if self.conn is None:
            from . import db

            self._use(db.connect(self.settings.target))

    def _use(self, conn) -> None:
        """Make ``conn`` the runner's connection; with --verbose its notices are shown."""
        self.conn = conn
        if self.on_output:
            conn.on_notice(self.on_output)

    def _query(self) -> tracking.Query:
        """A query function for reading: the runner's connection, or a plain one of its own."""
        if self.conn is None and self.reader is None:
            from . import libpq

            target = self.settings.target
            self.reader = libpq.connect(target.conninfo, APPLICATION_NAME, lambda m: connection_failure(target, m))
        return (self.conn or self.reader).query

    def _locked(self) -> dict[int, tracking.Row]:
        """Connect, take the migration lock, read the tracking rows (none if there is no table yet).

        The table itself is made by the first write (``_ensure_table``), so a command that refuses,
        because of a bad file say, leaves the database exactly as it found it."""
        if self.lock is None:
            from . import db

            lock_conn = None
            if self.conn is None:
                conn, lock_conn = db.connect_two(self.settings.target)
                self._use(conn)
            self.lock = db.MigrationLock(self.settings.target, wait=self.settings.lock_wait, on_wait=self.on_note)
            self.lock.acquire(lock_conn)
        rows = self._recorded()
        self.table_ready = rows is not None
        return rows or {}

    def _ensure_table(self) -> None:
        if not self.table_ready:
            tracking.ensure_table(self.conn.query)
            self.table_ready = True

    def folder(self, *, strict: bool = True) -> Folder:
        return discovery.load_folder(self.settings.migrations_dir, self.on_note, strict=strict)

    # --- read-only ---

    def _recorded(self) -> dict[int, tracking.Row] | None:
        """The tracking rows, or None when the table does not exist yet (another tool's: refused)."""
        query = self._query()
        shape = tracking.read_shape(query)
        if not shape.ours:
            tracking.refuse_foreign(shape)
            return None
        return tracking.read_rows(query)

    def status(self) -> Status:
        folder = self.folder()
        rows = self._recorded()
        if rows is None:
            return Status(compute_status(folder, {}), table_exists=False)
        return Status(compute_status(folder, rows), out_of_order=out_of_order(folder, rows))

    def version(self) -> tuple[int, bool]:
        """The highest recorded version (0 when none) and whether it is dirty."""
        query = self._query()
        if not self.table_ready:  # not yet known to be ours in this session
            shape = tracking.read_shape(query)
            if not shape.ours:
                tracking.refuse_foreign(shape)
                return 0, False
        row = next(iter(query(tracking.NEWEST_SQL)), None)
        return (int(row[0]), row[1] in (True, "t")) if row else (0, False)

    def history(self) -> list[tracking.Row]:
        return list((self._recorded() or {}).values())

    # --- init ---

    def init(self) -> dict[str, bool]:
        created_db = False
        try:
            self._connect()
        except ConnectError as exc:
            if "does not exist" not in str(exc) or "database" not in str(exc):
                raise
            created_db = create_database(self.settings.target)
            self._connect()
        self._locked()
        self._ensure_table()
        return {"created_database": created_db}

    # --- up ---

    def up(self, *, to: int | None = None, steps: int | None = None, dry_run: bool = False,
           allow_out_of_order: bool = False, ignore_changed: bool = False) -> list[Result]:
        folder = self.folder()
        rows = self._locked()
        check_dirty(rows, "up")
        if not ignore_changed:
            check_changed(folder, rows)
        late = out_of_order(folder, rows)
        if late and not allow_out_of_order:
            labels = ", ".join(folder.by_version()[v].label for v in late)
            raise StateError(
                f"pending migration {labels} is older than the newest applied version {max(rows)} "
                "(a branch merge?); apply it anyway with 'up --allow-out-of-order', after checking it "
                "does not depend on the newer ones"
            )
        plan = select_pending(folder, rows, to=to, steps=steps)
        self._precheck([m.up for m in plan])
        self._fill_checksums(folder, rows)
        return self._apply(plan, "up", dry_run=dry_run)

    def _fill_checksums(self, folder: Folder, rows: dict[int, tracking.Row]) -> None:
        """Rows recorded by a file applied by hand with psql have no checksum yet: record it."""
        files = folder.by_version()
        for version, row in rows.items():
            if row.checksum is None and version in files and not row.dirty:
                self.conn.execute(tracking.FILL_CHECKSUM_SQL, (files[version].up.checksum, version))

    # --- down ---

    def down(self, count: int | None = 1, *, to: int | None = None, all_: bool = False,
             dry_run: bool = False) -> list[Result]:
        folder = self.folder()
        rows = self._locked()
        targets = select_rollback(rows, count=count, to=to, all_=all_)
        files = folder.by_version()
        dirty = [v for v, r in rows.items() if r.dirty]
        if dirty and dirty != targets[:1]:
            check_dirty(rows, "down")
        for version in targets:
            m = files.get(version)
            if m is None:
                raise StateError(
                    f"version {version} ({rows[version].description}) is recorded but its files are missing; "
                    f"restore its .up.sql/.down.sql from version control to roll it back"
                )
            if m.down is None:
                raise StateError(
                    f"{m.label} has no down file ({m.label}.down.sql); write one to roll it back - nothing was "
                    "rolled back"
                )
        plan = [files[v] for v in targets]
        self._precheck([m.down for m in plan])
        return self._apply(plan, "down", dry_run=dry_run)

    def redo(self) -> list[Result]:
        rows = self._locked()
        if not rows:
            raise StateError("nothing is applied, so there is nothing to redo; run 'up'")
        newest = max(rows)
        results = self.down(1)
        folder = self.folder()
        m = folder.by_version()[newest]
        result = Result("applied", m.version, m.label, self._run(m, "up"))
        self.on_result(result)
        return [*results, result]

    # --- repairs ---

    def force(self, version: int) -> Result:
        folder = self.folder()
        self._locked()
        m = folder.by_version().get(version)
        if m is None:
            raise UsageError(f"no migration with version {version} in {self.settings.migrations_dir}")
        self._precheck([m.up])
        result = Result("applied", m.version, m.label, self._run(m, "up"))
        self.on_result(result)
        return result

    def baseline(self, version: int) -> list[Result]:
        folder = self.folder()
        rows = self._locked()
        results = []
        for m in folder.migrations:
            if m.version > version or m.version in rows:
                continue
            self._ensure_table()
            self.conn.execute(tracking.BASELINE_SQL, (m.version, m.name, m.up.checksum))
            result = Result("recorded", m.version, m.label)
            self.on_result(result)
            results.append(result)
        return results

    def rehash(self, version: int) -> tuple[str | None, str]:
        folder = self.folder()
        rows = self._locked()
        if version not in rows:
            raise StateError(f"version {version} is not recorded as applied; nothing to rehash")
        m = folder.by_version().get(version)
        if m is None:
            raise StateError(f"version {version} is recorded but its file is missing; restore it first")
        new = m.up.checksum
        self.conn.execute(tracking.REHASH_SQL, (new, version))
        return rows[version].checksum, new

    def verify(self) -> list[str]:
        """Every problem with the folder and the database's history, as one line each."""
        folder = self.folder(strict=False)
        problems = list(folder.problems)
        for m in folder.migrations:
            for f in (m.up, m.down):
                if f is None:
                    continue
                try:
                    f.check_runnable()
                except FileError as exc:
                    problems.append(str(exc))
        rows = self._recorded()
        if rows is None:
            return problems
        for row in compute_status(folder, rows):
            if row.state == "changed":
                problems.append(changed_message(folder.by_version()[row.version], rows[row.version]))
            elif row.state == "missing":
                problems.append(f"version {row.version} ({row.name}) is recorded but its file is missing")
            elif row.state == "dirty":
                problems.append(dirty_message(row.version, row.name))
        for v in out_of_order(folder, rows):
            problems.append(f"{folder.by_version()[v].label} is pending but older than the newest applied version")
        return problems

    # --- destructive ---

    def fresh(self, *, allow_production: bool = False) -> list[Result]:
        refuse_production(allow_production)
        folder = self.folder()
        self._precheck([m.up for m in folder.migrations])
        self._locked()
        drop_everything(self.conn)
        self.table_ready = False
        return self.up()

    # --- seeds ---

    def seed(self) -> list[Result]:
        files = discovery.seed_files(self.settings.seeds_dir)
        self._precheck(files)
        self._connect()
        results = []
        for f in files:
            start = time.perf_counter()
            self._execute(f, [], transactional=f.transactional)
            result = Result("seeded", None, f.path.name, (time.perf_counter() - start) * 1000)
            self.on_result(result)
            results.append(result)
        return results

    # --- running one file ---

    def _precheck(self, files: list[SqlFile]) -> None:
        """Read and check every file a command will run before running any of them."""
        for f in files:
            f.check_runnable()
            if f.needs_psql:
                from .psql import variables_problem

                problem = variables_problem(f, self.settings.variables)
                if problem:
                    raise FileError(problem)

    def _apply(self, plan: list[Migration], direction: str, *, dry_run: bool) -> list[Result]:
        """Run the plan in order, each migration reported as it ends (or, dry, as it would run).

        Consecutive psql-run transactional files are queued in psql (``PsqlSession.submit``), up to
        QUEUE_DEPTH of them; any other file first waits for the queue to empty, so migrations still
        commit one after another, in order."""
        done, would = ("applied", "would apply") if direction == "up" else ("rolled back", "would roll back")
        results: list[Result] = []
        queued: list[tuple[Migration, float]] = []  # (migration, when it was sent), oldest first
        last_end = time.perf_counter()

        def report(m: Migration, ms: float = 0.0, action: str = done) -> None:
            result = Result(action, m.version, m.label, ms)
            self.on_result(result)
            results.append(result)

        def collect_oldest() -> None:
            nonlocal last_end
            m, sent = queued[0]
            try:
                self._collect(queued, direction)
            except KeyboardInterrupt:  # stop psql; report what had committed before it stopped
                for _ in self.psql.interrupt():
                    report(queued.pop(0)[0])
                raise
            end = time.perf_counter()
            report(m, (end - max(sent, last_end)) * 1000)
            last_end = end

        for m in plan:
            if dry_run:
                report(m, action=would)
                continue
            if self._queueable(m.file(direction)):
                if len(queued) >= QUEUE_DEPTH:
                    collect_oldest()
                self._submit(m, direction, first=not queued)
                queued.append((m, time.perf_counter()))
                continue
            while queued:
                collect_oldest()
            report(m, self._run(m, direction))
            last_end = time.perf_counter()
        while queued:
            collect_oldest()
        return results

    def _queueable(self, file: SqlFile) -> bool:
        if not (file.needs_psql and file.transactional):
            return False
        from .psql import DIES_WITH_PARENT

        return DIES_WITH_PARENT

    def _submit(self, m: Migration, direction: str, *, first: bool) -> None:
        file = m.file(direction)
        self._ensure_table()
        psql = self._psql_session()
        if first and self._watch():
            self.watch.arm(psql.backend_pid())
        psql.submit(file, tracking_steps(m, direction, True), self.limits)

    def _collect(self, queued: list[tuple[Migration, float]], direction: str) -> None:
        """Wait for the oldest queued migration; after a lock timeout, wait and send it and those
        queued after it (which psql never ran) again; when retries run out, raise."""
        from .executor import LOCK_NOT_AVAILABLE, wait_before_retry

        retry = 0
        while True:
            try:
                self.psql.collect()
            except MigrationFailed as exc:
                blockers = self.watch.disarm() if self.watch else ""
                if blockers and exc.sqlstate == LOCK_NOT_AVAILABLE:
                    exc.details.append(f"blocked by {blockers}")
                retry += 1
                m = queued[0][0]
                if not wait_before_retry(exc, retry, self.limits, self.on_note, m.file(direction)):
                    raise
                for i, (again, _) in enumerate(queued):
                    self._submit(again, direction, first=i == 0)
                continue
            queued.pop(0)
            if self.watch and queued:  # the next queued file's time starts now
                self.watch.arm(self.psql.pid)
            elif self.watch:
                self.watch.disarm()
            return

    def _watch(self) -> bool:
        """Whether lock timeouts are watched (then ``self.watch`` exists)."""
        if self.limits.lock_timeout > 0 and self.watch is None:
            from .executor import BlockerWatch

            self.watch = BlockerWatch(self.settings.target)
        return self.watch is not None

    def _psql_session(self):
        if self.psql is None:
            from .psql import PsqlSession

            self.psql = PsqlSession(self.settings.target, self.settings.variables,
                                    verbose=self.settings.verbose, on_output=self.on_output)
        return self.psql

    def _run(self, m: Migration, direction: str) -> float:
        file = m.file(direction)
        self._ensure_table()
        start = time.perf_counter()
        self._execute(file, tracking_steps(m, direction, file.transactional), transactional=file.transactional)
        return (time.perf_counter() - start) * 1000

    def _execute(self, file: SqlFile, steps: list[Step], *, transactional: bool) -> None:
        from .executor import retry_on_lock_timeout, run_autocommit, run_transactional, watching

        if transactional:
            self._watch()
        if file.needs_psql:
            psql = self._psql_session()

            def attempt() -> None:
                with watching(self.watch if transactional else None, psql.backend_pid()):
                    psql.run(file, steps, self.limits, transactional=transactional)

            if transactional:
                retry_on_lock_timeout(attempt, self.limits, self.on_note, file)
            else:
                attempt()
        elif transactional:
            run_transactional(self.conn, file, steps, self.limits, self.on_note, self.watch)
        else:
            before, after = (steps[0], steps[1]) if steps else (None, None)
            run_autocommit(self.conn, file, before, after)


def tracking_steps(m: Migration, direction: str, transactional: bool) -> list[Step]:
    """The tracking statements that go with running one migration file."""
    if direction == "up":
        if transactional:
            return [(tracking.RECORD_SQL, (m.version, m.name, m.up.checksum))]
        return [(tracking.MARK_DIRTY_SQL, (m.version, m.name, m.up.checksum)), (tracking.MARK_CLEAN_SQL, (m.version,))]
    if transactional:
        return [(tracking.DELETE_SQL, (m.version,))]
    return [(tracking.MARK_DIRTY_FOR_DOWN_SQL, (m.version,)), (tracking.DELETE_SQL, (m.version,))]


# --- decisions, as plain functions over the folder and the recorded rows ---


def compute_status(folder: Folder, rows: dict[int, tracking.Row]) -> list[StatusRow]:
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


def out_of_order(folder: Folder, rows: dict[int, tracking.Row]) -> list[int]:
    if not rows:
        return []
    newest = max(rows)
    return [m.version for m in folder.migrations if m.version not in rows and m.version < newest]


def select_pending(folder: Folder, rows: dict[int, tracking.Row], *, to: int | None,
                   steps: int | None) -> list[Migration]:
    if to is not None and to not in folder.by_version():
        raise UsageError(f"no migration with version {to} in {folder.path}; see 'status' for the versions")
    if steps is not None and steps < 1:
        raise UsageError("--steps must be 1 or more")
    pending = [m for m in folder.migrations if m.version not in rows and (to is None or m.version <= to)]
    return pending[:steps] if steps is not None else pending


def select_rollback(rows: dict[int, tracking.Row], *, count: int | None, to: int | None, all_: bool) -> list[int]:
    applied = sorted(rows, reverse=True)
    if all_:
        return applied
    if to is not None:
        if to != 0 and to not in rows:
            raise UsageError(f"version {to} is not applied; 'down --to' takes an applied version (or 0 for all)")
        return [v for v in applied if v > to]
    if count is None or count < 1:
        raise UsageError("the number of migrations to roll back must be 1 or more")
    return applied[:count]


def dirty_message(version: int, name: str | None) -> str:
    return (
        f"version {version} ({name}) is dirty: a no-transaction migration stopped part-way; fix the file "
        f"and run '{COMMAND} force {version}' (make db-migrate-force V={version}), or undo it with "
        f"'{COMMAND} down'"
    )


def check_dirty(rows: dict[int, tracking.Row], command: str) -> None:
    for version, row in rows.items():
        if row.dirty:
            raise StateError(f"'{command}' refused: " + dirty_message(version, row.description))


def changed_message(m: Migration, row: tracking.Row) -> str:
    return (
        f"{display_path(m.up)} changed since it was applied (recorded {row.checksum[:8]}, now "
        f"{m.up.checksum[:8]}); revert the edit, or record it with '{COMMAND} rehash {m.version}', "
        "or pass --ignore-changed"
    )


def check_changed(folder: Folder, rows: dict[int, tracking.Row]) -> None:
    files = folder.by_version()
    for version, row in rows.items():
        m = files.get(version)
        if m and row.checksum is not None and not row.dirty and row.checksum != m.up.checksum:
            raise StateError("'up' refused: " + changed_message(m, row))


def refuse_production(allow: bool) -> None:
    for var in ("APP_ENV", "ENVIRONMENT"):
        value = os.environ.get(var, "").strip().lower()
        if value in ("production", "prod") and not allow:
            raise StateError(
                f"{var}={value}: refusing to drop the database's schemas in production; "
                "add --allow-production if you really mean it"
            )


def create_database(target: object) -> bool:
    """Create the target's database through the ``postgres`` maintenance database."""
    from . import db
    from .libpq import QueryError

    name = target.params().get("dbname")
    if not name:
        raise UsageError("the connection settings name no database to create; add one to DATABASE_URL")
    with db.connect(target, dbname="postgres", watch_client=False) as maint:
        try:
            maint.execute(f"CREATE DATABASE {quote_ident(name)}")
        except QueryError as exc:
            if exc.sqlstate in ("42P04", "23505"):  # duplicate_database; unique_violation in a race
                return False
            if exc.sqlstate == "42501":
                raise ConnectError(
                    f'database "{name}" does not exist and this user may not create it; ask an administrator '
                    "to create it, or grant CREATEDB"
                ) from None
            raise
    return True


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def drop_everything(conn: object) -> None:
    """Drop every non-system schema and everything in public (extensions included)."""
    schemas = [r[0] for r in conn.execute(
        """SELECT nspname FROM pg_namespace
           WHERE nspname <> 'public' AND nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'"""
    )]
    extensions = [r[0] for r in conn.execute("SELECT extname FROM pg_extension WHERE extname <> 'plpgsql'")]
    conn.execute("BEGIN")
    try:
        for ext in extensions:
            conn.execute(f"DROP EXTENSION IF EXISTS {quote_ident(ext)} CASCADE")
        for schema in schemas:
            conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(schema)} CASCADE")
        for kind, statement in _PUBLIC_OBJECTS:
            for (name,) in conn.execute(kind):
                conn.execute(statement.format(name))
        conn.execute("COMMIT")
    finally:
        if not conn.idle:
            conn.execute("ROLLBACK")


# Objects in public, found and dropped kind by kind (names come back already quoted by the server).
_PUBLIC_OBJECTS = [
    ("SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
     "WHERE n.nspname = 'public' AND c.relkind = 'v'", "DROP VIEW IF EXISTS {} CASCADE"),
    ("SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
     "WHERE n.nspname = 'public' AND c.relkind = 'm'", "DROP MATERIALIZED VIEW IF EXISTS {} CASCADE"),
    ("SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
     "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition",
     "DROP TABLE IF EXISTS {} CASCADE"),
    ("SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
     "WHERE n.nspname = 'public' AND c.relkind = 'f'", "DROP FOREIGN TABLE IF EXISTS {} CASCADE"),
    ("SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
     "WHERE n.nspname = 'public' AND c.relkind = 'S'", "DROP SEQUENCE IF EXISTS {} CASCADE"),
    ("SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
     "WHERE n.nspname = 'public' AND p.prokind IN ('f', 'p', 'a', 'w')", "DROP ROUTINE IF EXISTS {} CASCADE"),
    ("SELECT format('%I.%I', n.nspname, t.typname) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
     "WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd', 'r', 'm') OR (n.nspname = 'public' AND t.typtype = 'c' "
     "AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')", "DROP TYPE IF EXISTS {} CASCADE"),
]
