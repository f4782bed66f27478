"""Execution: running a plan's files with their tracking statements, in-process or through psql,
each reported as it commits.

A file runs in-process (one psycopg connection, the whole file as one simple query) unless it needs
psql (meta-commands, COPY from stdin, very large files). Consecutive psql-run transactional files are
queued in psql (``PsqlSession.submit``), up to QUEUE_DEPTH of them; any other file first waits for
the queue to empty, so migrations still commit one after another, in order. With a single-transaction
plan every file and tracking row goes into one transaction (through psql if any file needs it).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .config import Limits, Settings
from .discovery import SqlFile
from .errors import MigrationFailed
from .planning import Plan, Planned, PlannedRepeatable, escape_mark
from .results import Result
from .tracking import Step, Table, render

QUEUE_DEPTH = 4  # psql-run files sent ahead of the one running


def tracking_for(step: Planned | PlannedRepeatable, table: Table) -> list[Step]:
    """The tracking statements of a planned file as the runner runs it: one statement in the
    in-process transaction; a mark before and after the file otherwise (psql-run files, whose escapes
    from the transaction must leave an honest row, and no-transaction files)."""
    file = step.file
    return step.tracking(table, file.transactional and not file.needs_psql)


def done_word(direction: str, *, dry: bool = False) -> str:
    if dry:
        return "would apply" if direction == "up" else "would roll back"
    return "applied" if direction == "up" else "rolled back"


class Applier:
    """Runs files on one database for one command: the in-process connection is the caller's, the
    psql session and the lock-timeout watcher are made on first need and closed by ``close()``."""

    def __init__(self, settings: Settings, conn, *, on_result: Callable[[Result], None],
                 on_note: Callable[[str], None], on_output: Callable[[str], None] | None) -> None:
        self.settings = settings
        self.table: Table = settings.table
        self.conn = conn
        self.on_result = on_result
        self.on_note = on_note
        self.on_output = on_output
        self.limits = Limits(settings.lock_timeout, settings.statement_timeout, settings.lock_retries)
        self.psql = None
        self.watch = None

    def close(self) -> None:
        if self.watch:
            self.watch.close()
            self.watch = None
        if self.psql:
            self.psql.close()
            self.psql = None

    # --- a plan ---

    def run(self, plan: Plan, *, dry_run: bool = False) -> list[Result]:
        results: list[Result] = []

        def report(step: Planned | PlannedRepeatable, ms: float = 0.0, action: str | None = None) -> None:
            result = Result(action or done_word(step.direction), step.version, step.label, ms)
            self.on_result(result)
            results.append(result)

        if dry_run:
            for step in plan:
                report(step, action=done_word(step.direction, dry=True))
        elif plan.single and plan.steps:
            self._single(plan, report)
        else:
            self._each(plan, report)
            self._forget(plan.forget)
        for name in plan.forget:
            result = Result("would forget" if dry_run else "forgot", None, f"R__{name}")
            self.on_result(result)
            results.append(result)
        return results

    def forget_steps(self, names: list[str]) -> list[Step]:
        """The statements that drop the rows of repeatable migrations whose files are gone."""
        return [(self.table.repeatable_forget_sql, (name,)) for name in names]

    def _forget(self, names: list[str]) -> None:
        if names:  # one simple query: one implicit transaction
            self.conn.execute(";\n".join(render(sql, params) for sql, params in self.forget_steps(names)))

    def _each(self, plan: Plan, report: Callable[..., None]) -> None:
        queued: list[tuple[Planned | PlannedRepeatable, float]] = []  # (step, when it was sent), oldest first
        last_end = time.perf_counter()

        def collect_oldest() -> None:
            nonlocal last_end
            step, sent = queued[0]
            try:
                self._collect(queued)
            except KeyboardInterrupt:  # stop psql; report what had committed before it stopped
                for _ in self.psql.interrupt():
                    report(queued.pop(0)[0])
                raise
            end = time.perf_counter()
            report(step, (end - max(sent, last_end)) * 1000)
            last_end = end

        for step in plan:
            if self._queueable(step.file):
                if len(queued) >= QUEUE_DEPTH:
                    collect_oldest()
                self._submit(step, first=not queued)
                queued.append((step, time.perf_counter()))
                continue
            while queued:
                collect_oldest()
            report(step, self.run_step(step))
            last_end = time.perf_counter()
        while queued:
            collect_oldest()

    def _single(self, plan: Plan, report: Callable[..., None]) -> None:
        """Every file and tracking row of the plan in one transaction; reported once it committed."""
        from .inprocess import run_group
        from .watch import retry_on_lock_timeout

        group = [(step.file, step.tracking(self.table, True)) for step in plan]
        group[-1] = (group[-1][0], [*group[-1][1], *self.forget_steps(plan.forget)])
        start = time.perf_counter()
        if any(f.needs_psql for f, _ in group):
            psql = self._psql_session()
            marked = [(f, steps, escape_mark(step, self.table)) for (f, steps), step in zip(group, plan, strict=True)]
            retry_on_lock_timeout(lambda: psql.run_group(marked, self.limits), self.limits, self.on_note, group[0][0])
        else:
            run_group(self.conn, group, self.limits, self.on_note, self._watch())
        ms = (time.perf_counter() - start) * 1000 / len(group)
        for step in plan:
            report(step, ms)

    # --- one file ---

    def run_step(self, step: Planned | PlannedRepeatable) -> float:
        """Run one migration file with its tracking statements; return the milliseconds it took."""
        file = step.file
        start = time.perf_counter()
        try:
            self.execute(file, tracking_for(step, self.table), transactional=file.transactional,
                         escape=escape_mark(step, self.table))
        except MigrationFailed as exc:
            exc.version = step.version
            raise
        return (time.perf_counter() - start) * 1000

    def execute(self, file: SqlFile, steps: list[Step], *, transactional: bool,
                escape: Step | None = None) -> None:
        """Run ``file`` with its tracking ``steps``; ``escape`` marks its row if the file ends the
        in-process transaction itself (None: a seed, which has no row)."""
        from .inprocess import run_autocommit, run_transactional
        from .watch import retry_on_lock_timeout, watching

        watch = self._watch() if transactional else None
        if file.needs_psql:
            psql = self._psql_session()

            def attempt() -> None:
                with watching(watch, psql.backend_pid()):
                    psql.run(file, steps, self.limits, transactional=transactional)

            if transactional:
                retry_on_lock_timeout(attempt, self.limits, self.on_note, file)
            else:
                attempt()
        elif transactional:
            run_transactional(self.conn, file, steps, self.limits, self.on_note, watch, escape=escape)
        else:
            run_autocommit(self.conn, file, steps[0] if steps else None, steps[1:])

    # --- the psql queue ---

    def _queueable(self, file: SqlFile) -> bool:
        if not (file.needs_psql and file.transactional):
            return False
        from .psql import DIES_WITH_PARENT

        return DIES_WITH_PARENT

    def _submit(self, step: Planned | PlannedRepeatable, *, first: bool) -> None:
        psql = self._psql_session()
        if first and self._watch():
            self.watch.arm(psql.backend_pid())
        psql.submit(step.file, tracking_for(step, self.table), self.limits)

    def _collect(self, queued: list[tuple[Planned | PlannedRepeatable, float]]) -> None:
        """Wait for the oldest queued migration; after a lock timeout, wait and send it and those
        queued after it (which psql never ran) again; when retries run out, raise."""
        from .watch import note_blockers, wait_before_retry

        retry = 0
        while True:
            try:
                self.psql.collect()
            except MigrationFailed as exc:
                note_blockers(exc, self.watch)
                exc.version = queued[0][0].version
                retry += 1
                if not wait_before_retry(exc, retry, self.limits, self.on_note, queued[0][0].file):
                    raise
                for i, (again, _) in enumerate(queued):
                    self._submit(again, first=i == 0)
                continue
            queued.pop(0)
            if self.watch and queued:  # the next queued file's time starts now
                self.watch.arm(self.psql.pid)
            elif self.watch:
                self.watch.disarm()
            return

    def _watch(self):
        """The lock-timeout watcher, when lock timeouts are on (else None)."""
        if self.limits.lock_timeout > 0 and self.watch is None:
            from .watch import BlockerWatch

            self.watch = BlockerWatch(self.settings.target)
        return self.watch

    def _psql_session(self):
        if self.psql is None:
            from .psql import PsqlSession

            self.psql = PsqlSession(self.settings.target, self.settings.variables,
                                    verbose=self.settings.verbose, on_output=self.on_output)
        return self.psql
