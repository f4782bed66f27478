"""Test harness: a real PostgreSQL, a fresh database per test, never a user's database.

The server is chosen once per session: a running one where it is configured (``TEST_PG*`` or
``PG*`` variables) or reachable on 127.0.0.1:5432 with a role that may create databases
(``postgresql_noproc``); otherwise a throwaway cluster started by pytest-postgresql
(``postgresql_proc``), run as an unprivileged user when the tests run as root.

Each test gets its own database: an empty one (``db_url``) or a copy of a template on which the
repository's migrations were applied once (``echo_url``).
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pytest_postgresql import factories

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helpers import MigrationsDir, run_cli  # noqa: E402

from pgmigrate.embedded import find_pg_binary, unprivileged_user  # noqa: E402

TEMPLATE_DB = f"pgm_echo_tmpl_{os.getpid()}"


def _candidate() -> dict[str, object] | None:
    """A running server the tests may use, or None."""
    if os.environ.get("PGMIGRATE_TEST_SERVER") == "throwaway":
        return None
    params = {
        "host": os.environ.get("TEST_PGHOST") or os.environ.get("PGHOST") or "127.0.0.1",
        "port": int(os.environ.get("TEST_PGPORT") or os.environ.get("PGPORT") or 5432),
        "user": os.environ.get("TEST_PGUSER") or os.environ.get("PGUSER") or "postgres",
        "password": os.environ.get("TEST_PGPASSWORD") or os.environ.get("PGPASSWORD") or None,
    }
    try:
        with psycopg.connect(dbname="postgres", connect_timeout=3, autocommit=True, **params) as conn:
            ok = conn.execute("SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user").fetchone()
            return params if ok and ok[0] else None
    except psycopg.Error:
        return None


def _pg_ctl_as_unprivileged(tmp: Path) -> str:
    """A pg_ctl wrapper for root: hands the data directory and log file to an unprivileged user
    and runs pg_ctl as that user (initdb and postgres refuse to run as root)."""
    user = unprivileged_user()
    real = find_pg_binary("pg_ctl")
    runner = shutil.which("runuser")
    wrapper = tmp / "pg_ctl"
    wrapper.write_text(f"""#!/bin/sh
# pg_ctl as {user}: make the data directory and the log file theirs, and their parents reachable.
prev=""
for arg in "$@"; do
  case "$prev" in
    -D|--pgdata) mkdir -p "$arg" && chown {user} "$arg" && chmod 700 "$arg" ;;
    -l|--log) touch "$arg" && chown {user} "$arg" ;;
  esac
  case "$prev" in
    -D|--pgdata|-l|--log)
      d=$(dirname "$arg"); while [ "$d" != "/" ]; do chmod o+x "$d" 2>/dev/null; d=$(dirname "$d"); done ;;
  esac
  prev="$arg"
done
cd /
exec {runner} -u {user} -- {real} "$@"
""")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(wrapper)


_RUNNING = _candidate()
if _RUNNING:
    pg_server_factory = factories.postgresql_noproc(
        host=str(_RUNNING["host"]), port=int(_RUNNING["port"]), user=str(_RUNNING["user"]),
        password=_RUNNING["password"], dbname=f"pgm_unused_{os.getpid()}",
    )
else:
    _wrapper_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"pgmigrate-test-bin-{os.getpid()}"
    _wrapper_dir.mkdir(parents=True, exist_ok=True)
    _executable = _pg_ctl_as_unprivileged(_wrapper_dir) if os.geteuid() == 0 else find_pg_binary("pg_ctl")
    pg_server_factory = factories.postgresql_proc(
        executable=_executable, host="127.0.0.1", port=None, user="postgres",
        dbname=f"pgm_unused_{os.getpid()}",
    )


class Server:
    """Where the test server is, and how to make and drop databases on it."""

    def __init__(self, executor: object) -> None:
        self.host = executor.host
        self.port = int(executor.port)
        self.user = executor.user
        self.password = executor.password

    def url(self, dbname: str, *, user: str | None = None, password: str | None = None) -> str:
        user = user or self.user
        password = password if password is not None else self.password
        auth = f"{user}:{password}@" if password else f"{user}@"
        return f"postgresql://{auth}{self.host}:{self.port}/{dbname}"

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(self.url("postgres"), autocommit=True)

    def create_db(self, template: str = "template0") -> str:
        name = f"pgm_t_{uuid.uuid4().hex[:12]}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return name

    def drop_db(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_server(pg_server_factory) -> Server:
    return Server(pg_server_factory)


@pytest.fixture
def db_url(pg_server: Server) -> Iterator[str]:
    """A fresh, empty database for this test; dropped afterwards."""
    name = pg_server.create_db()
    yield pg_server.url(name)
    pg_server.drop_db(name)


@pytest.fixture(scope="session")
def echo_template(pg_server: Server) -> Iterator[str]:
    """A template database with the repository's migrations applied, made once per session."""
    from pgmigrate.config import Settings, Target
    from pgmigrate.engine import Runner

    pg_server.drop_db(TEMPLATE_DB)
    with pg_server.admin() as conn:
        conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}" TEMPLATE template0')
    settings = Settings(Target(pg_server.url(TEMPLATE_DB), "test"), ROOT / "migrations/postgres", ROOT / "seeds")
    with Runner(settings) as runner:
        runner.up()
    yield TEMPLATE_DB
    pg_server.drop_db(TEMPLATE_DB)


@pytest.fixture
def echo_url(pg_server: Server, echo_template: str) -> Iterator[str]:
    """A fresh copy of the migrated Echo database for this test; dropped afterwards."""
    name = pg_server.create_db(template=echo_template)
    yield pg_server.url(name)
    pg_server.drop_db(name)


@pytest.fixture
def other_url(pg_server: Server) -> Iterator[str]:
    """A second fresh, empty database (to apply another tool's files with psql, say); dropped afterwards."""
    name = pg_server.create_db()
    yield pg_server.url(name)
    pg_server.drop_db(name)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """An empty folder for another tool's migrations."""
    path = tmp_path / "theirs"
    path.mkdir()
    return path


@pytest.fixture
def mdir(tmp_path: Path) -> MigrationsDir:
    """An empty migrations folder with a helper to write files into it."""
    return MigrationsDir(tmp_path / "migrations")


@pytest.fixture
def cli():
    return run_cli


def pytest_configure(config: pytest.Config) -> None:
    """A private temporary folder per session: pytest's shared numbered folders are pruned by other
    sessions running at the same time, which would delete a throwaway cluster's data under it."""
    if not config.option.basetemp:
        import tempfile

        config.option.basetemp = tempfile.mkdtemp(prefix="pgmigrate-tests-")
        config._pgmigrate_basetemp = config.option.basetemp


def pytest_unconfigure(config: pytest.Config) -> None:
    path = getattr(config, "_pgmigrate_basetemp", None)
    if path:
        shutil.rmtree(path, ignore_errors=True)
