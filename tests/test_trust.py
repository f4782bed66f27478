"""A run that cannot lie: clean sessions between migrations, no escape from the transaction that
holds the tracking row, statements a transaction refuses caught before anything runs. Each test
checks the database afterwards: tables, tracking rows, dirty marks."""

from __future__ import annotations

import pytest
from helpers import query, tables, tracked

PSQL = "\\set unused 1\n"  # makes a file run through psql


def _dirty(url: str) -> dict[int, bool]:
    return {v: row[2] for v, row in tracked(url).items()}


# --- 1. every migration starts from a clean session ---


@pytest.fixture
def other_role(pg_server, db_url):
    role = f"pgm_other_{db_url.rsplit('_', 1)[-1]}"
    query(db_url, f"CREATE ROLE {role} NOLOGIN; GRANT CREATE ON SCHEMA public TO {role}; CREATE SCHEMA other")
    yield role
    query(db_url, f"DROP SCHEMA IF EXISTS other CASCADE; DROP OWNED BY {role}; DROP ROLE {role}")


@pytest.mark.parametrize("first, second", [("", ""), (PSQL, PSQL), ("", PSQL), (PSQL, "")],
                         ids=["in-process", "psql", "in-process then psql", "psql then in-process"])
def test_nothing_one_migration_sets_reaches_the_next(cli, db_url, mdir, other_role, first, second):
    mdir.add(1, "dirty_session", first + f"""SET search_path = other;
SELECT pg_catalog.set_config('search_path', '', false);
SET statement_timeout = '1h';
CREATE TEMP TABLE scratch (id int);
SELECT pg_advisory_lock(4242);
SET ROLE {other_role};
""")
    mdir.add(2, "looks", second + """CREATE TABLE seen AS
SELECT current_setting('search_path') AS search_path, current_user::text AS who,
       current_setting('statement_timeout') AS timeout,
       to_regclass('pg_temp.scratch') IS NOT NULL AS has_temp,
       (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()
                                       AND objid = 4242)::int AS locks,
       pg_sleep(0.01) IS NULL AS slept;
""")
    done = cli("--dir", str(mdir), "up", url=db_url)
    assert done.returncode == 0, done.stderr
    # 'seen' was created unqualified: in public, so search_path was the default again
    ((path, who, timeout, has_temp, locks, _),) = query(db_url, "SELECT * FROM public.seen")
    assert path == '"$user", public' and who == "postgres" and timeout == "0" and not has_temp and locks == 0
    rows = query(db_url, "SELECT version, applied_by, dirty FROM schema_migrations ORDER BY 1")
    assert rows == [(1, "postgres", False), (2, "postgres", False)]  # tracked as the runner's role


def test_set_role_in_a_migration_does_not_break_its_own_tracking_row(cli, db_url, mdir, other_role):
    mdir.add(1, "as_other", f"SET ROLE {other_role};\nCREATE TABLE owned_by_other (id int);\n")
    done = cli("--dir", str(mdir), "up", url=db_url)
    assert done.returncode == 0, done.stderr
    assert query(db_url, "SELECT tableowner FROM pg_tables WHERE tablename = 'owned_by_other'") == [(other_role,)]
    assert _dirty(db_url) == {1: False}


# --- 2. a psql-run file cannot escape its transaction ---


@pytest.mark.parametrize("line, what", [
    ("\\c postgres", "\\c would connect elsewhere"),
    ("\\connect postgres", "\\connect would connect elsewhere"),
    ("\\q", "\\q would end psql part-way"),
    ("\\set ON_ERROR_STOP 0", "\\set ON_ERROR_STOP would let psql go on after an error"),
    ("\\set ON_ERROR_STOP off", "\\set ON_ERROR_STOP would let psql go on after an error"),
    ("\\unset ON_ERROR_STOP", "\\unset ON_ERROR_STOP would let psql go on after an error"),
    ("SELECT 1 \\; COMMIT;", "COMMIT would end the transaction"),
])
def test_escapes_seen_in_the_file_are_refused_before_anything_runs(cli, db_url, mdir, line, what):
    mdir.add(1, "fine", "CREATE TABLE fine (id int);")
    mdir.add(2, "escape", f"CREATE TABLE before_escape (id int);\n{line}\nCREATE TABLE after_escape (id int);\n")
    done = cli("--dir", str(mdir), "up", url=db_url)
    assert done.returncode == 2, done.stderr
    assert f"0002_escape.up.sql:2: {what}" in done.stderr
    assert tracked(db_url) == {} and tables(db_url) == set()


def test_on_error_stop_on_is_allowed(cli, db_url, mdir):
    mdir.add(1, "stop_on", "\\set ON_ERROR_STOP on\nCREATE TABLE ok (id int);\n")
    assert cli("--dir", str(mdir), "up", url=db_url).returncode == 0
    assert _dirty(db_url) == {1: False}


def test_commit_in_an_included_file_leaves_an_honest_dirty_row(cli, db_url, mdir):
    (mdir.path / "include").mkdir()
    (mdir.path / "include" / "part.sql").write_text("CREATE TABLE committed_early (id int);\nCOMMIT;\n")
    mdir.add(1, "ok", "CREATE TABLE ok (id int);")
    mdir.add(2, "includes", "\\ir include/part.sql\nCREATE TABLE after_commit (id int);\n")
    mdir.add(3, "later", "CREATE TABLE later (id int);")
    done = cli("--dir", str(mdir), "up", url=db_url)
    assert done.returncode == 1, done.stderr
    assert "0002_includes.up.sql: the file ended the transaction that holds its tracking row" in done.stderr
    assert "applied     0002" not in done.stdout
    assert _dirty(db_url) == {1: False, 2: True}
    assert "committed_early" in tables(db_url) and "later" not in tables(db_url)
    assert cli("--dir", str(mdir), "up", url=db_url).returncode == 1  # refused while dirty


def test_gexec_that_commits_is_caught(cli, db_url, mdir):
    mdir.add(1, "gexec", "CREATE TABLE g (id int);\nSELECT 'COMMIT' \\gexec\nCREATE TABLE g2 (id int);\n")
    done = cli("--dir", str(mdir), "up", url=db_url)
    assert done.returncode == 1
    assert "ended the transaction" in done.stderr
    assert _dirty(db_url) == {1: True}


def test_error_stop_turned_off_in_an_included_file_still_fails(cli, db_url, mdir):
    (mdir.path / "inc.sql").write_text("\\set ON_ERROR_STOP 0\nSELECT no_such_column;\n")
    mdir.add(1, "quiet_failure", "CREATE TABLE q (id int);\n\\ir inc.sql\nCREATE TABLE q2 (id int);\n")
    done = cli("--dir", str(mdir), "up", url=db_url)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no_such_column" in done.stderr
    assert tracked(db_url) == {} and tables(db_url) == {"schema_migrations"}


def test_rollback_to_savepoint_is_not_a_stray_rollback(cli, db_url, mdir):
    mdir.add(1, "savepoint", "CREATE TABLE sp (id int);\nSAVEPOINT a;\nINSERT INTO sp VALUES (1);\n"
                             "ROLLBACK TO SAVEPOINT a;\nINSERT INTO sp VALUES (2);\nRELEASE SAVEPOINT a;\n")
    done = cli("--dir", str(mdir), "up", url=db_url)
    assert done.returncode == 0, done.stderr
    assert query(db_url, "SELECT id FROM sp") == [(2,)] and _dirty(db_url) == {1: False}


# --- 4. statements a transaction refuses ---


@pytest.mark.parametrize("prefix", ["", PSQL], ids=["in-process", "psql"])
@pytest.mark.parametrize("statement, what", [
    ("CREATE INDEX CONCURRENTLY a_id ON a (id);", "CREATE INDEX CONCURRENTLY"),
    ("DROP INDEX CONCURRENTLY IF EXISTS nope;", "DROP INDEX CONCURRENTLY"),
    ("REINDEX TABLE CONCURRENTLY a;", "REINDEX TABLE CONCURRENTLY"),
    ("VACUUM a;", "VACUUM"),
    ("CREATE DATABASE never_made;", "CREATE DATABASE"),
    ("ALTER SYSTEM SET work_mem = '8MB';", "ALTER SYSTEM"),
    ("ALTER TYPE mood ADD VALUE 'meh';\nUPDATE a SET m = 'meh';", "a use of the enum value 'meh'"),
])
def test_statements_a_transaction_refuses_stop_up_before_anything_runs(cli, db_url, mdir, prefix, statement,
                                                                       what):
    mdir.add(1, "a", "CREATE TYPE mood AS ENUM ('ok');\nCREATE TABLE a (id int, m mood);")
    mdir.add(2, "needs_no_txn", prefix + "SELECT 1;\n" + statement + "\n")
    line = 2 + prefix.count("\n") + (1 if "meh" in statement else 0)
    done = cli("--dir", str(mdir), "up", url=db_url)
    assert done.returncode == 2, done.stderr
    assert f"0002_needs_no_txn.up.sql:{line}: {what}" in done.stderr
    assert "-- migrate:no-transaction" in done.stderr
    assert tracked(db_url) == {} and tables(db_url) == set()  # not even 0001 ran
    verify = cli("--dir", str(mdir), "verify", url=db_url)
    assert verify.returncode == 1 and f"0002_needs_no_txn.up.sql:{line}: {what}" in verify.stdout


def test_the_same_statements_run_in_a_no_transaction_file(cli, db_url, mdir):
    mdir.add(1, "a", "CREATE TABLE a (id int);")
    mdir.add(2, "index", "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY a_id ON a (id);\nVACUUM a;\n")
    done = cli("--dir", str(mdir), "up", url=db_url)
    assert done.returncode == 0, done.stderr
    assert query(db_url, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'a_id'::regclass") == [(True,)]
    assert _dirty(db_url) == {1: False, 2: False}
