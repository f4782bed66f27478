"""Connections: one function opens them (psycopg 3, autocommit, no prepared statements), one place
turns a failure to connect into a message, one turns a server error into its fields.

Waiting for the server is psycopg's (``poll``/``epoll``, never ``select()``); on Ctrl-C psycopg
cancels the running statement on the server before the KeyboardInterrupt goes on.
"""

from __future__ import annotations

import os
import time
from collections import namedtuple
from collections.abc import Callable

import psycopg
from psycopg.conninfo import make_conninfo

from .errors import ConnectError, Remedy, UsageError
from .target import Target

CHECK_CLIENT_SQL = (
    "SELECT set_config('client_connection_check_interval', '1000', false) "
    "WHERE current_setting('server_version_num')::int >= 140000"
)
# What one migration may leave in the session, undone before the runner writes its tracking row and
# before the next migration runs, so each starts as if in a psql -f of its own: settings (search_path,
# pg_dump's set_config), role, temporary objects, prepared statements, cursors, LISTENs, session
# advisory locks. Each works inside a transaction (DISCARD ALL does not), as any role.
# The last of them a SELECT whose columns are named, so that psql can take them with the runner's own
# checks in one \\gset (RESET ALL undid the check interval: it is set again).
SESSION_RESET_COLUMNS = (
    "pg_advisory_unlock_all() AS pgmigrate_unlocked, CASE WHEN current_setting('server_version_num')::int >= 140000 "
    "THEN set_config('client_connection_check_interval', '1000', false) END AS pgmigrate_interval"
)
SESSION_RESET = (
    "RESET ALL", "SET SESSION AUTHORIZATION DEFAULT", "DISCARD TEMP", "DISCARD SEQUENCES", "DEALLOCATE ALL",
    "CLOSE ALL", "UNLISTEN *", f"SELECT {SESSION_RESET_COLUMNS}",
)  # SET SESSION AUTHORIZATION DEFAULT also ends a SET ROLE
SESSION_RESET_SQL = "".join(f"{s};\n" for s in SESSION_RESET)


class ServerError(namedtuple("ServerError", "message sqlstate detail hint position context internal_position "
                                            "internal_query lost")):
    """The fields of an error of a statement: what the server said (``position``: 1-based, in the
    text sent; ``internal_*``: inside a function body or DO block), or ``lost`` if the connection went."""

    __slots__ = ()


def server_error(exc: psycopg.Error, conn: psycopg.Connection | None = None) -> ServerError:
    d = exc.diag
    lost = conn is not None and conn.broken
    message = d.message_primary or (str(exc).strip().splitlines() or ["unknown error"])[0]
    if lost and not d.sqlstate:
        message = "the connection to the server was lost"
    return ServerError(message, d.sqlstate, d.message_detail, d.message_hint, _int(d.statement_position),
                       d.context, _int(d.internal_position), d.internal_query, lost)


def _int(value: str | None) -> int | None:
    return int(value) if value else None


def connect(target: Target, *, dbname: str | None = None, application_name: str | None = None,
            watch_client: bool = True, notices: Callable[[str], None] | None = None,
            read_only: bool = False) -> psycopg.Connection:
    """Open a connection in autocommit (each statement commits unless it runs in BEGIN ... COMMIT),
    or raise ConnectError with a one-line reason and what to do.

    ``watch_client``: the backend checks every second that the runner is still there, so a runner
    killed mid-statement has its transaction rolled back and its locks freed at once (PostgreSQL 14
    and later). ``notices``: where the server's notices go (else nowhere, as with ``psql -q``).
    ``read_only``: every transaction of the session is read-only (``default_transaction_read_only``)."""
    if dbname:
        target = target.with_dbname(dbname)
    extra = {"application_name": application_name} if application_name else {}
    conninfo = target.connection_string(client_encoding="UTF8", **extra)  # as psql's: files are UTF-8
    if read_only:
        given = target.params().get("options") or os.environ.get("PGOPTIONS", "")
        options = (given + " -c default_transaction_read_only=on").strip()
        conninfo = make_conninfo(conninfo, options=options)
    try:
        conn = psycopg.connect(conninfo, autocommit=True, prepare_threshold=None)
    except psycopg.OperationalError as exc:
        raise connection_failure(target, str(exc)) from None
    except psycopg.ProgrammingError:  # cannot happen for a parsed Target; never echo the string
        raise UsageError(f"{target.source} cannot be used as a connection string") from None
    try:
        conn.add_notice_handler(_notice_handler(notices))
        if watch_client and conn.info.server_version >= 140000:
            conn.execute(CHECK_CLIENT_SQL)
    except BaseException:
        conn.close()
        raise
    return conn


def _notice_handler(notices: Callable[[str], None] | None) -> Callable[[object], None]:
    if notices is None:
        return lambda diag: None
    return lambda diag: notices(f"{diag.severity}: {diag.message_primary}")


def connect_two(target: Target, **options: object) -> tuple[psycopg.Connection, psycopg.Connection]:
    """Two connections, opened at the same time (each is a round trip or more to a new backend)."""
    import threading

    second: list[object] = []

    def open_second() -> None:
        try:
            second.append(connect(target))
        except BaseException as exc:  # handed to the caller below
            second.append(exc)

    thread = threading.Thread(target=open_second, name="pgmigrate-connect", daemon=True)
    thread.start()
    first = None
    try:
        first = connect(target, **options)
    finally:
        thread.join()  # a connect gives up within connect_timeout
        if first is None and isinstance(second[0], psycopg.Connection):
            second[0].close()
    if isinstance(second[0], BaseException):
        first.close()
        raise second[0]
    return first, second[0]


def rows(conn: psycopg.Connection, sql: str, params: tuple | None = None) -> list[tuple]:
    """The rows of the last statement of ``sql`` that returns rows (several statements may be sent
    at once when there are no parameters: psycopg then uses the simple query protocol)."""
    cur = conn.execute(sql, params)
    found: list[tuple] = []
    while True:
        if cur.description is not None:
            found = cur.fetchall()
        if not cur.nextset():
            return found


def run_script(conn: psycopg.Connection, sql: str) -> tuple[int, ServerError] | None:
    """Send several statements as one simple query and wait for all of them (psycopg's wait:
    Ctrl-C cancels on the server). None when every statement succeeded; else the index of the
    statement that failed (0-based; the server stops there) and its error."""
    from psycopg import errors, generators, pq

    encoding = conn.info.encoding
    conn.pgconn.send_query(sql.encode(encoding))
    results = conn.wait(generators.execute(conn.pgconn))
    for index, result in enumerate(results):
        if result.status == pq.ExecStatus.FATAL_ERROR:
            return index, server_error(errors.error_from_result(result, encoding=encoding), conn)
        if result.status in (pq.ExecStatus.COPY_IN, pq.ExecStatus.COPY_OUT, pq.ExecStatus.COPY_BOTH):
            conn.close()  # mid-COPY: the session cannot go on
            return index, ServerError("COPY to or from the client cannot run in-process (its data would have "
                                      "nowhere to go); use COPY ... FROM stdin with its data in the file, which "
                                      "runs through psql, or COPY to or from a file on the server",
                                      None, None, None, None, None, None, None, False)
    return None


def in_transaction(conn: psycopg.Connection) -> bool:
    return conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE


def connection_failure(target: Target, text: str) -> ConnectError:
    """A one-line ConnectError for libpq's message: the reason, where, and what to do. libpq's
    message names hosts, users and databases, never a password."""
    reason = _reason(text)
    where = target.describe()
    low = text.lower()
    if "does not exist" in low and "database" in low:
        return ConnectError(f'database "{target.dbname}" does not exist ({where})',
                            remedy=Remedy("create-database"))
    if "password" in low or "authentication failed" in low:
        return ConnectError(f"authentication failed ({where}): {reason}; check the user and password")
    if "role" in low and "does not exist" in low:
        return ConnectError(f"{reason} ({where}); check the user name")
    if target.embedded and ("refused" in low or "no such file" in low):
        return ConnectError(f"the embedded PostgreSQL is not running ({where})", remedy=Remedy("start-embedded"))
    return ConnectError(f"cannot connect to PostgreSQL ({where}): {reason}; check that the server runs there")


def _reason(text: str) -> str:
    """The telling line of libpq's (possibly multi-line, multi-host) message."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return "unknown error"
    best = lines[-1]
    for ln in lines:
        if "FATAL" in ln or "refused" in ln or "timeout" in ln.lower():
            best = ln
    return best.removeprefix("connection failed: ").removeprefix("connection is bad: ")


def jitter() -> float:
    """A factor between 0.8 and 1.2, so that waiting runners do not retry in step."""
    import random  # only when waiting

    return random.uniform(0.8, 1.2)


def wait_for(target: Target, timeout: float) -> float:
    """Poll until the database accepts connections; return the seconds waited."""
    start = time.monotonic()
    while True:
        try:
            connect(target, watch_client=False).close()
            return time.monotonic() - start
        except ConnectError:
            if time.monotonic() - start >= timeout:
                raise
            time.sleep(0.25)
