"""Running an in-process migration file on the shadow database one statement at a time, observed.

The file runs as the runner would run it, on one connection for the whole check (so session
settings carry over from file to file as they do in the runner): a transactional file between
BEGIN and COMMIT with its tracking row; a ``-- migrate:no-transaction`` file statement by
statement, each in a transaction of its own so that its locks can be read, except a statement
PostgreSQL refuses to run in a transaction block (``CREATE INDEX CONCURRENTLY``, ``VACUUM``...),
which then runs on its own, and statements inside a transaction the file opens itself.

A statement of a transactional file that cannot run in a transaction fails the migration in the
runner; here it is noted (``refused``), the transaction is run again without it, and it runs on its
own after the commit, so the check goes on with the schema the author meant.
"""

from __future__ import annotations

import psycopg
from psycopg import pq

from .. import sqltext, tracking
from ..discovery import Migration, SqlFile
from .observe import PROOF, Hazard, Observer

ACTIVE_SQL_TRANSACTION = "25001"  # 'cannot run inside a transaction block'


class StatementFailed(Exception):
    """A statement of the file failed: where and why."""

    def __init__(self, line: int, message: str, sqlstate: str | None) -> None:
        super().__init__(message)
        self.line, self.message, self.sqlstate = line, message, sqlstate


class _Refused(Exception):
    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


class Session:
    """The shadow connection that in-process files run on."""

    def __init__(self, conn: psycopg.Connection, table: tracking.Table) -> None:
        self.conn = conn
        self.table = table
        self.proofs: set[str] = set()
        self.refused: list[sqltext.Statement] = []  # of the last file run
        conn.add_notice_handler(self._notice)
        conn.execute("SET client_min_messages = debug1")  # to hear 'existing constraints ... prove ...'
        self.observer = Observer(conn, table)

    def _notice(self, diag: psycopg.errors.Diagnostic) -> None:
        m = PROOF.match(diag.message_primary or "")
        if m:
            self.proofs.add(m.group(1))

    def create_tracking_table(self) -> None:
        self.conn.execute(self.table.schema_sql())
        self.conn.execute(self.table.create_sql())

    def up(self, m: Migration) -> list[Hazard]:
        """Run ``m``'s up file observed and record it as the runner does; raises StatementFailed."""
        file = m.up
        record = tracking.render(self.table.record_sql, (m.version, m.name, file.checksum))
        self.refused = []
        self.observer.begin()
        if file.transactional:
            self._transactional(file, record)
        else:
            self._autocommit(file)
            self.conn.execute(record)
        return self.observer.finish()

    # --- the two modes ---

    def _transactional(self, file: SqlFile, record: str) -> None:
        statements = file.scan.statements
        skipped: set[int] = set()
        while True:
            try:
                self._transaction(file, [(i, s) for i, s in enumerate(statements) if i not in skipped], record)
                break
            except _Refused as exc:
                skipped.add(exc.index)
                self.observer.begin()  # what the rolled-back attempt saw is gone with it
        self.refused = [statements[i] for i in sorted(skipped)]
        for statement in self.refused:
            self._as_written(file, statement)

    def _transaction(self, file: SqlFile, statements: list[tuple[int, sqltext.Statement]], record: str) -> None:
        self.conn.execute("BEGIN")
        try:
            for index, statement in statements:
                try:
                    self._execute(file, statement)
                except StatementFailed as exc:
                    if exc.sqlstate == ACTIVE_SQL_TRANSACTION:
                        raise _Refused(index) from None
                    raise
                self.observer.statement(statement.line, statement.text, self.proofs, in_transaction=True)
            self.conn.execute(record)
            self.conn.execute("COMMIT")
        finally:
            self._rollback()
        self.observer.end_transaction()

    def _autocommit(self, file: SqlFile) -> None:
        control = {line for line, _ in file.scan.transaction_control}
        for statement in file.scan.statements:
            if statement.line in control or self._in_transaction():
                self._as_written(file, statement)
                continue
            self.conn.execute("BEGIN")
            try:
                self._execute(file, statement)
            except StatementFailed as exc:
                self._rollback()
                if exc.sqlstate != ACTIVE_SQL_TRANSACTION:
                    raise
                self._as_written(file, statement)
                continue
            self.observer.statement(statement.line, statement.text, self.proofs, in_transaction=True)
            self.conn.execute("COMMIT")
            self.observer.end_transaction()

    def _as_written(self, file: SqlFile, statement: sqltext.Statement) -> None:
        """Run a statement as it is: in the file's own transaction if one is open, else outside any
        transaction (then only what it leaves in the catalog is seen, not its locks)."""
        self._execute(file, statement)
        if self._in_transaction():
            self.observer.statement(statement.line, statement.text, self.proofs, in_transaction=True)
        else:
            self.observer.statement(statement.line, statement.text, self.proofs, in_transaction=False,
                                    indexes=False)
            self.observer.end_transaction()

    # --- the connection ---

    def _execute(self, file: SqlFile, statement: sqltext.Statement) -> None:
        self.proofs.clear()
        try:
            self.conn.execute(statement.text)
        except psycopg.Error as exc:
            raise failed(file, statement, exc) from None

    def _in_transaction(self) -> bool:
        return self.conn.info.transaction_status != pq.TransactionStatus.IDLE

    def _rollback(self) -> None:
        if self._in_transaction() and not self.conn.closed:
            self.conn.execute("ROLLBACK")


def failed(file: SqlFile, statement: sqltext.Statement, exc: psycopg.Error) -> StatementFailed:
    """Where in the file the server's error points, and its message."""
    diag = exc.diag
    line = statement.line
    if diag.statement_position:
        line = sqltext.line_of_position(file.text, int(diag.statement_position), statement.start)
    message = diag.message_primary or str(exc).strip().splitlines()[0]
    return StatementFailed(line, message, diag.sqlstate)
