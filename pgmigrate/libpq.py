"""A small read-only libpq client for the commands that only look (``status``, ``version``).

Loading psycopg costs more than such a command may take in all, so these talk to libpq through
ctypes: connect, run a query without parameters, read text values, close. libpq is the system's
(``libpq.so.5``) or the copy that ships inside psycopg's binary wheel. Where neither loads,
``reader()`` returns None and the caller uses psycopg.
"""

from __future__ import annotations

import ctypes
import glob
import os
import sys
from collections.abc import Callable

from .errors import MigrateError

CONNECTION_OK = 0
PGRES_TUPLES_OK = 2
PGRES_COMMAND_OK = 1

_lib: ctypes.CDLL | None = None
_tried = False


class QueryError(MigrateError):
    """A query on the read-only path failed."""


def _load() -> ctypes.CDLL | None:
    global _lib, _tried
    if _tried:
        return _lib
    _tried = True
    candidates = ["libpq.so.5", "libpq.dylib"]
    for entry in sys.path:
        candidates += sorted(glob.glob(os.path.join(entry, "psycopg_binary.libs", "libpq-*.so*")))
    for name in candidates:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        _declare(lib)
        _lib = lib
        return lib
    return None


def _declare(lib: ctypes.CDLL) -> None:
    p, c, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    signatures = {
        "PQconnectdbParams": (p, [ctypes.POINTER(c), ctypes.POINTER(c), i]),
        "PQstatus": (i, [p]),
        "PQerrorMessage": (c, [p]),
        "PQfinish": (None, [p]),
        "PQexec": (p, [p, c]),
        "PQresultStatus": (i, [p]),
        "PQresultErrorMessage": (c, [p]),
        "PQntuples": (i, [p]),
        "PQnfields": (i, [p]),
        "PQgetvalue": (c, [p, i, i]),
        "PQgetisnull": (i, [p, i, i]),
        "PQclear": (None, [p]),
        "PQserverVersion": (i, [p]),
    }
    for name, (restype, argtypes) in signatures.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes


class Connection:
    def __init__(self, lib: ctypes.CDLL, handle: int) -> None:
        self.lib = lib
        self.handle = handle

    @property
    def server_version(self) -> int:
        return self.lib.PQserverVersion(self.handle)

    def query(self, sql: str) -> list[tuple[str | None, ...]]:
        lib = self.lib
        res = lib.PQexec(self.handle, sql.encode())
        try:
            status = lib.PQresultStatus(res)
            if status not in (PGRES_TUPLES_OK, PGRES_COMMAND_OK):
                message = (lib.PQresultErrorMessage(res) or lib.PQerrorMessage(self.handle) or b"").decode()
                raise QueryError(message.strip().splitlines()[0] if message.strip() else "query failed")
            rows, cols = lib.PQntuples(res), lib.PQnfields(res)
            get, isnull = lib.PQgetvalue, lib.PQgetisnull
            return [
                tuple(None if isnull(res, r, f) else get(res, r, f).decode() for f in range(cols))
                for r in range(rows)
            ]
        finally:
            lib.PQclear(res)

    def close(self) -> None:
        if self.handle:
            self.lib.PQfinish(self.handle)
            self.handle = 0


def connect(conninfo: str, application_name: str, on_error: Callable[[str], Exception]) -> Connection | None:
    """A connection, None when libpq cannot be loaded; ``on_error(message)`` builds the exception."""
    lib = _load()
    if lib is None:
        return None
    keys = [b"dbname", b"application_name", b"connect_timeout", None]
    values = [conninfo.encode(), application_name.encode(), b"10", None]
    handle = lib.PQconnectdbParams((ctypes.c_char_p * 4)(*keys), (ctypes.c_char_p * 4)(*values), 1)
    if lib.PQstatus(handle) != CONNECTION_OK:
        message = (lib.PQerrorMessage(handle) or b"").decode(errors="replace")
        lib.PQfinish(handle)
        raise on_error(message)
    return Connection(lib, handle)
