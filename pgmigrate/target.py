"""Which database: a connection string as libpq reads it, and how to show or hand it on safely.

Connection strings (``postgresql://`` URLs and ``key=value`` strings alike) are parsed by libpq
itself, through ``psycopg.conninfo``; nothing here parses them by hand. A password is never shown:
messages are built from the parsed parameters with the password left out, never by searching text.
psql gets the same parameters through its environment (``PGHOST``, ``PGPASSWORD``...), never its
command line.
"""

from __future__ import annotations

import os
import re

from psycopg import ProgrammingError
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .errors import UsageError

APPLICATION_NAME = "pgmigrate"
CONNECT_TIMEOUT = "10"
# Parameters that are secrets: never shown, never on a command line.
SECRETS = ("password", "sslpassword", "oauth_client_secret", "scram_client_key", "scram_server_key")
_QUOTED = re.compile(r'"([^"]*)"')


def _keywords() -> dict[str, str | None]:
    """libpq's own list of connection keywords, each with its environment variable (or None)."""
    from psycopg import pq

    return {o.keyword.decode(): (o.envvar.decode() if o.envvar else None) for o in pq.Conninfo.get_defaults()}


class Target:
    """A database to connect to, and where that choice came from (for messages).

    Built from a connection string; an unreadable one is a UsageError that shows none of it."""

    __slots__ = ("_params", "conninfo", "source")

    def __init__(self, conninfo: str, source: str) -> None:
        self.conninfo = conninfo
        self.source = source
        self._params = parse(conninfo, source)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Target) and (self.conninfo, self.source) == (other.conninfo, other.source)

    def __hash__(self) -> int:
        return hash((self.conninfo, self.source))

    def __repr__(self) -> str:  # never the password
        return f"Target({self.describe()!r}, source={self.source!r})"

    @property
    def embedded(self) -> bool:
        return self.source == "embedded server"

    def params(self) -> dict[str, str]:
        """libpq's parameters of this target (a copy)."""
        return dict(self._params)

    @property
    def dbname(self) -> str | None:
        p = self._params
        return p.get("dbname") or os.environ.get("PGDATABASE") or p.get("user") or os.environ.get("PGUSER")

    def describe(self) -> str:
        """``host H, port P, database D, user U``: never the password."""
        p = self._params
        host = p.get("host") or p.get("hostaddr") or os.environ.get("PGHOST") or "localhost (socket)"
        port = p.get("port") or os.environ.get("PGPORT") or "5432"
        user = p.get("user") or os.environ.get("PGUSER")
        return f"host {host}, port {port}, database {self.dbname or '?'}" + (f", user {user}" if user else "")

    def with_dbname(self, dbname: str) -> Target:
        return Target(make_conninfo(self.conninfo, dbname=dbname), self.source)

    def connection_string(self, **defaults: str) -> str:
        """What psycopg connects with: the user's parameters, then ours where the user set none.
        The runner names itself by ``fallback_application_name``, so a user's ``application_name`` wins."""
        params = dict(self._params)
        params.setdefault("fallback_application_name", APPLICATION_NAME)
        if "connect_timeout" not in params and not os.environ.get("PGCONNECT_TIMEOUT"):
            params["connect_timeout"] = CONNECT_TIMEOUT
        for key, value in defaults.items():
            params.setdefault(key, value)
        return make_conninfo("", **params)

    def child_environment(self, base: dict[str, str] | None = None) -> tuple[dict[str, str], str | None]:
        """For psql and pg_dump: an environment carrying every parameter (libpq's own variables), and
        a ``key=value`` string with the few parameters that have no variable (None if there are none)."""
        env = dict(os.environ if base is None else base)
        names = _keywords()
        rest = {}
        for key, value in self._params.items():
            var = names.get(key)
            if var:
                env[var] = value
            elif key in SECRETS:
                raise UsageError(f"the connection parameter {key} cannot be passed to psql safely; "
                                 "remove it, or use a service file (PGSERVICEFILE)")
            elif key != "fallback_application_name":
                rest[key] = value
        env["PGAPPNAME"] = self._params.get("application_name", APPLICATION_NAME)
        env.setdefault("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT)
        return env, (make_conninfo("", **rest) if rest else None)


def parse(conninfo: str, source: str) -> dict[str, str]:
    """libpq's parameters of a connection string; a UsageError, showing none of it, when libpq
    cannot read it or what it read cannot be what was meant (a host with '@', a port that is not
    a number: the signs of an unencoded '@', '/' or ':' in a password)."""
    try:
        params = conninfo_to_dict(conninfo)
    except ProgrammingError as exc:
        raise UsageError(f"{source} is not a connection string libpq can read ({safe_reason(str(exc))}); "
                         f"{_ADVICE}") from None
    hosts = (params.get("host") or "").split(",")
    ports = (params.get("port") or "").split(",")
    ports_ok = all(not p or (p.strip().isascii() and p.strip().isdigit() and int(p) <= 65535) for p in ports)
    if any("@" in h for h in hosts) or not ports_ok:
        raise UsageError(f"{source}: the host or port read from it is not a host name and port number; "
                         f"{_ADVICE}")
    return {k: str(v) for k, v in params.items()}


_ADVICE = ("write it as postgresql://user:password@host:port/dbname or as key=value pairs, and percent-encode "
           "'@', '/', ':' and '%' in a password (%40, %2F, %3A, %25)")


def safe_reason(message: str) -> str:
    """libpq's complaint about a connection string, with every quoted piece of the string left out
    (only libpq's keyword names, which are no secret, are kept)."""
    names = _keywords()
    first = message.strip().splitlines()[0] if message.strip() else "unreadable"
    return _QUOTED.sub(lambda m: f'"{m.group(1)}"' if m.group(1) in names or m.group(1) == "=" else '"..."', first)


def without_secrets(params: dict[str, str]) -> str:
    """Parsed connection parameters as a ``key=value`` string, the secrets left out: what is shown."""
    return make_conninfo("", **{k: v for k, v in params.items() if k not in SECRETS})
