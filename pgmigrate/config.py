"""Configuration: which database, which folders, which limits.

One precedence rule for every setting: the command-line flag, then the environment, then ``.env``
in the working directory, then the default. For the database: ``--database-url``; ``DATABASE_URL``;
``POSTGRES_HOST/PORT/DB/USER/PASSWORD``; libpq ``PG*`` variables; the embedded server (``make db-up``).
A ``.env`` file supplies what the real environment does not set; it never overrides it. A setting
that is given but unusable (an empty ``DATABASE_URL``, a ``.env`` line that cannot be read) is an
error, never a silent fall back to another database.
"""

from __future__ import annotations

import os
from collections import namedtuple
from collections.abc import Mapping
from pathlib import Path

from .errors import UsageError
from .target import Target, make_conninfo
from .tracking import Table, parse_table

DEFAULT_MIGRATIONS_DIR = "migrations/postgres"
DEFAULT_SEEDS_DIR = "seeds"
EMBEDDED_PORT = 54329
EMBEDDED_DB = "echo"

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
    """Everything a command runs with: where, which folders and tracking table, timeouts, psql variables."""

    def __init__(self, target: Target, migrations_dir: Path | str, seeds_dir: Path | str = DEFAULT_SEEDS_DIR, *,
                 verbose: bool = False, quiet: bool = False, lock_wait: float = 60.0, lock_timeout: float = 5.0,
                 lock_retries: int = 3, statement_timeout: float = 0.0,
                 variables: dict[str, str] | None = None, table: Table | None = None) -> None:
        self.target = target
        self.table = table or Table()
        self.migrations_dir = Path(migrations_dir)
        self.seeds_dir = Path(seeds_dir)
        self.environment: Mapping[str, str] = os.environ  # where the production guard looks (build_settings: .env too)
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


class Environment(dict):
    """The variables the runner reads: the real environment over ``.env``; ``where(name)`` says
    which of the two a value came from, for messages."""

    def __init__(self, values: Mapping[str, str], from_file: dict[str, str], dotenv: Path | None) -> None:
        super().__init__(values)
        self.from_file = from_file
        self.dotenv = dotenv

    def where(self, name: str) -> str:
        return f"{name} in {self.dotenv}" if name in self.from_file and self.dotenv else name


def load_environment(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Environment:
    """The real environment over the values of ``.env`` in the working directory; a ``.env`` line
    that cannot be read, or a file that is not UTF-8, is an error naming the file and line."""
    env = dict(os.environ if environ is None else environ)
    path = (cwd or Path.cwd()) / ".env"
    if not path.is_file():
        return Environment(env, {}, None)
    values = read_dotenv(path)
    from_file = {k: v for k, v in values.items() if k not in env}
    env.update(from_file)
    return Environment(env, from_file, path)


def read_dotenv(path: Path) -> dict[str, str]:
    import io

    from dotenv import dotenv_values  # only paid for when there is a .env
    from dotenv.parser import parse_stream

    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise UsageError(f"{path}:{line}: not UTF-8 text; save the file as UTF-8") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read ({exc.strerror}); fix its permissions") from None
    for binding in parse_stream(io.StringIO(text)):
        # Nothing of a line that cannot be read is shown: it may hold a password.
        if binding.error:
            raise UsageError(f"{path}:{binding.original.line}: this line cannot be read (not NAME=value: a missing "
                             "'=', an unterminated quote or a stray character); fix it or remove it")
        if binding.key is not None and binding.value is None:
            raise UsageError(f"{path}:{binding.original.line}: {binding.key} has no '=' and no value; write "
                             f"{binding.key}=VALUE, or remove the line")
    return {k: v for k, v in dotenv_values(stream=io.StringIO(text)).items() if v is not None}


def resolve_target(cli_url: str | None, env: Mapping[str, str]) -> Target:
    where = env.where if isinstance(env, Environment) else (lambda name: name)
    if cli_url is not None:
        if not cli_url.strip():
            raise UsageError("--database-url is empty; give a connection URL")
        return Target(cli_url, "--database-url")
    if "DATABASE_URL" in env:
        if not env["DATABASE_URL"].strip():
            raise UsageError(f"{where('DATABASE_URL')} is set but empty; give it a connection URL, or unset it "
                             "to use the other settings")
        return Target(env["DATABASE_URL"], where("DATABASE_URL"))
    if any(env.get(v) for v in POSTGRES_VARS):
        params = {
            "host": env.get("POSTGRES_HOST") or "localhost",
            "port": env.get("POSTGRES_PORT") or "5432",
            "user": env.get("POSTGRES_USER") or "postgres",
            "dbname": env.get("POSTGRES_DB") or env.get("POSTGRES_USER") or "postgres",
        }
        if env.get("POSTGRES_PASSWORD"):
            params["password"] = env["POSTGRES_PASSWORD"]
        return Target(make_conninfo("", **params), "POSTGRES_* variables")
    if any(env.get(v) for v in LIBPQ_VARS if v != "PGPASSWORD"):
        params = {key: env[var] for var, key in LIBPQ_VARS.items() if env.get(var)}
        return Target(make_conninfo("", **params), "PG* variables")
    port = env.get("LOCAL_PG_PORT") or str(EMBEDDED_PORT)
    if not (port.isascii() and port.isdigit()):
        raise UsageError(f"LOCAL_PG_PORT={port!r} is not a port number; set it to a number such as {EMBEDDED_PORT}")
    db = env.get("LOCAL_PG_DB") or EMBEDDED_DB
    return Target(f"postgresql://postgres@127.0.0.1:{port}/{db}", "embedded server")


def setting(flag: str | None, env: Mapping[str, str], name: str, default: str) -> str:
    """One setting by the one rule: the flag, else the environment (then ``.env``), else the default."""
    return flag if flag is not None else (env.get(name) or default)


def build_settings(
    *,
    database_url: str | None = None,
    migrations_dir: str | None = None,
    seeds_dir: str | None = None,
    migrations_table: str | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    env = load_environment(environ, cwd)
    base = cwd or Path.cwd()
    settings = Settings(
        target=resolve_target(database_url, env),
        migrations_dir=base / setting(migrations_dir, env, "MIGRATIONS_DIR", DEFAULT_MIGRATIONS_DIR),
        seeds_dir=base / setting(seeds_dir, env, "SEEDS_DIR", DEFAULT_SEEDS_DIR),
        table=resolve_table(migrations_table, env),
    )
    settings.environment = env
    return settings


def resolve_table(flag: str | None, env: Mapping[str, str]) -> Table:
    """Our tracking table: ``--table``, else ``MIGRATIONS_TABLE`` (environment, then ``.env``), else
    public.schema_migrations; an error naming where an unusable name came from."""
    if flag is not None:
        return parse_table(flag, "--table")
    if env.get("MIGRATIONS_TABLE"):
        where = env.where if isinstance(env, Environment) else (lambda name: name)
        return parse_table(env["MIGRATIONS_TABLE"], where("MIGRATIONS_TABLE"))
    return Table()


def production(env: Mapping[str, str]) -> str | None:
    """``NAME=value`` when APP_ENV or ENVIRONMENT (environment or .env) says production, else None."""
    for var in ("APP_ENV", "ENVIRONMENT"):
        value = (env.get(var) or "").strip().lower()
        if value in ("production", "prod"):
            return f"{var}={value}"
    return None
