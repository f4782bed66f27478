"""The one database client (psycopg, libpq's own connection parsing), one plan for every command,
and the Python API an application embeds. Each test checks the database afterwards."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import uuid

import psycopg
import pytest
from helpers import ROOT, query, tables, tracked
from psycopg import sql

import pgmigrate
from pgmigrate.errors import MigrateError, StateError

PSQL_FILE = ("\\set n 7\n"
             "CREATE TABLE via_psql (n int DEFAULT :n, app text DEFAULT current_setting('application_name'));\n")
INPROCESS_FILE = "CREATE TABLE in_process (app text DEFAULT current_setting('application_name'));\n"


def _both_paths(mdir) -> None:
    mdir.add(1, "in_process", INPROCESS_FILE + "INSERT INTO in_process DEFAULT VALUES;", "DROP TABLE in_process;")
    mdir.add(2, "via_psql", PSQL_FILE + "INSERT INTO via_psql DEFAULT VALUES;\n", "DROP TABLE via_psql;")


def _parts(url: str) -> tuple[str, str, str]:
    info = psycopg.conninfo.conninfo_to_dict(url)
    return info["host"], str(info["port"]), info["dbname"]


# --- connection strings, parsed by libpq ---


def test_multi_host_url_on_both_paths(cli, db_url, mdir):
    """The first host refuses; libpq goes on to the second, in-process and in psql alike."""
    host, port, dbname = _parts(db_url)
    _both_paths(mdir)
    url = f"postgresql://postgres@127.0.0.1:1,{host}:{port}/{dbname}"
    done = cli("--dir", str(mdir), "up", url=url)
    assert done.returncode == 0, done.stderr
    assert set(tracked(db_url)) == {1, 2}
    assert query(db_url, "SELECT n FROM via_psql") == [(7,)]


def test_url_application_name_wins_on_both_paths(cli, db_url, mdir):
    _both_paths(mdir)
    done = cli("--dir", str(mdir), "up", url=db_url + "?application_name=billing-deploy")
    assert done.returncode == 0, done.stderr
    assert query(db_url, "SELECT app FROM in_process") == [("billing-deploy",)]
    assert query(db_url, "SELECT app FROM via_psql") == [("billing-deploy",)]


def test_runner_names_itself_when_the_url_does_not(cli, db_url, mdir):
    _both_paths(mdir)
    assert cli("--dir", str(mdir), "up", url=db_url).returncode == 0
    assert query(db_url, "SELECT app FROM in_process UNION SELECT app FROM via_psql") == [("pgmigrate",)]


def test_key_value_connection_string(cli, db_url, mdir):
    host, port, dbname = _parts(db_url)
    _both_paths(mdir)
    conninfo = f"host={host} port={port} dbname='{dbname}' user=postgres connect_timeout=5"
    done = cli("--dir", str(mdir), "up", url=conninfo)
    assert done.returncode == 0, done.stderr
    assert set(tracked(db_url)) == {1, 2}
    status = cli("--dir", str(mdir), "status", "--check", url=conninfo)
    assert status.returncode == 0 and "2 applied" in status.stdout


@pytest.mark.parametrize("password", ["pa/ss-Zq9", "p@ss-Zq9", "pa:ss/x@y-Zq9"])
def test_unencoded_password_characters_are_refused_without_showing_them(cli, db_url, mdir, password):
    host, port, dbname = _parts(db_url)
    mdir.add(1, "a", "CREATE TABLE a ();")
    done = cli("--dir", str(mdir), "up", url=f"postgresql://postgres:{password}@{host}:{port}/{dbname}")
    assert done.returncode == 2, done.stderr
    assert "percent-encode" in done.stderr and done.stderr.count("error:") == 1
    for piece in ("Zq9", "pa/", "p@s", "ss/", "ss-"):
        assert piece not in done.stderr + done.stdout
    assert tracked(db_url) == {}


def test_one_letter_password_leaves_messages_whole_and_init_creates_the_database(cli, pg_server, mdir):
    role, dbname = f"pgm_o_{uuid.uuid4().hex[:8]}", f"pgm_o_{uuid.uuid4().hex[:8]}"
    with pg_server.admin() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD 'o'").format(sql.Identifier(role)))
    try:
        url = f"postgresql://{role}:o@{pg_server.host}:{pg_server.port}/{dbname}"
        mdir.add(1, "a", "CREATE TABLE a ();")
        done = cli("--dir", str(mdir), "init", url=url)
        assert done.returncode == 0, done.stderr
        assert "created database" in done.stdout and "***" not in done.stdout + done.stderr
        assert query(pg_server.url(dbname), "SELECT to_regclass('public.schema_migrations') IS NOT NULL") == [(True,)]
        missing = cli("--dir", str(mdir), "status", url=url.replace(dbname, dbname + "_nope"))
        assert missing.returncode == 3
        assert f'database "{dbname}_nope" does not exist' in missing.stderr
    finally:
        pg_server.drop_db(dbname)
        with pg_server.admin() as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_an_unreadable_connection_string_shows_none_of_itself(cli, mdir):
    mdir.add(1, "a", "CREATE TABLE a ();")
    done = cli("--dir", str(mdir), "status", url="host=h dbname=x password=Hunter2Zq no_such_option=1")
    assert done.returncode == 2
    assert "Hunter2Zq" not in done.stderr and "no_such_option" not in done.stderr
    assert "not a connection string libpq can read" in done.stderr


# --- one plan for every command ---


def test_redo_checks_the_up_file_before_rolling_back(cli, db_url, mdir):
    up = mdir.add(1, "a", "CREATE TABLE a (id int);", "DROP TABLE a;")
    assert cli("--dir", str(mdir), "up", url=db_url).returncode == 0
    up.write_text("\\set x 1\nCREATE TABLE a (id int DEFAULT :'unset_variable');\n")
    done = cli("--dir", str(mdir), "redo", url=db_url)
    assert done.returncode == 2, done.stderr
    assert "unset_variable" in done.stderr and "--set unset_variable=VALUE" in done.stderr
    assert "a" in tables(db_url) and set(tracked(db_url)) == {1}


def test_up_sql_refuses_exactly_what_up_refuses(cli, db_url, mdir):
    mdir.add(1, "a", "CREATE TABLE a (id int);", "DROP TABLE a;")
    mdir.add(3, "c", "CREATE TABLE c (id int);", "DROP TABLE c;")
    assert cli("--dir", str(mdir), "up", url=db_url).returncode == 0
    mdir.add(2, "b", "CREATE TABLE b (id int);", "DROP TABLE b;")  # a branch merge: older than 3
    up = cli("--dir", str(mdir), "up", url=db_url)
    preview = cli("--dir", str(mdir), "up", "--sql", url=db_url)
    dry = cli("--dir", str(mdir), "up", "--dry-run", url=db_url)
    assert up.returncode == preview.returncode == dry.returncode == 1
    assert up.stderr == preview.stderr == dry.stderr and "older than the newest applied" in up.stderr
    assert preview.stdout == "" and "b" not in tables(db_url)
    query(db_url, "UPDATE schema_migrations SET dirty = true WHERE version = 3")
    up, preview = cli("--dir", str(mdir), "up", url=db_url), cli("--dir", str(mdir), "up", "--sql", url=db_url)
    assert up.returncode == preview.returncode == 1 and up.stderr == preview.stderr
    assert "make db-migrate-force V=3" in up.stderr


@pytest.mark.parametrize("args", [["1", "--all"], ["2", "--to", "1"], ["--to", "1", "--all"]])
def test_conflicting_down_options_are_an_error(cli, db_url, mdir, args):
    for v in (1, 2, 3):
        mdir.add(v, f"t{v}", f"CREATE TABLE t{v} ();", f"DROP TABLE t{v};")
    assert cli("--dir", str(mdir), "up", url=db_url).returncode == 0
    done = cli("--dir", str(mdir), "down", *args, url=db_url)
    assert done.returncode == 2 and "cannot be combined" in done.stderr
    assert set(tracked(db_url)) == {1, 2, 3} and {"t1", "t2", "t3"} <= tables(db_url)


# --- --single-transaction ---


@pytest.mark.parametrize("psql_run", [False, True])
def test_single_transaction_is_all_or_nothing(cli, db_url, mdir, psql_run):
    mdir.add(1, "a", "CREATE TABLE a (id int);")
    mdir.add(2, "b", ("\\set v 1\n" if psql_run else "") + "CREATE TABLE b (id int);")
    mdir.add(3, "c", "CREATE TABLE c (id int);\nSELECT 1/0;\n")
    done = cli("--dir", str(mdir), "up", "--single-transaction", url=db_url)
    assert done.returncode == 1 and "0003_c.up.sql" in done.stderr
    assert tables(db_url) - {"schema_migrations"} == set() and tracked(db_url) == {}
    (mdir.path / "0003_c.up.sql").write_text("CREATE TABLE c (id int);\n")
    done = cli("--dir", str(mdir), "up", "--single-transaction", url=db_url)
    assert done.returncode == 0, done.stderr
    assert set(tracked(db_url)) == {1, 2, 3} and {"a", "b", "c"} <= tables(db_url)
    xacts = query(db_url, "SELECT count(DISTINCT applied_at) FROM schema_migrations")
    assert xacts == [(1,)]  # one transaction: now() is the same for every row


def test_single_transaction_refuses_a_no_transaction_file_in_up_and_preview(cli, db_url, mdir):
    mdir.add(1, "a", "CREATE TABLE a (id int);")
    mdir.add(2, "idx", "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY a_id ON a (id);\n")
    for extra in ([], ["--sql"]):
        done = cli("--dir", str(mdir), "up", "--single-transaction", *extra, url=db_url)
        assert done.returncode == 2 and "cannot run inside the one transaction" in done.stderr
    assert tracked(db_url) == {} and "a" not in tables(db_url)


def test_single_transaction_preview_has_one_begin_and_one_commit(cli, db_url, mdir):
    for v in (1, 2):
        mdir.add(v, f"t{v}", f"CREATE TABLE t{v} ();")
    done = cli("--dir", str(mdir), "up", "--sql", "--single-transaction", url=db_url)
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert lines.count("BEGIN;") + sum(ln.startswith("BEGIN;") for ln in lines if ln != "BEGIN;") == 1
    assert lines.count("COMMIT;") == 1
    applied = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db_url], input=done.stdout,
                             capture_output=True, text=True)
    assert applied.returncode == 0, applied.stderr
    assert set(tracked(db_url)) == {1, 2}


# --- configuration: one precedence rule, exact or an error ---


def test_seeds_dir_flag_beats_the_environment(cli, db_url, tmp_path):
    flag, env = tmp_path / "flag", tmp_path / "env"
    for folder, table in ((flag, "from_flag"), (env, "from_env")):
        folder.mkdir()
        (folder / "001.sql").write_text(f"CREATE TABLE IF NOT EXISTS {table} ();\n")
    done = cli("seed", "--seeds-dir", str(flag), url=db_url, env={"SEEDS_DIR": str(env)})
    assert done.returncode == 0, done.stderr
    assert "from_flag" in tables(db_url) and "from_env" not in tables(db_url)


def test_env_file_that_cannot_be_read_is_an_error(cli, db_url, tmp_path, mdir):
    mdir.add(1, "a", "CREATE TABLE a ();")
    (tmp_path / ".env").write_text(f'MIGRATIONS_DIR={mdir}\nDATABASE_URL="{db_url}\nOTHER=1\n')
    done = cli("status", cwd=tmp_path)
    assert done.returncode == 2 and ".env:2" in done.stderr and "Traceback" not in done.stderr
    (tmp_path / ".env").write_bytes(b"DATABASE_URL=caf\xe9\n")
    done = cli("status", cwd=tmp_path)
    assert done.returncode == 2 and ".env:1: not UTF-8" in done.stderr and "Traceback" not in done.stderr


def test_empty_database_url_is_an_error_not_the_embedded_server(cli, tmp_path, mdir):
    mdir.add(1, "a", "CREATE TABLE a ();")
    done = cli("--dir", str(mdir), "status", env={"DATABASE_URL": ""})
    assert done.returncode == 2 and "DATABASE_URL is set but empty" in done.stderr
    (tmp_path / ".env").write_text("DATABASE_URL=\n")
    done = cli("--dir", str(mdir), "status", cwd=tmp_path)
    assert done.returncode == 2 and "DATABASE_URL in" in done.stderr and "is set but empty" in done.stderr


def test_production_guard_reads_the_env_file(cli, echo_url, tmp_path):
    (tmp_path / ".env").write_text(f"DATABASE_URL={echo_url}\nAPP_ENV=production\n")
    done = cli("--dir", str(ROOT / "migrations/postgres"), "fresh", "--yes", cwd=tmp_path, url=None)
    assert done.returncode == 1 and "APP_ENV=production" in done.stderr
    assert "messages" in {r[0] for r in query(echo_url, "SELECT nspname FROM pg_namespace")}
    assert set(tracked(echo_url)) >= {1, 2}


# --- the Python API ---


def test_api_logs_progress_and_takes_str_paths(db_url, mdir, caplog):
    mdir.add(1, "a", "CREATE TABLE a ();", "DROP TABLE a;")
    with caplog.at_level(logging.INFO, logger="pgmigrate"):
        applied = pgmigrate.run_migrations(db_url, migrations_dir=str(mdir.path))
    assert [(r.action, r.version, r.label) for r in applied] == [("applied", 1, "0001_a")]
    assert any(rec.name == "pgmigrate" and "applied 0001_a" in rec.getMessage() for rec in caplog.records)
    assert pgmigrate.current_version(db_url) == 1
    assert [r.version for r in pgmigrate.history(db_url)] == [1]
    status = pgmigrate.status(db_url, migrations_dir=str(mdir.path))
    assert status.clean and [(r.version, r.state) for r in status.rows] == [(1, "applied")]
    assert [r.version for r in pgmigrate.rollback(db_url, migrations_dir=mdir.path)] == [1]
    assert tracked(db_url) == {} and "a" not in tables(db_url)


def test_api_errors_speak_the_api_not_the_shell(db_url, mdir):
    mdir.add(1, "a", "-- migrate:no-transaction\nCREATE TABLE a ();\nSELECT 1/0;\n")
    with pytest.raises(MigrateError) as first:
        pgmigrate.run_migrations(db_url, migrations_dir=mdir.path)
    assert first.value.line == 3 and first.value.sqlstate == "22012"
    with pytest.raises(StateError) as dirty:
        pgmigrate.run_migrations(db_url, migrations_dir=mdir.path)
    err = dirty.value
    assert err.remedy == pgmigrate.Remedy("force", 1)
    for text in (str(err), *err.details):
        assert "make " not in text and "scripts/migrate.py" not in text and "--" not in text
    assert "pgmigrate.force(url, 1)" in str(err)
    assert tracked(db_url)[1][2] is True  # still dirty


def test_api_in_a_process_holding_1100_open_files(db_url, mdir):
    mdir.add(1, "a", "CREATE TABLE a ();")
    mdir.add(2, "b", "\\set x 1\nCREATE TABLE b (x int DEFAULT :x);")
    script = textwrap.dedent(f"""
        import os, resource, sys
        sys.path.insert(0, {str(ROOT)!r})
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 4096), hard), hard))
        held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
        assert max(held) > 1024
        import pgmigrate
        done = pgmigrate.run_migrations({db_url!r}, migrations_dir={str(mdir.path)!r})
        print([r.version for r in done], pgmigrate.current_version({db_url!r}))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[1, 2] 2"
    assert set(tracked(db_url)) == {1, 2} and {"a", "b"} <= tables(db_url)


def test_readme_startup_example_runs_as_written(db_url):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Python API"):]
    start = section.index("```python") + len("```python")
    example = section[start: section.index("```", start)]
    script = example + "\ninitialize_database()\n"
    env = {"DATABASE_URL": db_url, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "1 000001_init_schema" in proc.stdout
    assert "INFO:pgmigrate:applied 000001_init_schema" in proc.stderr
    assert set(tracked(db_url)) >= {1, 2}


# --- what the psycopg client keeps: notices, error fields, a lost connection named as such ---


def test_verbose_shows_the_servers_notices(cli, db_url, mdir):
    mdir.add(1, "a", "DO $$BEGIN RAISE NOTICE 'hello from migration one'; END$$;\nCREATE TABLE a ();")
    quiet = cli("--dir", str(mdir), "up", "--steps", "1", url=db_url)
    assert quiet.returncode == 0 and "hello from migration one" not in quiet.stdout + quiet.stderr
    query(db_url, "DROP TABLE a; DELETE FROM schema_migrations")
    loud = cli("--verbose", "--dir", str(mdir), "up", url=db_url)
    assert loud.returncode == 0 and "NOTICE: hello from migration one" in loud.stderr
    assert set(tracked(db_url)) == {1}


def test_error_fields_are_kept(cli, db_url, mdir):
    mdir.add(1, "a", "CREATE TABLE a (id int PRIMARY KEY);\nINSERT INTO a VALUES (1);\nINSERT INTO a VALUES (1);\n")
    done = cli("--dir", str(mdir), "up", url=db_url)
    assert done.returncode == 1
    assert "(SQLSTATE 23505)" in done.stderr and "detail: Key (id)=(1) already exists." in done.stderr
    assert tracked(db_url) == {} and "a" not in tables(db_url)


def test_a_lost_connection_is_named_and_nothing_is_recorded(cli, db_url, mdir):
    from helpers import start_runner, wait_until

    mdir.add(1, "slow", "CREATE TABLE slow (id int);\nSELECT pg_sleep(30);\n")
    proc = start_runner("--dir", str(mdir), "up", url=db_url)
    sleeping = ("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND position('pg_sleep(30)' in query) > 0 AND pid <> pg_backend_pid()")
    pids = wait_until(lambda: query(db_url, sleeping), 30, "the migration to sleep", proc)
    query(db_url, f"SELECT pg_terminate_backend({pids[0][0]})")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    assert "terminating connection" in err and "Traceback" not in err and err.count("error:") == 1
    assert tracked(db_url) == {} and "slow" not in tables(db_url)


def test_utf8_file_in_process_on_a_sql_ascii_database(cli, pg_server, mdir):
    """The in-process connection speaks UTF-8, as psql does for the runner: the same file runs on
    either path whatever the database's encoding."""
    name = f"pgm_ascii_{uuid.uuid4().hex[:8]}"
    with pg_server.admin() as conn:
        conn.execute(f"CREATE DATABASE {name} ENCODING 'SQL_ASCII' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'")
    try:
        url = pg_server.url(name)
        mdir.add(1, "accents", "CREATE TABLE word (w text);\nINSERT INTO word VALUES ('café');\n")
        done = cli("--dir", str(mdir), "up", url=url)
        assert done.returncode == 0, done.stderr
        assert set(tracked(url)) == {1}
    finally:
        pg_server.drop_db(name)
