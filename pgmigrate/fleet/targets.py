"""The databases of a fleet run: a targets file of ``[NAME ]URL`` lines, or the rows of a query.

Connection strings are parsed with libpq's own parser (``psycopg.conninfo``). Whatever is shown of
a target (its name, where it is) is rebuilt from the parsed parameters without the password, so no
message can carry one; a line that cannot be parsed is described, never echoed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from psycopg.conninfo import make_conninfo

from ..errors import UsageError
from ..target import Target, parse, without_secrets

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
URL_HELP = ("postgresql://[user[:password]@]host[:port]/dbname, or key=value pairs; percent-encode "
            "'@', '/', ':' and '#' in a URL's password")


class FleetTarget:
    """One database of the fleet: its name, its connection string, where it was given."""

    __slots__ = ("conninfo", "name", "origin", "params")

    def __init__(self, name: str, conninfo: str, params: dict[str, str], origin: str) -> None:
        self.name = name
        self.conninfo = conninfo  # may hold a password: handed to the runner, never shown
        self.params = params
        self.origin = origin  # "tenants.txt:3" or "--targets-query row 3", for messages

    def __repr__(self) -> str:  # never the password
        return f"FleetTarget({self.name!r}, {self.display()!r})"

    @property
    def server(self) -> tuple[str, str]:
        """(host, port): the server the target is on, for --per-host."""
        host = self.params.get("host") or self.params.get("hostaddr") or os.environ.get("PGHOST") or "local socket"
        port = self.params.get("port") or os.environ.get("PGPORT") or "5432"
        return host, port

    @property
    def database(self) -> tuple[str, str, str]:
        return (*self.server, self.params.get("dbname", ""))

    def display(self) -> str:
        """The connection parameters without the password, rebuilt from the parsed ones."""
        return without_secrets(self.params)

    def tagged(self, application_name: str) -> str:
        """The connection string with ``application_name`` set: every session the runner opens for
        this target shows that name in pg_stat_activity, which is how Ctrl-C finds them."""
        return make_conninfo("", **{**self.params, "application_name": application_name})


def parse_conninfo(text: str, origin: str) -> dict[str, str]:
    """libpq's parameters of ``text`` (``target.parse``: a UsageError that shows none of it), which
    must name a database."""
    params = parse(text, origin)
    if not params.get("dbname"):
        raise UsageError(f"{origin}: the connection string names no database; add one (…/dbname or dbname=…)")
    return params


def _looks_like_conninfo(word: str) -> bool:
    return "://" in word or "=" in word


def parse_targets_file(path: Path) -> list[FleetTarget]:
    """The targets of a file: one ``[NAME ]URL`` a line; blank lines and ``#`` comments ignored."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UsageError(f"targets file {path} not found; give a file of '[NAME ]URL' lines") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = "it is not UTF-8" if isinstance(exc, UnicodeDecodeError) else exc.strerror
        raise UsageError(f"targets file {path} cannot be read ({reason})") from None
    targets = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        origin = f"{path}:{number}"
        first, *rest = line.split(None, 1)
        if _looks_like_conninfo(first):
            name, conninfo = None, line
        else:
            name, conninfo = first, "".join(rest).strip()
            if not NAME.match(name) or not conninfo:
                raise UsageError(f"{origin}: expected '[NAME ]URL' (NAME: letters, digits, '_', '.', '-'; "
                                 f"URL: {URL_HELP})")
        params = parse_conninfo(conninfo, origin)
        targets.append(FleetTarget(name or params["dbname"], conninfo, params, origin))
    if not targets:
        raise UsageError(f"targets file {path} lists no database; write one '[NAME ]URL' a line")
    return check_unique(targets)


def check_unique(targets: list[FleetTarget]) -> list[FleetTarget]:
    """Refuse two targets with one name, or one database twice."""
    names: dict[str, FleetTarget] = {}
    databases: dict[tuple[str, str, str], FleetTarget] = {}
    for t in targets:
        if t.name in names:
            raise UsageError(f"{t.origin}: the name '{t.name}' is already used at {names[t.name].origin}; "
                             "give each target its own name ('NAME URL')")
        if t.database in databases:
            raise UsageError(f"{t.origin}: the same database as {databases[t.database].origin}; list it once")
        names[t.name] = databases[t.database] = t
    return targets


def discover(conninfo: str, query: str) -> list[FleetTarget]:
    """Run ``query`` on the configured database: each row's first column is a database name on that
    server, or a connection URL. Names default to the database name."""
    import psycopg

    from ..db import connect

    base = parse_conninfo(conninfo, "the configured database")
    try:
        with connect(Target(conninfo, "the configured database"), application_name="pgmigrate-fleet",
                     watch_client=False) as conn:
            rows = conn.execute(query).fetchall()
    except psycopg.Error as exc:
        where = f" (SQLSTATE {exc.sqlstate})" if exc.sqlstate else ""
        first = (exc.diag.message_primary or "the query failed") if exc.diag else "the query failed"
        raise UsageError(f"--targets-query failed: {first}{where}; fix the query") from None
    targets = []
    for number, row in enumerate(rows, start=1):
        origin = f"--targets-query row {number}"
        value = row[0] if row else None
        if not isinstance(value, str) or not value.strip():
            raise UsageError(f"{origin}: the first column is not a database name or URL; select text")
        value = value.strip()
        if _looks_like_conninfo(value):
            params = parse_conninfo(value, origin)
            conninfo = value
        else:
            params = {**base, "dbname": value}
            conninfo = make_conninfo("", **params)
        targets.append(FleetTarget(params["dbname"], conninfo, params, origin))
    if not targets:
        raise UsageError("--targets-query returned no rows; nothing to run")
    return check_unique(_qualify_names(targets))


def _qualify_names(targets: list[FleetTarget]) -> list[FleetTarget]:
    """Databases of one name on several servers are named ``dbname@host:port``."""
    seen: dict[str, int] = {}
    for t in targets:
        seen[t.name] = seen.get(t.name, 0) + 1
    for t in targets:
        if seen[t.name] > 1:
            host, port = t.server
            t.name = f"{t.name}@{host}:{port}"
    return targets
