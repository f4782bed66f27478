"""Safety: passwords never shown, hostile names never executed, an ordinary role is enough, and
``fresh`` drops nothing without a confirmation that cannot be given by accident."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from helpers import ROOT, MigrationsDir, query, start_runner, tables, tracked
from psycopg import sql

# --- a role with a password, owning a database of its own ---


@dataclass
class Account:
    role: str
    password: str
    token: str  # a distinctive part of the password: found in any leak, even an escaped or encoded one
    dbname: str
    url: str  # with the password in it
    plain_url: str  # without


@contextlib.contextmanager
def _account(pg_server) -> Iterator[Account]:
    token = uuid.uuid4().hex
    role = f"pgm_sec_{token[:8]}"
    password = f"S3cr'et {token} x\\#%@:/!"
    dbname = f"pgm_sec_{token[:12]}"
    with pg_server.admin() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(password)))
        conn.execute(f'CREATE DATABASE "{dbname}" OWNER {role} TEMPLATE template0')
    url = f"postgresql://{role}:{quote(password, safe='')}@{pg_server.host}:{pg_server.port}/{dbname}"
    try:
        yield Account(role, password, token, dbname, url, f"postgresql://{role}@{pg_server.host}:{pg_server.port}/{dbname}")
    finally:
        pg_server.drop_db(dbname)
        with pg_server.admin() as conn:
            conn.execute(f"DROP ROLE IF EXISTS {role}")


@pytest.fixture
def account(pg_server) -> Iterator[Account]:
    with _account(pg_server) as a:
        yield a


@pytest.fixture(scope="module")
def shared_account(pg_server) -> Iterator[Account]:
    """For tests that must leave the database untouched (each checks that it did)."""
    with _account(pg_server) as a:
        yield a


def assert_no_secret(account: Account, *outputs: str) -> None:
    for text in outputs:
        assert account.token not in text, f"password leaked: {text}"
        assert quote(account.password, safe="") not in text


def admin_url(pg_server, dbname: str) -> str:
    return pg_server.url(dbname)


@pytest.mark.slow
def test_password_never_in_output_of_successful_commands(cli, account, mdir, pg_server):
    mdir.add(1, "one", "CREATE TABLE one (id int);\n", "DROP TABLE one;\n")
    mdir.add(2, "two", "\\set who 'psql bridge'\nSELECT :'who' AS greeting;\nCREATE TABLE two (id int);\n",
             "DROP TABLE two;\n")
    commands = [["init"], ["up", "--sql"], ["up"], ["status"], ["status", "--format", "json"], ["version"],
                ["verify"], ["down"], ["redo"], ["up"]]
    for command in commands:
        done = cli("--verbose", "--dir", str(mdir), *command, url=account.url)
        assert done.returncode == 0, (command, done.stderr)
        assert "Traceback" not in done.stderr
        assert_no_secret(account, done.stdout, done.stderr)
    url = admin_url(pg_server, account.dbname)
    assert {"one", "two"} <= tables(url)
    assert {v: d for v, (_, _, d) in tracked(url).items()} == {1: False, 2: False}
    assert {r[0] for r in query(url, "SELECT applied_by FROM schema_migrations")} == {account.role}


def _conninfo_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _failures(account: Account, mdir: MigrationsDir, pg_server) -> dict[str, tuple[list[str], str, dict]]:
    """name -> (arguments, database URL or conninfo, extra environment) of commands that fail."""
    host, port = pg_server.host, pg_server.port
    enc = quote(account.password, safe="")
    return {
        "sql error": (["up"], account.url, {}),
        "connection refused": (["up"], f"postgresql://{account.role}:{enc}@127.0.0.1:1/{account.dbname}", {}),
        "missing database": (["up"], f"postgresql://{account.role}:{enc}@{host}:{port}/no_such_db_x", {}),
        "invalid port": (["status"], f"postgresql://{account.role}:{enc}@{host}:99999/{account.dbname}", {}),
        "bad option": (["status"], f"host={host} port={port} dbname={account.dbname} user={account.role} "
                       f"password={_conninfo_quote(account.password)} no_such_option=1", {}),
        "password from PGPASSWORD": (["up"], f"postgresql://{account.role}@127.0.0.1:1/{account.dbname}",
                                     {"PGPASSWORD": account.password}),
        "password from POSTGRES_PASSWORD": (["up"], "", {"POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": "1",
                                                         "POSTGRES_USER": account.role,
                                                         "POSTGRES_PASSWORD": account.password}),
    }


@pytest.mark.parametrize("case", ["sql error", "connection refused", "missing database", "invalid port", "bad option",
                                  "password from PGPASSWORD", "password from POSTGRES_PASSWORD"])
def test_password_never_in_errors_or_tracebacks(case, cli, shared_account, mdir, pg_server):
    account = shared_account
    mdir.add(1, "bad", "CREATE TABLE bad (id int);\nSELECT no_such_column FROM bad;\n")
    args, url, env = _failures(account, mdir, pg_server)[case]
    done = cli("--verbose", "--dir", str(mdir), *args, url=url or None, env=env)
    expected = {"sql error": 1, "invalid port": 2, "bad option": 2}.get(case, 3)
    assert done.returncode == expected, done.stderr
    assert done.stderr.count("error:") == 1, done.stderr
    assert_no_secret(account, done.stdout, done.stderr)
    assert tracked(admin_url(pg_server, account.dbname)) == {}
    assert "bad" not in tables(admin_url(pg_server, account.dbname))


def test_password_never_in_psql_failure(cli, shared_account, mdir, pg_server):
    account = shared_account
    mdir.add(1, "bad", "\\set x 1\nCREATE TABLE bad (id int);\nSELECT :x + no_such_column FROM bad;\n")
    done = cli("--verbose", "--dir", str(mdir), "up", url=account.url)
    assert done.returncode == 1
    assert "0001_bad.up.sql:3" in done.stderr and "no_such_column" in done.stderr
    assert_no_secret(account, done.stdout, done.stderr)
    assert tracked(admin_url(pg_server, account.dbname)) == {}
    assert "bad" not in tables(admin_url(pg_server, account.dbname))


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError:
        return b""


@pytest.mark.slow
def test_password_not_on_the_psql_command_line(account, mdir, pg_server):
    mdir.add(1, "slow", "\\set pause 2\nCREATE TABLE slow (id int);\nSELECT pg_sleep(:pause);\n")
    proc = start_runner("--dir", str(mdir), "up", url=account.url)
    try:
        psql_pid, argvs = None, []
        deadline = time.monotonic() + 15
        # Debian's /usr/bin/psql is a Perl wrapper that execs the real psql in the same process:
        # look at every command line the child has, until it is psql itself.
        while time.monotonic() < deadline and proc.poll() is None:
            if psql_pid is None:
                psql_pid = next((c for c in _children(proc.pid)
                                 if _read(f"/proc/{c}/comm").strip() == b"psql"), None)
            if psql_pid is not None:
                argv = _read(f"/proc/{psql_pid}/cmdline").split(b"\0")
                if argv not in argvs:
                    argvs.append(argv)
                if argv[0].endswith(b"psql") and b"ON_ERROR_STOP=1" in argv:
                    environ = _read(f"/proc/{psql_pid}/environ").split(b"\0")
                    break
            time.sleep(0.01)
        assert psql_pid is not None, "no psql child seen"
        assert argvs and argvs[-1][0].endswith(b"psql"), argvs
        argvs = [argv for argv in argvs if argv != [b""]]  # a read between two execs
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = b" ".join(b" ".join(argv) for argv in argvs).decode("utf-8", "replace")
    assert_no_secret(account, text, out, err)
    # The connection travels in the environment instead, password included.
    assert f"PGUSER={account.role}".encode() in environ  # it is the migration's psql, as the account
    assert f"PGPASSWORD={account.password}".encode() in environ
    assert proc.returncode == 0, err
    url = admin_url(pg_server, account.dbname)
    assert "slow" in tables(url)
    assert set(tracked(url)) == {1}


# --- hostile names and values ---


@pytest.fixture
def canary(db_url) -> str:
    query(db_url, "CREATE TABLE canary (note text); INSERT INTO canary VALUES ('alive')")
    return db_url


def assert_canary_alive(url: str) -> None:
    assert query(url, "SELECT note FROM canary") == [("alive",)]


def test_hostile_file_name_is_refused_not_executed(cli, canary, mdir):
    (mdir.path / "0001_x');drop table canary;--.up.sql").write_text("SELECT 1;\n")
    mdir.add(2, "fine", "CREATE TABLE fine (id int);\n")
    for command in (["up"], ["status"], ["up", "--sql"], ["baseline", "2"]):
        done = cli("--dir", str(mdir), *command, url=canary)
        # status shows what it can, the problem beside it; the others refuse
        assert done.returncode == (0 if command == ["status"] else 2), (command, done.stderr)
        assert "invalid migration file name" in done.stderr
        assert "Traceback" not in done.stderr
    verify = cli("--dir", str(mdir), "verify", url=canary)
    assert verify.returncode == 1
    assert "0001_x');drop table canary;--.up.sql: invalid migration file name" in verify.stdout
    assert_canary_alive(canary)
    assert tracked(canary) == {}
    assert "fine" not in tables(canary)


def test_folder_with_quotes_and_backslashes_through_psql(cli, canary, tmp_path):
    """The psql bridge names the file in an ``\\i`` meta-command: the folder's quotes and backslashes
    must reach psql as part of the path, not as psql syntax."""
    mdir = MigrationsDir(tmp_path / "it's a \\tdir\\' \\! touch pwned; '")
    mdir.add(1, "bridge", "\\set n 1\nCREATE TABLE bridged (id int);\nINSERT INTO bridged VALUES (:n);\n")
    done = cli("--dir", str(mdir), "up", url=canary, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert query(canary, "SELECT id FROM bridged") == [(1,)]
    assert set(tracked(canary)) == {1}
    assert not (tmp_path / "pwned").exists()
    assert_canary_alive(canary)


def test_psql_variables_are_quoted(cli, canary, mdir):
    hostile = "x'); DROP TABLE canary; -- \\ \\\\ :'y' \u00e9\n\\! touch pwned"
    mdir.add(1, "notes", "CREATE TABLE notes (body text);\nINSERT INTO notes VALUES (:'note');\n")
    done = cli("--dir", str(mdir), "up", "--set", f"note={hostile}", url=canary)
    assert done.returncode == 0, done.stderr
    assert query(canary, "SELECT body FROM notes") == [(hostile,)]
    assert set(tracked(canary)) == {1}
    assert_canary_alive(canary)
    assert not (ROOT / "pwned").exists()


# --- an ordinary role that owns its database ---


@pytest.mark.slow
def test_non_superuser_owner_can_run_everything(cli, account, mdir, pg_server):
    mdir.add(1, "schema", "CREATE SCHEMA app;\nCREATE TABLE app.items (id int PRIMARY KEY, name text);\n",
             "DROP SCHEMA app CASCADE;\n")
    mdir.add(2, "bridge", "\\set first 'one'\nINSERT INTO app.items VALUES (1, :'first');\n",
             "DELETE FROM app.items WHERE id = 1;\n")
    mdir.add(3, "index", "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY items_name ON app.items (name);\n",
             "-- migrate:no-transaction\nDROP INDEX CONCURRENTLY app.items_name;\n")
    url = account.plain_url
    admin = admin_url(pg_server, account.dbname)
    assert query(admin, "SELECT rolsuper, rolcreatedb FROM pg_roles WHERE rolname = %s", (account.role,)) == [
        (False, False)]

    for command in (["init"], ["up"], ["status", "--check"], ["verify"]):
        done = cli("--dir", str(mdir), *command, url=url)
        assert done.returncode == 0, (command, done.stderr)
    assert query(admin, "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'app'") == [(account.role,)]
    assert query(admin, "SELECT name FROM app.items") == [("one",)]
    assert query(admin, "SELECT indexname FROM pg_indexes WHERE schemaname = 'app' AND indexname = 'items_name'")
    rows = query(admin, "SELECT version, applied_by, dirty FROM schema_migrations ORDER BY version")
    assert rows == [(1, account.role, False), (2, account.role, False), (3, account.role, False)]

    done = cli("--dir", str(mdir), "down", "--all", url=url)
    assert done.returncode == 0, done.stderr
    assert tracked(admin) == {}
    assert query(admin, "SELECT count(*) FROM pg_namespace WHERE nspname = 'app'") == [(0,)]

    done = cli("--dir", str(mdir), "up", url=url)
    assert done.returncode == 0, done.stderr
    query(admin, "CREATE TABLE public.stray (id int)")
    query(admin, f"ALTER TABLE public.stray OWNER TO {account.role}")
    done = cli("--dir", str(mdir), "fresh", "--yes", url=url)
    assert done.returncode == 0, done.stderr
    assert "stray" not in tables(admin)
    assert set(tracked(admin)) == {1, 2, 3}
    assert query(admin, "SELECT name FROM app.items") == [("one",)]


def test_init_of_a_missing_database_without_createdb(cli, account, mdir, pg_server):
    name = f"pgm_nocreate_{uuid.uuid4().hex[:8]}"
    url = f"postgresql://{account.role}@{pg_server.host}:{pg_server.port}/{name}"
    done = cli("--dir", str(mdir), "init", url=url)
    assert done.returncode == 3, done.stderr
    assert done.stderr.count("error:") == 1 and "Traceback" not in done.stderr
    assert "may not create it" in done.stderr and name in done.stderr
    with pg_server.admin() as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,)).fetchone()[0] == 0


def test_lock_holder_described_to_a_non_superuser(cli, account, mdir, pg_server):
    """The waiting runner names the holder even when the holder is another role's session."""
    mdir.add(1, "one", "CREATE TABLE one (id int);\n")
    admin = admin_url(pg_server, account.dbname)
    with psycopg.connect(admin, application_name="admin-holder") as holder:
        key = holder.execute("SELECT hashtext(current_database() || '/public.schema_migrations')").fetchone()[0]
        assert holder.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", (0x70676D67, key)).fetchone()[0]
        done = cli("--dir", str(mdir), "up", "--lock-wait", "1", url=account.plain_url)
        holder_pid = holder.info.backend_pid
        holder.rollback()
    assert done.returncode == 4, done.stderr
    assert f"pid {holder_pid}" in done.stderr and "application admin-holder" in done.stderr
    assert "since None" not in done.stderr
    assert "local socket" not in done.stderr  # the holder came over TCP; the runner just may not see from where
    assert tracked(admin) == {}
    assert "one" not in tables(admin)


# --- fresh: destructive, so confirmed and never in production by accident ---


@pytest.fixture
def migrated(cli, db_url, mdir) -> str:
    mdir.add(1, "keep", "CREATE TABLE keep (id int);\nINSERT INTO keep VALUES (1);\n")
    assert cli("--dir", str(mdir), "up", url=db_url).returncode == 0
    query(db_url, "CREATE TABLE extra (id int); INSERT INTO extra VALUES (7); CREATE SCHEMA side")
    return db_url


def assert_nothing_dropped(url: str) -> None:
    assert query(url, "SELECT id FROM keep") == [(1,)]
    assert query(url, "SELECT id FROM extra") == [(7,)]
    assert query(url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'side'") == [(1,)]
    assert set(tracked(url)) == {1}


def assert_dropped_and_reapplied(url: str) -> None:
    assert query(url, "SELECT id FROM keep") == [(1,)]
    assert "extra" not in tables(url)
    assert query(url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'side'") == [(0,)]
    assert set(tracked(url)) == {1}


def test_fresh_refuses_without_yes_when_not_on_a_terminal(cli, migrated, mdir):
    dbname = migrated.rsplit("/", 1)[1]
    for stdin in (None, dbname + "\n", "yes\n"):
        done = cli("--dir", str(mdir), "fresh", url=migrated, input=stdin)
        assert done.returncode == 1, done.stderr
        assert "without --yes" in done.stderr and "Traceback" not in done.stderr
    assert_nothing_dropped(migrated)


def test_fresh_refuses_in_production(cli, migrated, mdir):
    for var, value in [("APP_ENV", "production"), ("ENVIRONMENT", "prod"), ("APP_ENV", "Production")]:
        done = cli("--dir", str(mdir), "fresh", "--yes", url=migrated, env={var: value})
        assert done.returncode == 1, (var, value, done.stderr)
        assert f"{var}=" in done.stderr and "--allow-production" in done.stderr, (var, value, done.stderr)
        assert_nothing_dropped(migrated)


def test_fresh_in_production_with_allow_production(cli, migrated, mdir):
    done = cli("--dir", str(mdir), "fresh", "--yes", "--allow-production", url=migrated, env={"APP_ENV": "production"})
    assert done.returncode == 0, done.stderr
    assert_dropped_and_reapplied(migrated)


def _fresh_on_a_terminal(url: str, mdir: MigrationsDir, typed: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "POSTGRES_", "DATABASE_URL"))}
    env.update(NO_COLOR="1", DATABASE_URL=url)
    env.pop("APP_ENV", None)
    env.pop("ENVIRONMENT", None)
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "migrate.py"), "--dir", str(mdir), "fresh"],
                                cwd=ROOT, env=env, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        os.close(slave)
        os.write(master, (typed + "\n").encode())
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(master)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_fresh_on_a_terminal_wants_the_database_name(migrated, mdir):
    dbname = migrated.rsplit("/", 1)[1]
    done = _fresh_on_a_terminal(migrated, mdir, "yes")
    assert done.returncode == 1, done.stderr
    assert "Type the database name" in done.stdout and "not confirmed" in done.stderr
    assert_nothing_dropped(migrated)

    done = _fresh_on_a_terminal(migrated, mdir, dbname)
    assert done.returncode == 0, done.stderr
    assert_dropped_and_reapplied(migrated)
