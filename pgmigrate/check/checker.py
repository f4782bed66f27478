"""The check of one migrations folder on a shadow database, migration by migration.

For each migration, in version order: its up file runs observed (in-process files statement by
statement, see session.py; psql-run files through the runner, their catalog compared before and
after the whole file); then, if it has a down file, down and up again through the runner, with
the schema compared after each step: after down with the schema before up, after up again with
the schema after the first up. When a step fails or leaves the schema other than the first up
left it, the shadow database is made again and migrated up to this version through the runner,
so the next migration is checked on the schema the up files build. An up file that fails on the
shadow database ends the check there.

With a live database (``--against``), the schema after the migration at the live version is
compared with the live one (drift), and the hazards of pending migrations are judged by the live
tables' sizes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .. import discovery
from ..config import Settings, Target
from ..discovery import Folder, Migration, SqlFile
from ..errors import MigrationFailed
from . import drift, repeatables, rules, snapshot
from .live import Live
from .observe import Hazard
from .report import Report
from .rules import Finding
from .session import ACTIVE_SQL_TRANSACTION, Session, StatementFailed
from .shadow import ShadowDatabase, connect

log = logging.getLogger("pgmigrate")


def _ignore(_: object) -> None:
    return None


class Checker:
    """Runs the folder's migrations on ``shadow`` and adds what it finds to ``report``."""

    def __init__(self, settings: Settings, shadow: ShadowDatabase, report: Report, live: Live | None,
                 on_note: Callable[[str], None]) -> None:
        self.settings = settings
        self.shadow = shadow
        self.report = report
        self.live = live
        self.on_note = on_note
        self.session: Session | None = None
        self.reader = None  # a connection of its own for schema snapshots
        self.runner = None
        self.drift_version: int | None = None

    def run(self, folder: Folder) -> None:
        self.report.migrations = len(folder.migrations)
        self.drift_version = self._drift_version(folder)
        try:
            self._open()
            schema = self._snapshot()
            self._drift(0, schema)
            for m in folder.migrations:
                start = time.perf_counter()
                schema = self._check(m, schema)
                if self.settings.verbose:
                    self.on_note(f"checked {m.label} in {(time.perf_counter() - start) * 1000:.0f} ms")
                if schema is None:
                    break
                if m.version == self.drift_version:
                    schema = self._live_repeatables(folder, schema)
                    self._drift(m.version, schema)
            else:
                self._repeatables(folder)
            if self.drift_version is not None:
                self.on_note(f"warning: no drift check: the migrations stopped before version {self.drift_version}")
        finally:
            self._close()

    # --- one migration ---

    def _check(self, m: Migration, before: snapshot.Snapshot) -> snapshot.Snapshot | None:
        """Check ``m``; return the schema after its up file, or None when the check cannot go on."""
        if not self._first_up(m):
            return None
        self.report.checked += 1
        first = self._snapshot()
        if self.session.refused:  # the runner cannot run this up file: nothing to run down and up again
            return first
        if m.down is None:
            self._add(rules.DOWN_NOT_REVERTING, rules.INFO, m, m.up, 1,
                      f"{m.label} has no down file: it cannot be rolled back")
            return first
        failure = self._through_runner(m, "down")
        if failure is not None:
            self._add_failure(m, m.down, failure, "the down file fails")
            # a transactional down rolled back as a whole; a no-transaction one may have stopped part-way
            return first if m.down.transactional and self._snapshot() == first else self._rebuild(m)
        for diff in drift.compare(before, self._snapshot()):
            self._add(rules.DOWN_NOT_REVERTING, rules.ERROR, m, m.down, 1, drift.after_down(diff))
        failure = self._through_runner(m, "up")
        if failure is not None:
            self._add_failure(m, m.up, failure, "after up and down, the up file fails")
            return self._rebuild(m)
        again = drift.compare(first, self._snapshot())
        for diff in again:
            self._add(rules.DOWN_NOT_REVERTING, rules.ERROR, m, m.down, 1, drift.after_redo(diff))
        return self._rebuild(m) if again else first

    def _first_up(self, m: Migration) -> bool:
        """Run the up file observed; report its hazards, or its failure (then return False)."""
        observer = self.session.observer
        psql = m.up.needs_psql
        if psql:
            observer.begin()
            failure = self._through_runner(m, "up")
            if failure is not None:
                if failure.sqlstate == ACTIVE_SQL_TRANSACTION:
                    self._add(rules.NEEDS_NO_TRANSACTION, rules.ERROR, m, m.up, failure.line or 1,
                              f"{_reason(failure)}: it cannot run in the transaction this file runs in; put it "
                              f"{rules.NO_TRANSACTION_HINT}; the migrations after it were not checked")
                else:
                    self._add_failure(m, m.up, failure, "the up file fails on a fresh database", stops=True)
                return False
            observer.statement(1, "", None, in_transaction=False, indexes=m.up.transactional)
            hazards = observer.finish()
        else:
            try:
                hazards = self.session.up(m)
            except StatementFailed as exc:
                self._add(rules.UP_FAILS, rules.ERROR, m, m.up, exc.line,
                          f"the up file fails on a fresh database: {exc.message}"
                          + (f" (SQLSTATE {exc.sqlstate})" if exc.sqlstate else "")
                          + "; the migrations after it were not checked")
                return False
        for hazard in hazards:
            self._hazard(m, hazard, psql)
        for statement in self.session.refused if not psql else []:
            self._add(rules.NEEDS_NO_TRANSACTION, rules.ERROR, m, m.up, statement.line,
                      rules.needs_no_transaction_message(statement.first_line)
                      + ("; the down file was not checked" if m.down else ""))
        return True

    # --- findings ---

    def _add(self, rule: str, severity: str, m: Migration, file: SqlFile, line: int | None, message: str,
             table: str | None = None) -> None:
        self.report.add(Finding(rule, severity, m.version, discovery.display_path(file), line, message, table))

    def _add_failure(self, m: Migration, file: SqlFile, failure: MigrationFailed, what: str, *,
                     stops: bool = False) -> None:
        rule = rules.UP_FAILS if stops else rules.DOWN_NOT_REVERTING
        tail = "; the migrations after it were not checked" if stops else ""
        self._add(rule, rules.ERROR, m, file, failure.line or 1, f"{what}: {_reason(failure)}{tail}")

    def _hazard(self, m: Migration, hazard: Hazard, psql: bool) -> None:
        severity, message = hazard.severity(), hazard.text()
        if psql:
            message += " (seen for the whole file, which runs through psql)"
        if self.live is not None:
            size = self.live.sizes.get(hazard.table)
            if self.live.applied(m.version):
                severity, message = rules.INFO, message + " (already applied on the live database)"
            elif size is None:
                message += " (the table is not on the live database yet)"
            else:
                message += f" (live table: {rules.size_text(size.rows, size.bytes)})"
                if severity == rules.WARNING and rules.is_large(size.rows, size.bytes):
                    severity = rules.ERROR
        self._add(hazard.rule, severity, m, m.up, hazard.line, message, hazard.table)

    # --- drift ---

    def _drift_version(self, folder: Folder) -> int | None:
        """The folder version whose schema the live one should have, or None without a live database."""
        if self.live is None:
            return None
        version = self.live.version
        self.report.live_version = version
        known = [m.version for m in folder.migrations if m.version <= version]
        at = max(known, default=0)
        if version and at != version:
            self.on_note(f"warning: the live database's version {version} has no migration file in "
                         f"{folder.path}; drift is compared at version {at}")
        late = [m.label for m in folder.migrations if m.version < at and not self.live.applied(m.version)]
        if late:
            self.on_note(f"warning: {', '.join(late)} pending on the live database but older than its version; "
                         f"drift at version {at} counts them as applied")
        return at

    def _drift(self, version: int, schema: snapshot.Snapshot) -> None:
        if self.drift_version != version:
            return
        self.drift_version = None
        for diff in drift.compare(schema, self.live.schema):
            self.report.add(Finding(rules.DRIFT, rules.ERROR, self.live.version, f"live:{self.live.name}", None,
                                    drift.live(diff, version)))

    # --- the shadow database ---

    def _open(self) -> None:
        target = self.shadow.target
        self.session = Session(connect(target), self.settings.table)
        self.session.create_tracking_table()
        self.reader = connect(target)

    def _close(self) -> None:
        if self.runner is not None:
            self.runner.close()
            self.runner = None
        for conn in (self.session.conn if self.session else None, self.reader):
            if conn is not None:
                conn.close()
        self.session = self.reader = None

    def _snapshot(self) -> snapshot.Snapshot:
        return snapshot.read(self.reader, self.settings.table)

    def _through_runner(self, m: Migration, direction: str) -> MigrationFailed | None:
        """Run ``m``'s file for ``direction`` as the runner does (without the repeatable migrations);
        its failure, or None."""
        try:
            if direction == "up":
                self._runner().up(to=m.version, repeatables=False)
            else:
                self._runner().down(1)
        except MigrationFailed as exc:
            return exc
        return None

    def _runner(self):
        if self.runner is None:
            from ..engine import Runner

            settings = Settings(Target(self.shadow.target.conninfo, "shadow database"), self.settings.migrations_dir,
                                self.settings.seeds_dir, variables=self.settings.variables, table=self.settings.table)
            self.runner = Runner(settings, on_note=_ignore)
        return self.runner

    # --- repeatable migrations (see repeatables.py) ---

    def _live_repeatables(self, folder: Folder, schema: snapshot.Snapshot) -> snapshot.Snapshot:
        names = repeatables.ran_live(folder, self.live, self.on_note)
        if names and repeatables.run(self._runner(), folder, names, self.report):
            return self._snapshot()
        return schema

    def _repeatables(self, folder: Folder) -> None:
        if folder.repeatables:
            repeatables.run(self._runner(), folder, None, self.report)

    def _rebuild(self, m: Migration) -> snapshot.Snapshot | None:
        """A new shadow database migrated up to ``m`` through the runner: the schema the up files build."""
        log.debug("rebuilding the shadow database up to %s", m.label)
        self._close()
        self.shadow.renew()
        self._open()
        failure = self._through_runner(m, "up")
        if failure is not None:
            self.on_note(f"warning: the migrations up to {m.label} fail on a new shadow database ({_reason(failure)}); "
                         "the migrations after it were not checked")
            return None
        return self._snapshot()


def _reason(failure: MigrationFailed) -> str:
    """The server's message of a failed migration, without the file name it starts with."""
    message = failure.message
    if failure.path and message.startswith(failure.path + ": "):
        message = message[len(failure.path) + 2:]
    return message
