"""The runner's PostgreSQL client: libpq through ctypes.

Loading psycopg takes longer than a whole ``status`` may take, and longer than psql needs to
start, so the runner talks to libpq directly: connect, send a query (simple protocol; extended
when it has parameters), wait for it on the socket so that Ctrl-C cancels it, read text values
and the server's error fields. libpq is the system's (``libpq.so.5``) or the copy that ships
inside psycopg's binary wheel. psycopg stays for the tools that want its richer API (``adopt``,
``dump-schema``).
"""

from __future__ import annotations

import ctypes
import os
import select
import sys
from collections.abc import Callable, Iterator

from .errors import ConnectError, MigrateError

TYPE_CHECKING = False  # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any

CONNECTION_OK, CONNECTION_BAD = 0, 1
PGRES_EMPTY_QUERY, PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_COPY_OUT, PGRES_COPY_IN = 0, 1, 2, 3, 4
PGRES_COPY_BOTH = 8
PQTRANS_IDLE = 0

_FIELDS = {"severity": b"S"[0], "sqlstate": b"C"[0], "message_primary": b"M"[0], "message_detail": b"D"[0],
           "message_hint": b"H"[0], "statement_position": b"P"[0], "context": b"W"[0]}

_lib: ctypes.CDLL | None = None
_NoticeProcessor = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p)
_IGNORE_NOTICE = _NoticeProcessor(lambda arg, message: None)  # notices stay quiet, as with psql -q


class QueryError(MigrateError):
    """A query failed: the server's error fields (or, for a lost connection, libpq's message)."""

    def __init__(self, message_primary: str, *, sqlstate: str | None = None, message_detail: str | None = None,
                 message_hint: str | None = None, statement_position: int | None = None,
                 context: str | None = None) -> None:
        super().__init__(message_primary + (f" (SQLSTATE {sqlstate})" if sqlstate else ""))
        self.message_primary = message_primary
        self.sqlstate = sqlstate
        self.message_detail = message_detail
        self.message_hint = message_hint
        self.statement_position = statement_position
        self.context = context


class LibpqMissing(ConnectError):
    """libpq could not be loaded."""


def _candidates() -> Iterator[str]:
    """Where libpq may be, best first: PGMIGRATE_LIBPQ, the system's, the copy in psycopg's wheel."""
    override = os.environ.get("PGMIGRATE_LIBPQ")
    if override:
        yield override
        return
    yield from ("libpq.so.5", "libpq.5.dylib", "libpq.dylib")
    for entry in sys.path:
        for folder in ("psycopg_binary.libs", os.path.join("psycopg_binary", ".dylibs")):
            try:
                found = os.listdir(os.path.join(entry or ".", folder))
            except OSError:
                continue
            yield from sorted(os.path.join(entry, folder, n) for n in found if n.startswith("libpq"))
    from ctypes.util import find_library  # last, and only when needed: it runs ldconfig

    found = find_library("pq")
    if found:
        yield found


def _load() -> ctypes.CDLL:
    global _lib
    if _lib is None:  # two threads may both load it: the same library, mapped once by the system
        _lib = _first_loadable()
    return _lib


def _first_loadable() -> ctypes.CDLL:
    for name in _candidates():
        try:
            lib = ctypes.CDLL(name)
            _declare(lib)
        except (OSError, AttributeError):  # not there, or not libpq
            continue
        return lib
    override = os.environ.get("PGMIGRATE_LIBPQ")
    if override:
        raise LibpqMissing(f"PGMIGRATE_LIBPQ={override} could not be loaded as libpq; fix or unset it")
    raise LibpqMissing("libpq, PostgreSQL's client library, could not be loaded; install it (Debian/Ubuntu: "
                       "apt-get install libpq5), or name its file in PGMIGRATE_LIBPQ")


def _declare(lib: ctypes.CDLL) -> None:
    p, c, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    signatures = {
        "PQconnectdbParams": (p, [ctypes.POINTER(c), ctypes.POINTER(c), i]),
        "PQstatus": (i, [p]),
        "PQerrorMessage": (c, [p]),
        "PQfinish": (None, [p]),
        "PQsocket": (i, [p]),
        "PQbackendPID": (i, [p]),
        "PQserverVersion": (i, [p]),
        "PQtransactionStatus": (i, [p]),
        "PQsetNoticeProcessor": (p, [p, _NoticeProcessor, p]),
        "PQsendQuery": (i, [p, c]),
        "PQsendQueryParams": (i, [p, c, i, p, ctypes.POINTER(c), p, p, i]),
        "PQconsumeInput": (i, [p]),
        "PQisBusy": (i, [p]),
        "PQgetResult": (p, [p]),
        "PQputCopyEnd": (i, [p, c]),
        "PQgetCopyData": (i, [p, ctypes.POINTER(ctypes.c_void_p), i]),
        "PQfreemem": (None, [p]),
        "PQresultStatus": (i, [p]),
        "PQresultErrorMessage": (c, [p]),
        "PQresultErrorField": (c, [p, i]),
        "PQntuples": (i, [p]),
        "PQnfields": (i, [p]),
        "PQgetvalue": (c, [p, i, i]),
        "PQgetisnull": (i, [p, i, i]),
        "PQclear": (None, [p]),
        "PQgetCancel": (p, [p]),
        "PQcancel": (i, [p, c, i]),
        "PQfreeCancel": (None, [p]),
    }
    for name, (restype, argtypes) in signatures.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes


def _text(value: bytes | None) -> str:
    return value.decode("utf-8", errors="replace") if value else ""


def _param(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return b"t" if value else b"f"
    return str(value).encode()


def numbered(sql: str) -> str:
    """``%s`` placeholders as libpq's ``$1``, ``$2``, ..."""
    parts = sql.split("%s")
    return "".join(part + (f"${n}" if n < len(parts) else "") for n, part in enumerate(parts, 1))


class Connection:
    """One libpq connection. Without ``BEGIN`` every statement commits on its own."""

    def __init__(self, lib: ctypes.CDLL, handle: int) -> None:
        self.lib = lib
        self.handle = handle
        self._notice = _IGNORE_NOTICE
        lib.PQsetNoticeProcessor(handle, self._notice, None)

    def on_notice(self, handler: Callable[[str], None]) -> None:
        """Pass the server's notices (RAISE NOTICE, 'skipping' ...) to ``handler``, one line each."""
        self._notice = _NoticeProcessor(lambda arg, message: handler(_text(message).rstrip("\n")))
        self.lib.PQsetNoticeProcessor(self.handle, self._notice, None)

    @property
    def server_version(self) -> int:
        return self.lib.PQserverVersion(self.handle)

    @property
    def backend_pid(self) -> int:
        return self.lib.PQbackendPID(self.handle)

    @property
    def idle(self) -> bool:
        """Connected and outside a transaction."""
        return self.lib.PQtransactionStatus(self.handle) == PQTRANS_IDLE

    @property
    def broken(self) -> bool:
        return self.lib.PQstatus(self.handle) != CONNECTION_OK

    def execute(self, sql: str, params: tuple[Any, ...] | None = None) -> list[tuple[str | None, ...]]:
        """Run ``sql`` and return the rows of its last result, as text; raise QueryError.

        Without ``params`` it goes as one simple-protocol query, which may hold several statements;
        with them (``%s`` placeholders), as one statement with the values bound."""
        lib, handle = self.lib, self.handle
        if "\x00" in sql:  # C strings end there: the rest would be dropped without a word
            raise QueryError("the SQL contains a NUL character (\\0), which PostgreSQL does not accept; remove it")
        if params is None:
            sent = lib.PQsendQuery(handle, sql.encode())
        else:
            values = (ctypes.c_char_p * max(1, len(params)))(*[_param(v) for v in params])
            sent = lib.PQsendQueryParams(handle, numbered(sql).encode(), len(params), None, values, None, None, 0)
        if not sent:
            raise self._lost()
        return self._results()

    query = execute  # a tracking.Query: sql in, rows out

    def _results(self) -> list[tuple[str | None, ...]]:
        lib, handle = self.lib, self.handle
        rows: list[tuple[str | None, ...]] = []
        error: QueryError | None = None
        while True:
            self._wait()
            res = lib.PQgetResult(handle)
            if not res:
                break
            try:
                status = lib.PQresultStatus(res)
                if status == PGRES_TUPLES_OK:
                    rows = self._rows(res)
                elif status in (PGRES_COMMAND_OK, PGRES_EMPTY_QUERY):  # empty: a lone ';'
                    rows = []
                elif status in (PGRES_COPY_IN, PGRES_COPY_OUT, PGRES_COPY_BOTH):
                    refused = self._refuse_copy(status)
                    error = error or refused
                elif error is None:
                    error = self._error(res)
            except BaseException:
                self._discard()  # the connection stays usable for the ROLLBACK
                raise
            finally:
                lib.PQclear(res)
        if error is not None:
            raise error
        return rows

    def _wait(self) -> None:
        """Until a whole result is in; Ctrl-C while waiting cancels the query on the server."""
        lib, handle = self.lib, self.handle
        try:
            while lib.PQisBusy(handle):
                select.select([lib.PQsocket(handle)], [], [])
                if not lib.PQconsumeInput(handle):
                    raise self._lost()
        except KeyboardInterrupt:
            self.cancel()
            raise

    def cancel(self) -> None:
        """Ask the server to cancel what runs on this connection, and throw its results away."""
        lib = self.lib
        token = lib.PQgetCancel(self.handle)
        if token:
            lib.PQcancel(token, ctypes.create_string_buffer(256), 256)
            lib.PQfreeCancel(token)
        self._discard()

    def _discard(self) -> None:
        """Read and throw away whatever results are left."""
        lib = self.lib
        while not self.broken:
            if lib.PQisBusy(self.handle) and not lib.PQconsumeInput(self.handle):
                break
            res = lib.PQgetResult(self.handle)
            if not res:
                break
            lib.PQclear(res)

    def _refuse_copy(self, status: int) -> QueryError | None:
        """End a COPY to or from the client (psql's job, not ours); the error to raise, if any."""
        lib, handle = self.lib, self.handle
        if status == PGRES_COPY_IN:  # the server fails the statement with this message
            lib.PQputCopyEnd(handle, b"COPY FROM STDIN needs psql; the runner sends such files through it")
            return None
        buffer = ctypes.c_void_p()
        while lib.PQgetCopyData(handle, ctypes.byref(buffer), 0) > 0:
            lib.PQfreemem(buffer)
        return QueryError("COPY ... TO STDOUT prints its rows, which only psql does; use psql for it, or COPY "
                          "to a file on the server")

    def _rows(self, res: int) -> list[tuple[str | None, ...]]:
        lib = self.lib
        get, isnull = lib.PQgetvalue, lib.PQgetisnull
        cols = range(lib.PQnfields(res))
        rows = []
        for r in range(lib.PQntuples(res)):
            values = [get(res, r, f) for f in cols]
            # libpq gives '' for NULL: only an empty value needs the second call
            rows.append(tuple(v.decode() if v or not isnull(res, r, f) else None for f, v in enumerate(values)))
        return rows

    def _error(self, res: int) -> QueryError:
        field = self.lib.PQresultErrorField
        values = {name: field(res, code) for name, code in _FIELDS.items()}
        if not values["message_primary"]:
            return self._lost(self.lib.PQresultErrorMessage(res))
        position = values["statement_position"]
        return QueryError(
            _text(values["message_primary"]),
            sqlstate=_text(values["sqlstate"]) or None,
            message_detail=_text(values["message_detail"]) or None,
            message_hint=_text(values["message_hint"]) or None,
            statement_position=int(position) if position else None,
            context=_text(values["context"]) or None,
        )

    def _lost(self, message: bytes | None = None) -> QueryError:
        text = _text(message) or _text(self.lib.PQerrorMessage(self.handle))
        lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
        return QueryError(lines[0] if lines else "the connection to the server was lost", sqlstate="08006")

    def close(self) -> None:
        if self.handle:
            self.lib.PQfinish(self.handle)
            self.handle = 0

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(conninfo: str, application_name: str, on_error: Callable[[str], MigrateError]) -> Connection:
    """A connection; ``on_error(libpq's message)`` builds the exception raised when it fails."""
    lib = _load()
    # fallback_: an application_name in the connection string wins (fleet runs tag their targets' sessions)
    params = {"dbname": conninfo, "fallback_application_name": application_name, "connect_timeout": "10",
              "client_encoding": "UTF8"}
    keys = (ctypes.c_char_p * (len(params) + 1))(*[k.encode() for k in params], None)
    values = (ctypes.c_char_p * (len(params) + 1))(*[v.encode() for v in params.values()], None)
    handle = lib.PQconnectdbParams(keys, values, 1)
    if not handle:
        raise on_error("out of memory")
    if lib.PQstatus(handle) != CONNECTION_OK:
        message = _text(lib.PQerrorMessage(handle))
        lib.PQfinish(handle)
        raise on_error(message)
    return Connection(lib, handle)
