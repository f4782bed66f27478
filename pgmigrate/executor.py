"""Running one SQL file in-process, over the runner's own connection.

Transactional files: ``BEGIN``, the timeouts as ``SET LOCAL``, the whole file as one simple-protocol
query, the tracking statement, ``COMMIT``: the file and its tracking row commit together or not at
all. A lock timeout (55P03) retries the whole transaction with backoff.

Files marked ``-- migrate:no-transaction`` run statement by statement in autocommit, between a
tracking statement that marks the version dirty and one that marks it clean.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress

from . import sqltext
from .config import Limits, Target
from .db import connect, jitter
from .discovery import SqlFile, display_path
from .errors import MigrateError, MigrationFailed
from .libpq import Connection, QueryError
from .tracking import Step, render

LOCK_NOT_AVAILABLE = "55P03"


def failure(file: SqlFile, exc: QueryError, *, base: int | None = 0, dirty: bool = False,
            statement: sqltext.Statement | None = None) -> MigrationFailed:
    """A MigrationFailed pointing at the file and line of the server's error position (``base``: where
    the text sent starts in the file; negative when a prefix was sent before the file; None when the
    failing text was not the file's, such as the tracking statements)."""
    line = None
    if exc.statement_position and base is not None:
        line = sqltext.line_of_position(file.text, exc.statement_position, base)
    elif statement is not None:
        line = statement.line
    where = display_path(file) + (f":{line}" if line else "")
    sqlstate = exc.sqlstate
    details = []
    if exc.message_detail:
        details.append(f"detail: {exc.message_detail}")
    if exc.message_hint:
        details.append(f"hint: {exc.message_hint}")
    if exc.context and not exc.statement_position:
        details.append(f"context: {exc.context.strip().splitlines()[0]}")
    if statement is not None:
        details.append(f"statement: {statement.first_line}")
    suffix = f" (SQLSTATE {sqlstate})" if sqlstate else ""
    return MigrationFailed(f"{where}: {exc.message_primary}{suffix}", path=where, line=line, sqlstate=sqlstate,
                           details=details, dirty=dirty)


def run_transactional(conn: Connection, file: SqlFile, steps: Sequence[Step], limits: Limits,
                      on_retry: Callable[[str], None], watch: BlockerWatch | None = None) -> None:
    """Run the file and ``steps`` in one transaction, retrying on lock timeouts."""
    retry_on_lock_timeout(lambda: _transaction(conn, file, steps, limits, watch), limits, on_retry, file)


def retry_on_lock_timeout(attempt: Callable[[], None], limits: Limits, on_retry: Callable[[str], None],
                          file: SqlFile) -> None:
    """Run ``attempt``; while it fails with a lock timeout (55P03), wait with backoff and run it again."""
    tries = 0
    while True:
        try:
            attempt()
            return
        except MigrationFailed as exc:
            tries += 1
            if not wait_before_retry(exc, tries, limits, on_retry, file):
                raise


def wait_before_retry(exc: MigrationFailed, retry: int, limits: Limits, on_retry: Callable[[str], None],
                      file: SqlFile) -> bool:
    """Whether ``exc`` is a lock timeout to retry (as retry number ``retry``); if so, say so and wait
    with backoff first."""
    if exc.sqlstate != LOCK_NOT_AVAILABLE or retry > limits.lock_retries:
        return False
    delay = min(0.5 * 2 ** (retry - 1), 8.0) * jitter()
    blocked = next((d for d in exc.details if d.startswith("blocked by")), "")
    on_retry(f"{display_path(file)}: lock timeout{f' ({blocked})' if blocked else ''}; retry {retry} of "
             f"{limits.lock_retries} in {delay:.1f} s")
    time.sleep(delay)
    return True


def _transaction(conn: Connection, file: SqlFile, steps: Sequence[Step], limits: Limits,
                 watch: BlockerWatch | None) -> None:
    # Two round trips, each one simple query: BEGIN, the timeouts and the file; then the tracking
    # statements (values as quoted literals, exactly as the psql bridge and 'plan' show them) and COMMIT.
    prefix = "BEGIN;\n" + "".join(f"{s};\n" for s in limits.set_local_statements())
    tracking = "".join(render(sql, params) + ";\n" for sql, params in steps) + "COMMIT"
    try:
        with watching(watch, conn.backend_pid):
            try:
                conn.execute(prefix + file.text)
            except QueryError as exc:
                raise failure(file, exc, base=-len(prefix)) from None
        try:
            conn.execute(tracking)
        except QueryError as exc:
            raise failure(file, exc, base=None) from None
    finally:
        if not conn.idle:
            _rollback(conn)


def _rollback(conn: Connection) -> None:
    with suppress(QueryError):
        conn.execute("ROLLBACK")


def run_autocommit(conn: Connection, file: SqlFile, before: Step | None, after: Step | None) -> None:
    """Run the file statement by statement outside a transaction, between two tracking steps."""
    if before:
        conn.execute(*before)
    for statement in file.scan.statements:
        try:
            conn.execute(statement.text)
        except QueryError as exc:
            raise failure(file, exc, base=statement.start, dirty=before is not None, statement=statement) from None
    if after:
        conn.execute(*after)


class BlockerWatch:
    """Names the sessions that block a migration, for the lock-timeout message.

    One thread for the whole run, started on first use: a migration arms it with the backend pid
    that runs it and disarms it when done (two attribute writes, nothing else per migration). The
    thread wakes every 0.1 s and, once a migration has run for a while, asks ``pg_blocking_pids``
    from a connection of its own."""

    GRACE = 0.3
    TICK = 0.1

    def __init__(self, target: Target) -> None:
        self.target = target
        self.armed: tuple[int, float] | None = None  # (backend pid, since)
        self.found: tuple[tuple[int, float], str] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def arm(self, pid: int) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pgmigrate-watch", daemon=True)
            self._thread.start()
        self.armed = (pid, time.monotonic())

    def disarm(self) -> str:
        """Stop watching; return who blocked the migration just watched ('' if nobody was seen)."""
        armed, self.armed = self.armed, None
        found = self.found
        return found[1] if found and found[0] == armed else ""

    def close(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        conn = None
        try:
            while not self._stop.wait(self.TICK):
                armed = self.armed
                if armed is None or time.monotonic() - armed[1] < self.GRACE:
                    continue
                conn = conn or connect(self.target, application_name="pgmigrate-watch")
                rows = conn.execute(
                    """SELECT a.pid, coalesce(nullif(a.application_name, ''), '?'), a.state,
                              left(regexp_replace(a.query, '\\s+', ' ', 'g'), 80)
                       FROM pg_stat_activity a WHERE a.pid = ANY(pg_blocking_pids(%s))""",
                    (armed[0],),
                )
                if rows:
                    self.found = (armed, "; ".join(f"pid {p} (application {app}, {state}: {q})"
                                                   for p, app, state, q in rows))
        except (QueryError, MigrateError):
            return
        finally:
            if conn is not None:
                conn.close()


@contextmanager
def watching(watch: BlockerWatch | None, pid: int) -> Iterator[None]:
    """Watch ``pid`` while the block runs; a lock timeout inside gets 'blocked by ...' added."""
    if watch is None:
        yield
        return
    watch.arm(pid)
    try:
        yield
    except MigrationFailed as exc:
        blockers = watch.disarm() if exc.sqlstate == LOCK_NOT_AVAILABLE else ""
        if blockers:
            exc.details.append(f"blocked by {blockers}")
        raise
    finally:
        watch.disarm()
