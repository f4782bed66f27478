"""Connections and the migration lock.

The lock is a transaction-level advisory lock, taken by polling ``pg_try_advisory_xact_lock`` on a
connection of its own that keeps one transaction open for the whole run. A transaction pins its
server connection even behind PgBouncer in transaction pooling mode, so the lock means the same
there as on a direct connection; it never blocks inside the server (a blocking lock request can
deadlock with ``CREATE INDEX CONCURRENTLY``); and it is gone the moment the runner's connection is.
The idle transaction holds no snapshot, so it does not hold back vacuum or concurrent index builds.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import psycopg

from .config import APPLICATION_NAME, Target, connection_failure, scrub
from .errors import ConnectError, LockTimeout
from .tracking import QUALIFIED

CHECK_CLIENT_SQL = (
    "SELECT set_config('client_connection_check_interval', '1000', false) "
    "WHERE current_setting('server_version_num')::int >= 140000"
)
LOCK_NAMESPACE = 0x70676D67  # 'pgmg': the first key of the two-key advisory lock


def connect(target: Target, *, dbname: str | None = None, autocommit: bool = True,
            application_name: str = APPLICATION_NAME) -> psycopg.Connection:
    """Open a connection, or raise ConnectError with a one-line reason and what to do."""
    if dbname:
        target = target.with_dbname(dbname)
    try:
        conn = psycopg.connect(
            target.conninfo,
            autocommit=autocommit,
            application_name=application_name,
            connect_timeout=10,
            prepare_threshold=None,  # no server-side prepared statements: safe behind PgBouncer
        )
    except psycopg.OperationalError as exc:
        raise connection_failure(target, str(exc)) from None
    except psycopg.ProgrammingError as exc:  # malformed connection string
        raise ConnectError(f"invalid connection string ({scrub(str(exc), target)}); fix DATABASE_URL") from None
    if conn.info.server_version >= 140000:
        # A runner killed mid-statement: its backend notices within a second and rolls back, instead of
        # holding its locks until the statement ends on its own.
        conn.execute(CHECK_CLIENT_SQL)
        if not autocommit:
            conn.commit()
    return conn


def wait_for(target: Target, timeout: float) -> float:
    """Poll until the database accepts connections; return the seconds waited."""
    start = time.monotonic()
    while True:
        try:
            connect(target).close()
            return time.monotonic() - start
        except ConnectError:
            if time.monotonic() - start >= timeout:
                raise
            time.sleep(0.25)


class MigrationLock:
    """Held from ``acquire()`` to ``release()``; see the module docstring."""

    def __init__(self, target: Target, *, wait: float, on_wait: Callable[[str], None]) -> None:
        self.target = target
        self.wait = wait
        self.on_wait = on_wait
        self.conn: psycopg.Connection | None = None

    def acquire(self) -> None:
        conn = connect(self.target, autocommit=False)
        self.conn = conn
        cur = conn.cursor()
        cur.execute(
            "SET LOCAL idle_in_transaction_session_timeout = 0; SET LOCAL statement_timeout = 0"
        )
        # Only simple-protocol queries (no bound parameters) on this connection: an extended-protocol
        # query leaves its portal, and with it a snapshot, open in the transaction, and a snapshot
        # makes CREATE INDEX CONCURRENTLY wait for this transaction to end.
        cur.execute(f"SELECT hashtext(current_database() || '/{QUALIFIED}')")
        key = int(cur.fetchone()[0])
        deadline = time.monotonic() + self.wait
        delay, told = 0.05, False
        while True:
            cur.execute(f"SELECT pg_try_advisory_xact_lock({LOCK_NAMESPACE}, {key})")
            if cur.fetchone()[0]:
                return
            holder = self._holder(cur, key)
            if time.monotonic() >= deadline:
                self.release()
                raise LockTimeout(
                    f"gave up waiting {self.wait:g} s for the migration lock, held by {holder}; "
                    "let that runner finish, or raise --lock-wait"
                )
            if not told:
                self.on_wait(f"waiting for the migration lock, held by {holder}")
                told = True
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 0.5) * random.uniform(0.8, 1.2)

    def _holder(self, cur: Any, key: int) -> str:
        cur.execute(
            f"""SELECT a.pid, coalesce(nullif(a.application_name, ''), '?'),
                      coalesce(host(a.client_addr), CASE a.client_port WHEN -1 THEN 'local socket' END,
                               'not visible to this user'),
                      coalesce(to_char(coalesce(a.xact_start, a.backend_start), 'YYYY-MM-DD HH24:MI:SS TZ'), '?')
               FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
               WHERE l.locktype = 'advisory' AND l.granted AND l.database = (
                     SELECT oid FROM pg_database WHERE datname = current_database())
                 AND l.classid = {LOCK_NAMESPACE}::bigint::oid AND l.objid = {key & 0xFFFFFFFF}::bigint::oid
                 AND l.objsubid = 2
               LIMIT 1"""
        )
        row = cur.fetchone()
        if not row:
            return "another session (it has just let go)"
        pid, app, client, since = row
        return f"pid {pid} (application {app}, client {client}, since {since})"

    def release(self) -> None:
        if self.conn is not None:
            try:
                self.conn.rollback()
                self.conn.close()
            except psycopg.Error:
                pass
            self.conn = None
