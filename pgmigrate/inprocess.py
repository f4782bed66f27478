"""Running one SQL file in-process, over the runner's own psycopg connection.

Transactional files: ``BEGIN``, the timeouts as ``SET LOCAL``, the whole file as one simple-protocol
query, the tracking statement, ``COMMIT``: the file and its tracking row commit together or not at
all. A lock timeout (55P03) retries the whole transaction with backoff.

Files marked ``-- migrate:no-transaction`` run statement by statement in autocommit, between a
tracking statement that marks the version dirty and one that marks it clean.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import suppress

import psycopg

from . import locate, sqltext
from .config import Limits
from .db import SESSION_RESET_SQL, ServerError, in_transaction, run_script, server_error
from .discovery import SqlFile, display_path
from .errors import MigrationFailed
from .tracking import Step, render
from .watch import BlockerWatch, retry_on_lock_timeout, watching

Connection = psycopg.Connection


def failure(file: SqlFile, exc: ServerError, *, base: int | None = 0, dirty: bool = False,
            statement: sqltext.Statement | None = None) -> MigrationFailed:
    """A MigrationFailed pointing at the file and line of the server's error position (``base``: where
    the text sent starts in the file; negative when a prefix was sent before the file; None when the
    failing text was not the file's, such as the tracking statements)."""
    line = None
    if exc.position and base is not None:
        line = sqltext.line_of_position(file.text, exc.position, base)
    elif statement is not None:
        line = locate.context_line(file.text, file.scan, statement, exc.context) or statement.line
    where = display_path(file) + (f":{line}" if line else "")
    sqlstate = exc.sqlstate
    details = []
    if exc.detail:
        details.append(f"detail: {exc.detail}")
    if exc.hint:
        details.append(f"hint: {exc.hint}")
    if exc.context and not exc.position:
        details.append(f"context: {exc.context.strip().splitlines()[0]}")
    if statement is not None:
        details.append(f"statement: {statement.first_line}")
    suffix = f" (SQLSTATE {sqlstate})" if sqlstate else ""
    return MigrationFailed(f"{where}: {exc.message}{suffix}", path=where, line=line, sqlstate=sqlstate,
                           details=details, dirty=dirty)


def run_transactional(conn: Connection, file: SqlFile, steps: Sequence[Step], limits: Limits,
                      on_retry: Callable[[str], None], watch: BlockerWatch | None = None, *,
                      escape: Step | None = None) -> None:
    """Run the file and ``steps`` in one transaction, retrying on lock timeouts. ``escape``: the
    statement that marks the row dirty if the file ends that transaction itself."""
    retry_on_lock_timeout(lambda: _transaction(conn, file, steps, limits, watch, escape), limits, on_retry, file)


def _transaction(conn: Connection, file: SqlFile, steps: Sequence[Step], limits: Limits,
                 watch: BlockerWatch | None, escape: Step | None) -> None:
    # Two round trips, each one simple query: BEGIN, the timeouts and the file; then the tracking
    # statements (values as quoted literals, exactly as the psql bridge and 'plan' show them) and COMMIT.
    # The session is reset before the tracking statements: they run as the runner's role, with its
    # settings, and the next migration starts clean.
    prefix = "BEGIN;\n" + "".join(f"{s};\n" for s in limits.set_local_statements())
    tracking = (SESSION_RESET_SQL + prefix.removeprefix("BEGIN;\n")  # the limits again, after RESET ALL
                + "".join(render(sql, params) + ";\n" for sql, params in steps) + "COMMIT")
    try:
        with watching(watch, conn.info.backend_pid):
            _run_file(conn, file, prefix, len(limits.set_local_statements()) + 1)
        if not in_transaction(conn):
            raise escaped(conn, file, escape)
        try:
            conn.execute(tracking)
        except psycopg.Error as exc:
            raise failure(file, server_error(exc, conn), base=None) from None
    finally:
        if not conn.closed and in_transaction(conn):
            rollback(conn)


def _run_file(conn: Connection, file: SqlFile, prefix: str, prefix_statements: int) -> None:
    """Send ``prefix`` (``prefix_statements`` statements) and the file as one query; on an error,
    raise it pointing at the statement that failed (the server stops at it)."""
    try:
        failed = run_script(conn, prefix + file.text)
    except psycopg.Error as exc:  # the connection itself failed
        raise failure(file, server_error(exc, conn), base=None) from None
    if failed is not None:
        index, error = failed
        found = locate.statements(file.scan)
        at = index - prefix_statements
        raise failure(file, error, base=-len(prefix), statement=found[at] if 0 <= at < len(found) else None)


def escaped(conn: Connection, file: SqlFile, mark: Step | None) -> MigrationFailed:
    """The file ended the runner's transaction: what it did before that is committed without its
    tracking row. Mark it (dirty; a repeatable migration: to be applied again), honestly, and say so."""
    if mark:
        conn.execute(*mark)
    marked = " and its tracking row is marked dirty" if mark else ""
    return MigrationFailed(f"{display_path(file)}: the file ended the transaction that holds its tracking row; "
                           f"what ran before that is committed{marked}", path=display_path(file), dirty=bool(mark))


def rollback(conn: Connection) -> None:
    with suppress(psycopg.Error):
        conn.execute("ROLLBACK")


def run_group(conn: Connection, group: Sequence[tuple[SqlFile, Sequence[Step]]], limits: Limits,
              on_retry: Callable[[str], None], watch: BlockerWatch | None = None) -> None:
    """Run several files, each with its tracking steps, in ONE transaction (``--single-transaction``),
    retrying the whole of it on lock timeouts."""
    retry_on_lock_timeout(lambda: _group(conn, group, limits, watch), limits, on_retry, group[0][0])


def _group(conn: Connection, group: Sequence[tuple[SqlFile, Sequence[Step]]], limits: Limits,
           watch: BlockerWatch | None) -> None:
    try:
        conn.execute("BEGIN;\n" + "".join(f"{s};\n" for s in limits.set_local_statements()))
        for file, steps in group:
            with watching(watch, conn.info.backend_pid):
                _run_file(conn, file, "", 0)
            if not in_transaction(conn):
                raise escaped(conn, file, None)
            try:
                conn.execute(SESSION_RESET_SQL + "".join(f"{s};\n" for s in limits.set_local_statements())
                             + "".join(render(sql, params) + ";\n" for sql, params in steps))
            except psycopg.Error as exc:
                raise failure(file, server_error(exc, conn), base=None) from None
        try:
            conn.execute("COMMIT")
        except psycopg.Error as exc:
            raise failure(group[-1][0], server_error(exc, conn), base=None) from None
    finally:
        if not conn.closed and in_transaction(conn):
            rollback(conn)


def run_autocommit(conn: Connection, file: SqlFile, before: Step | None, after: Sequence[Step] | None = ()) -> None:
    """Run the file statement by statement outside a transaction, between tracking steps: ``before``,
    then ``after`` (together, in one implicit transaction)."""
    if before:
        conn.execute(*before)
    for statement in file.scan.statements:
        try:
            conn.execute(statement.text)
        except psycopg.Error as exc:
            raise failure(file, server_error(exc, conn), base=statement.start, dirty=before is not None,
                          statement=statement) from None
    conn.execute(SESSION_RESET_SQL)
    if after:
        conn.execute(";\n".join(render(sql, params) for sql, params in after))


