"""Connections and the migration lock.

The lock is a transaction-level advisory lock, taken by polling ``pg_try_advisory_xact_lock`` on a
connection of its own that keeps one transaction open for the whole run. A transaction pins its
server connection even behind PgBouncer in transaction pooling mode, so the lock means the same
there as on a direct connection; it never blocks inside the server (a blocking lock request can
deadlock with ``CREATE INDEX CONCURRENTLY``); and it is gone the moment the runner's connection is.
The idle transaction holds no snapshot, so it does not hold back vacuum or concurrent index builds.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from . import libpq
from .config import APPLICATION_NAME, Target, connection_failure, scrub
from .errors import ConnectError, LockTimeout
from .tracking import QUALIFIED

TYPE_CHECKING = False  # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any

CHECK_CLIENT_SQL = (
    "SELECT set_config('client_connection_check_interval', '1000', false) "
    "WHERE current_setting('server_version_num')::int >= 140000"
)
LOCK_NAMESPACE = 0x70676D67  # 'pgmg': the first key of the two-key advisory lock
_MALFORMED = ("invalid connection option", "missing \"=\"", "invalid uri", "unterminated quoted string",
              "invalid integer value", "invalid percent-encoded", "invalid sslmode", "invalid port")


def connect(target: Target, *, dbname: str | None = None, application_name: str = APPLICATION_NAME,
            watch_client: bool = True) -> libpq.Connection:
    """Open the runner's connection (libpq; each statement commits unless it runs in BEGIN ...
    COMMIT), or raise ConnectError with a one-line reason and what to do.

    ``watch_client``: the backend checks every second that the runner is still there, so a runner
    killed mid-statement has its transaction rolled back and its locks freed at once instead of when
    the statement ends on its own (PostgreSQL 14 and later)."""
    if dbname:
        target = target.with_dbname(dbname)
    conn = libpq.connect(target.conninfo, application_name, lambda message: _failure(target, message))
    try:
        if watch_client and conn.server_version >= 140000:
            conn.execute(CHECK_CLIENT_SQL)
    except BaseException:
        conn.close()
        raise
    return conn


def connect_two(target: Target) -> tuple[libpq.Connection, libpq.Connection]:
    """Two connections, opened at the same time (each is a round trip or more to a new backend)."""
    import threading

    second: list[libpq.Connection | BaseException] = []

    def open_second() -> None:
        try:
            second.append(connect(target))
        except BaseException as exc:  # handed to the caller below
            second.append(exc)

    thread = threading.Thread(target=open_second, name="pgmigrate-connect", daemon=True)
    thread.start()
    first = None
    try:
        first = connect(target)
    finally:
        thread.join()  # a connect gives up within connect_timeout
        if first is None and isinstance(second[0], libpq.Connection):
            second[0].close()
    if isinstance(second[0], BaseException):
        first.close()
        raise second[0]
    return first, second[0]


def _failure(target: Target, message: str) -> ConnectError:
    if any(marker in message.lower() for marker in _MALFORMED):
        reason = scrub(message, target).strip().splitlines()[-1].strip()
        return ConnectError(f"invalid connection string ({reason}); fix DATABASE_URL")
    return connection_failure(target, message)


def connect_psycopg(target: Target, *, dbname: str | None = None, autocommit: bool = True,
                    application_name: str = APPLICATION_NAME) -> Any:
    """A psycopg connection, for the tools that use its API (adopt, dump-schema)."""
    import psycopg

    if dbname:
        target = target.with_dbname(dbname)
    try:
        conn = psycopg.connect(target.conninfo, autocommit=autocommit, application_name=application_name,
                               connect_timeout=10, prepare_threshold=None)  # no prepared statements: PgBouncer
    except psycopg.OperationalError as exc:
        raise _failure(target, str(exc)) from None
    except psycopg.ProgrammingError as exc:  # malformed connection string
        raise ConnectError(f"invalid connection string ({scrub(str(exc), target)}); fix DATABASE_URL") from None
    if conn.info.server_version >= 140000:
        conn.execute(CHECK_CLIENT_SQL)
        if not autocommit:
            conn.commit()
    return conn


def jitter() -> float:
    """A factor between 0.8 and 1.2, so that waiting runners do not retry in step."""
    import random  # only when waiting

    return random.uniform(0.8, 1.2)


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
        self.conn: libpq.Connection | None = None

    def acquire(self, conn: libpq.Connection | None = None) -> None:
        """Take the lock, on ``conn`` (a fresh connection of its own) or on a new one."""
        conn = conn or connect(self.target)
        self.conn = conn
        # Only simple-protocol queries (no bound parameters) on this connection: an extended-protocol
        # query leaves its portal, and with it a snapshot, open in the transaction, and a snapshot
        # makes CREATE INDEX CONCURRENTLY wait for this transaction to end.
        key = f"hashtext(current_database() || '/{QUALIFIED}')"
        (row,) = conn.execute(
            "BEGIN; SET LOCAL idle_in_transaction_session_timeout = 0; SET LOCAL statement_timeout = 0;\n"
            f"SELECT {key}, pg_try_advisory_xact_lock({LOCK_NAMESPACE}, {key})"
        )
        key_value, taken = int(row[0]), row[1] == "t"
        deadline = time.monotonic() + self.wait
        delay, told = 0.05, False
        while not taken:
            holder = self._holder(key_value)
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
            delay = min(delay * 2, 0.5) * jitter()
            taken = conn.execute(f"SELECT pg_try_advisory_xact_lock({LOCK_NAMESPACE}, {key_value})")[0][0] == "t"

    def _holder(self, key: int) -> str:
        rows = self.conn.execute(
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
        row = rows[0] if rows else None
        if not row:
            return "another session (it has just let go)"
        pid, app, client, since = row
        return f"pid {pid} (application {app}, client {client}, since {since})"

    def release(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(libpq.QueryError):  # closing ends it (and the lock) all the same
                self.conn.execute("ROLLBACK")
            self.conn.close()
            self.conn = None
