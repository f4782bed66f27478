"""Running one SQL file in-process, over the runner's own connection.

Transactional files: ``BEGIN``, the timeouts as ``SET LOCAL``, the whole file as one simple-protocol
query, the tracking statement, ``COMMIT``: the file and its tracking row commit together or not at
all. A lock timeout (55P03) retries the whole transaction with backoff.

Files marked ``-- migrate:no-transaction`` run statement by statement in autocommit, between a
tracking statement that marks the version dirty and one that marks it clean.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence

import psycopg

from . import sqltext
from .config import Limits
from .discovery import SqlFile, display_path
from .errors import MigrationFailed
from .tracking import Step

LOCK_NOT_AVAILABLE = "55P03"


def failure(file: SqlFile, exc: psycopg.Error, *, base: int = 0, text: str | None = None, dirty: bool = False,
            statement: sqltext.Statement | None = None) -> MigrationFailed:
    """A MigrationFailed pointing at the file and line of the server's error position."""
    diag = exc.diag
    source = text if text is not None else file.text
    line = None
    if diag.statement_position:
        line = sqltext.line_of_position(source, int(diag.statement_position), base)
    elif statement is not None:
        line = statement.line
    message = diag.message_primary or str(exc).strip().splitlines()[0]
    where = display_path(file) + (f":{line}" if line else "")
    sqlstate = diag.sqlstate or getattr(exc, "sqlstate", None)
    details = []
    if diag.message_detail:
        details.append(f"detail: {diag.message_detail}")
    if diag.message_hint:
        details.append(f"hint: {diag.message_hint}")
    if diag.context and not diag.statement_position:
        details.append(f"context: {diag.context.strip().splitlines()[0]}")
    if statement is not None:
        details.append(f"statement: {statement.first_line}")
    suffix = f" (SQLSTATE {sqlstate})" if sqlstate else ""
    return MigrationFailed(f"{where}: {message}{suffix}", path=where, line=line, sqlstate=sqlstate,
                           details=details, dirty=dirty)


def run_transactional(conn: psycopg.Connection, file: SqlFile, steps: Sequence[Step], limits: Limits,
                      on_retry: Callable[[str], None]) -> None:
    """Run the file and ``steps`` in one transaction, retrying on lock timeouts."""
    retry_on_lock_timeout(lambda: _transaction(conn, file, steps, limits), limits, on_retry, file)


def retry_on_lock_timeout(attempt: Callable[[], None], limits: Limits, on_retry: Callable[[str], None],
                          file: SqlFile) -> None:
    """Run ``attempt``; while it fails with a lock timeout (55P03), wait with backoff and run it again."""
    tries = 0
    while True:
        try:
            attempt()
            return
        except MigrationFailed as exc:
            if exc.sqlstate != LOCK_NOT_AVAILABLE or tries >= limits.lock_retries:
                raise
            tries += 1
            delay = min(0.5 * 2 ** (tries - 1), 8.0) * random.uniform(0.8, 1.2)
            blocked = next((d for d in exc.details if d.startswith("blocked by")), "")
            on_retry(f"{display_path(file)}: lock timeout{f' ({blocked})' if blocked else ''}; retry {tries} of "
                     f"{limits.lock_retries} in {delay:.1f} s")
            time.sleep(delay)


def _transaction(conn: psycopg.Connection, file: SqlFile, steps: Sequence[Step], limits: Limits) -> None:
    cur = conn.cursor()
    prelude = limits.set_local_sql()
    cur.execute("BEGIN;\n" + prelude if prelude else "BEGIN")  # one round trip
    watcher = _BlockerWatch(conn) if limits.lock_timeout > 0 else None
    try:
        if watcher:
            watcher.start()
        try:
            cur.execute(file.text)
        finally:
            if watcher:
                watcher.stop()
        for sql, params in steps:
            cur.execute(sql, params)
        cur.execute("COMMIT")
    except psycopg.Error as exc:
        _rollback(conn)
        fail = failure(file, exc)
        blockers = watcher.describe() if watcher and exc.sqlstate == LOCK_NOT_AVAILABLE else ""
        if blockers:
            fail.details.append(f"blocked by {blockers}")
        raise fail from None
    except BaseException:
        _rollback(conn)
        raise


def _rollback(conn: psycopg.Connection) -> None:
    try:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.execute("ROLLBACK")
    except psycopg.Error:
        pass


def run_autocommit(conn: psycopg.Connection, file: SqlFile, before: Step | None, after: Step | None) -> None:
    """Run the file statement by statement outside a transaction, between two tracking steps."""
    cur = conn.cursor()
    if before:
        cur.execute(*before)
    for statement in file.scan.statements:
        try:
            cur.execute(statement.text)
        except psycopg.Error as exc:
            raise failure(file, exc, base=statement.start, dirty=before is not None, statement=statement) from None
    if after:
        cur.execute(*after)


class _BlockerWatch:
    """Notes which sessions block ours while a migration waits on a lock, for the error message.

    Polls ``pg_blocking_pids`` from a second connection, and only once the migration has been
    running for a while, so quick migrations pay nothing."""

    GRACE = 0.3

    def __init__(self, conn: psycopg.Connection) -> None:
        self.pid = conn.info.backend_pid
        self.conninfo = conn.info.dsn
        self.password = conn.info.password
        self.found: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        if self._stop.wait(self.GRACE):
            return
        try:
            with psycopg.connect(self.conninfo, password=self.password or None, autocommit=True,
                                 application_name="pgmigrate-watch") as watch:
                while not self._stop.is_set():
                    rows = watch.execute(
                        """SELECT a.pid, coalesce(nullif(a.application_name, ''), '?'), a.state,
                                  left(regexp_replace(a.query, '\\s+', ' ', 'g'), 80)
                           FROM pg_stat_activity a WHERE a.pid = ANY(pg_blocking_pids(%s))""",
                        (self.pid,),
                    ).fetchall()
                    if rows:
                        self.found = [f"pid {p} (application {app}, {state}: {q})" for p, app, state, q in rows]
                    self._stop.wait(0.2)
        except psycopg.Error:
            return

    def describe(self) -> str:
        if self._thread:
            self._thread.join(timeout=1)
        return "; ".join(self.found)
