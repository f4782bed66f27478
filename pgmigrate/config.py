"""Configuration: which database, which folders, which limits.

Database precedence, highest first: ``--database-url``; ``DATABASE_URL``; ``POSTGRES_HOST/PORT/DB/
USER/PASSWORD``; libpq ``PG*`` variables; the embedded server (``make db-up``). A ``.env`` file in
the working directory supplies variables that the real environment does not set; it never
overrides the real environment.
"""

from __future__ import annotations

import os
from collections import namedtuple
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .errors import ConnectError, UsageError

DEFAULT_MIGRATIONS_DIR = "migrations/postgres"
DEFAULT_SEEDS_DIR = "seeds"
EMBEDDED_PORT = 54329
EMBEDDED_DB = "echo"
APPLICATION_NAME = "pgmigrate"

POSTGRES_VARS = ("POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD")
LIBPQ_VARS = {
    "PGHOST": "host",
    "PGHOSTADDR": "hostaddr",
    "PGPORT": "port",
    "PGDATABASE": "dbname",
    "PGUSER": "user",
    "PGPASSWORD": "password",
    "PGSERVICE": "service",
    "PGSSLMODE": "sslmode",
}


class Target:
    """A database to connect to, and where that choice came from (for messages)."""

    __slots__ = ("conninfo", "source")

    def __init__(self, conninfo: str, source: str) -> None:
        self.conninfo = conninfo
        self.source = source

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
        return conninfo_params(self.conninfo)

    @property
    def password(self) -> str | None:
        return self.params().get("password") or os.environ.get("PGPASSWORD")

    def describe(self) -> str:
        """``host H, port P, database D, user U``, never the password."""
        p = self.params()
        host = p.get("host") or p.get("hostaddr") or os.environ.get("PGHOST") or "localhost (socket)"
        port = p.get("port") or os.environ.get("PGPORT") or "5432"
        db = p.get("dbname") or os.environ.get("PGDATABASE") or p.get("user") or os.environ.get("PGUSER") or "?"
        user = p.get("user") or os.environ.get("PGUSER")
        return f"host {host}, port {port}, database {db}" + (f", user {user}" if user else "")

    def with_dbname(self, dbname: str) -> Target:
        p = self.params()
        p["dbname"] = dbname
        return Target(make_conninfo(p), self.source)


class Limits(namedtuple("Limits", "lock_timeout statement_timeout lock_retries", defaults=(5.0, 0.0, 3))):
    """Per-migration timeouts and retries: ``lock_timeout`` and ``statement_timeout`` in seconds (0:
    none), ``lock_retries`` the times a lock timeout is retried."""

    __slots__ = ()

    def set_local_statements(self) -> list[str]:
        """The ``SET LOCAL`` statements that open every transactional migration."""
        parts = []
        if self.lock_timeout > 0:
            parts.append(f"SET LOCAL lock_timeout = '{int(self.lock_timeout * 1000)}ms'")
        if self.statement_timeout > 0:
            parts.append(f"SET LOCAL statement_timeout = '{int(self.statement_timeout * 1000)}ms'")
        return parts

    def set_local_sql(self) -> str:
        return ";\n".join(self.set_local_statements())


class Settings:
    """Everything a command runs with: where, which folders, timeouts, psql variables."""

    def __init__(self, target: Target, migrations_dir: Path, seeds_dir: Path, *, verbose: bool = False,
                 quiet: bool = False, lock_wait: float = 60.0, lock_timeout: float = 5.0, lock_retries: int = 3,
                 statement_timeout: float = 0.0, variables: dict[str, str] | None = None) -> None:
        self.target = target
        self.migrations_dir = migrations_dir
        self.seeds_dir = seeds_dir
        self.verbose = verbose
        self.quiet = quiet
        self.lock_wait = lock_wait
        self.lock_timeout = lock_timeout
        self.lock_retries = lock_retries
        self.statement_timeout = statement_timeout
        self.variables = {} if variables is None else variables

    def replace(self, **changes: object) -> Settings:
        """A copy with some settings changed."""
        copy = Settings.__new__(Settings)
        copy.__dict__.update(self.__dict__, **changes)
        return copy

    def __repr__(self) -> str:
        return f"Settings(target={self.target!r}, migrations_dir={self.migrations_dir!r})"


def load_environment(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> dict[str, str]:
    """The real environment over the values of ``.env`` in the working directory."""
    env = dict(os.environ if environ is None else environ)
    dotenv_path = (cwd or Path.cwd()) / ".env"
    if dotenv_path.is_file():
        from dotenv import dotenv_values  # only paid for when there is a .env

        for key, value in dotenv_values(dotenv_path).items():
            if value is not None:
                env.setdefault(key, value)
    return env


def resolve_target(cli_url: str | None, env: Mapping[str, str]) -> Target:
    if cli_url:
        return Target(cli_url, "--database-url")
    if env.get("DATABASE_URL"):
        return Target(env["DATABASE_URL"], "DATABASE_URL")
    if any(env.get(v) for v in POSTGRES_VARS):
        params = {
            "host": env.get("POSTGRES_HOST") or "localhost",
            "port": env.get("POSTGRES_PORT") or "5432",
            "user": env.get("POSTGRES_USER") or "postgres",
            "dbname": env.get("POSTGRES_DB") or env.get("POSTGRES_USER") or "postgres",
        }
        if env.get("POSTGRES_PASSWORD"):
            params["password"] = env["POSTGRES_PASSWORD"]
        return Target(make_conninfo(params), "POSTGRES_* variables")
    if any(env.get(v) for v in LIBPQ_VARS if v != "PGPASSWORD"):
        params = {key: env[var] for var, key in LIBPQ_VARS.items() if env.get(var)}
        return Target(make_conninfo(params), "PG* variables")
    port = env.get("LOCAL_PG_PORT") or str(EMBEDDED_PORT)
    if not port.isdigit():
        raise UsageError(f"LOCAL_PG_PORT={port!r} is not a port number; set it to a number such as {EMBEDDED_PORT}")
    db = env.get("LOCAL_PG_DB") or EMBEDDED_DB
    return Target(f"postgresql://postgres@127.0.0.1:{port}/{db}", "embedded server")


def build_settings(
    *,
    database_url: str | None = None,
    migrations_dir: str | None = None,
    seeds_dir: str | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    env = load_environment(environ, cwd)
    base = cwd or Path.cwd()
    return Settings(
        target=resolve_target(database_url, env),
        migrations_dir=base / (migrations_dir or env.get("MIGRATIONS_DIR") or DEFAULT_MIGRATIONS_DIR),
        seeds_dir=base / (env.get("SEEDS_DIR") or seeds_dir or DEFAULT_SEEDS_DIR),
    )


# --- conninfo helpers (no psycopg import: these run on every command, including the fast ones) ---


def conninfo_params(conninfo: str) -> dict[str, str]:
    """Parse a ``postgresql://`` URL or a ``key=value`` string into libpq parameters."""
    if conninfo.startswith(("postgresql://", "postgres://")):
        return _url_params(conninfo)
    return _keyword_params(conninfo)


def _url_params(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    params: dict[str, str] = {}
    if parts.hostname:
        params["host"] = unquote(parts.hostname)
    try:
        if parts.port:
            params["port"] = str(parts.port)
    except ValueError:
        # not redact(url): it parses the URL again, which would land here again (endless recursion)
        where = parts.netloc.rsplit("@", 1)[-1]  # host:port, without the user and password
        raise UsageError(f"the database URL has an invalid port ({where}); fix the URL") from None
    if parts.username:
        params["user"] = unquote(parts.username)
    if parts.password:
        params["password"] = unquote(parts.password)
    if parts.path and parts.path != "/":
        params["dbname"] = unquote(parts.path[1:])
    for item in filter(None, parts.query.split("&")):
        key, _, value = item.partition("=")
        params[unquote(key)] = unquote(value)
    return params


def _keyword_params(conninfo: str) -> dict[str, str]:
    params: dict[str, str] = {}
    i, n = 0, len(conninfo)
    while i < n:
        while i < n and conninfo[i].isspace():
            i += 1
        if i >= n:
            break
        eq = conninfo.find("=", i)
        if eq < 0:
            raise UsageError("the connection string is not 'key=value' pairs or a postgresql:// URL; fix it")
        key = conninfo[i:eq].strip()
        i = eq + 1
        while i < n and conninfo[i].isspace():
            i += 1
        value, i = _keyword_value(conninfo, i)
        params[key] = value
    return params


def _keyword_value(s: str, i: int) -> tuple[str, int]:
    out = []
    if i < len(s) and s[i] == "'":
        i += 1
        while i < len(s) and s[i] != "'":
            if s[i] == "\\" and i + 1 < len(s):
                i += 1
            out.append(s[i])
            i += 1
        return "".join(out), i + 1
    while i < len(s) and not s[i].isspace():
        if s[i] == "\\" and i + 1 < len(s):
            i += 1
        out.append(s[i])
        i += 1
    return "".join(out), i


def make_conninfo(params: Mapping[str, str]) -> str:
    """A ``key=value`` connection string, each value quoted for libpq."""
    return " ".join(f"{k}={_quote(v)}" for k, v in params.items())


def _quote(value: str) -> str:
    if value and not any(c.isspace() or c in "'\\" for c in value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def redact(conninfo: str) -> str:
    """The connection string with any password replaced by ``***``."""
    params = conninfo_params(conninfo) if conninfo else {}
    if "password" not in params:
        return conninfo
    if conninfo.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(conninfo)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            if ":" in userinfo:
                userinfo = userinfo.split(":", 1)[0] + ":***"
            netloc = f"{userinfo}@{host}"
        query = "&".join(
            "password=***" if item.split("=")[0] == "password" else item for item in parts.query.split("&") if item
        )
        return parts._replace(netloc=netloc, query=query).geturl()
    params["password"] = "***"
    return make_conninfo(params)


# --- connection failures (shared by psycopg connections and the read-only libpq path) ---


def connection_failure(target: Target, text: str) -> ConnectError:
    """A one-line ConnectError for libpq's message: the reason, where, and what to do."""
    text = scrub(text, target)
    reason = _last_line(text)
    where = target.describe()
    low = text.lower()
    if "does not exist" in low and "database" in low:
        db = target.params().get("dbname", "the database")
        return ConnectError(
            f'database "{db}" does not exist ({where}); create it with \'scripts/migrate.py init\' (make db-init)'
        )
    if "authentication failed" in low or "no password supplied" in low or "password" in low:
        return ConnectError(f"authentication failed ({where}): {reason}; check the user and password")
    if "role" in low and "does not exist" in low:
        return ConnectError(f"{reason} ({where}); check the user name")
    if target.embedded and ("refused" in low or "no such file" in low):
        return ConnectError(f"the embedded PostgreSQL is not running ({where}); start it with 'make db-up'")
    return ConnectError(f"cannot connect to PostgreSQL ({where}): {reason}; check that the server runs there")


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return "unknown error"
    best = lines[-1]
    for ln in lines:
        if "FATAL" in ln or "refused" in ln or "timeout" in ln.lower():
            best = ln
    return best.removeprefix("connection failed: ")


def scrub(text: str, target: Target) -> str:
    """Remove the password from any text that might echo it."""
    password = target.password
    return text.replace(password, "***") if password else text
