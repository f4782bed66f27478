"""The migration lock: one runner at a time on a database.

A transaction-level advisory lock, taken by polling ``pg_try_advisory_xact_lock`` on a connection
of its own that keeps one transaction open for the whole run. A transaction pins its server
connection even behind PgBouncer in transaction pooling mode, so the lock means the same there as
on a direct connection; it never blocks inside the server (a blocking lock request can deadlock with
``CREATE INDEX CONCURRENTLY``); and it is gone the moment the runner's connection is. The idle
transaction holds no snapshot (only simple-protocol queries run on it), so it does not hold back
vacuum or concurrent index builds.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import psycopg

from .db import connect, jitter, rows
from .errors import LockTimeout, Remedy
from .target import Target
from .tracking import Table, literal

LOCK_NAMESPACE = 0x70676D67  # 'pgmg': the first key of the two-key advisory lock


class MigrationLock:
    """Held from ``acquire()`` to ``release()``; see the module docstring. The key is the database's
    name and the tracking table's (``table``): runners of one table exclude each other, runners that
    keep their history in different tables of one database do not."""

    def __init__(self, target: Target, table: Table, *, wait: float, on_wait: Callable[[str], None]) -> None:
        self.target = target
        self.table = table
        self.wait = wait
        self.on_wait = on_wait
        self.conn: psycopg.Connection | None = None

    def acquire(self, conn: psycopg.Connection | None = None) -> None:
        """Take the lock, on ``conn`` (a fresh connection of its own) or on a new one."""
        conn = conn or connect(self.target)
        self.conn = conn
        # Only simple-protocol queries (no bound parameters) on this connection: an extended-protocol
        # query leaves its portal, and with it a snapshot, open in the transaction, and a snapshot
        # makes CREATE INDEX CONCURRENTLY wait for this transaction to end.
        key = f"hashtext(current_database() || {literal('/' + self.table.qualified)})"
        (row,) = rows(conn,
            "BEGIN; SET LOCAL idle_in_transaction_session_timeout = 0; SET LOCAL statement_timeout = 0;\n"
            # PostgreSQL 17's transaction_timeout would end the lock's long transaction, and the lock with it
            "SELECT set_config('transaction_timeout', '0', true) "
            "WHERE current_setting('server_version_num')::int >= 170000;\n"
            f"SELECT {key}, pg_try_advisory_xact_lock({LOCK_NAMESPACE}, {key})"
        )
        key_value, taken = int(row[0]), bool(row[1])
        deadline = time.monotonic() + self.wait
        delay, told = 0.05, False
        while not taken:
            holder = self._holder(key_value)
            if time.monotonic() >= deadline:
                self.release()
                raise LockTimeout(f"gave up waiting {self.wait:g} s for the migration lock, held by {holder}",
                                  remedy=Remedy("lock-wait"))
            if not told:
                self.on_wait(f"waiting for the migration lock, held by {holder}")
                told = True
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 0.5) * jitter()
            taken = rows(conn, f"SELECT pg_try_advisory_xact_lock({LOCK_NAMESPACE}, {key_value})")[0][0]

    def _holder(self, key: int) -> str:
        found = rows(self.conn,
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
        row = found[0] if found else None
        if not row:
            return "another session (it has just let go)"
        pid, app, client, since = row
        return f"pid {pid} (application {app}, client {client}, since {since})"

    def release(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):  # closing ends it (and the lock) all the same
                self.conn.execute("ROLLBACK")
            self.conn.close()
            self.conn = None
