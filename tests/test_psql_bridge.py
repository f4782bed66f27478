"""The psql bridge, non-transactional migrations, dirty state and exact SQL previews."""

import signal
import subprocess
import time

import pytest
from helpers import query, run_cli, start_runner, tables, tracked

COPY_FILE = """\\set ON_ERROR_STOP on
\\set batch 'first batch'
CREATE TABLE items (id int PRIMARY KEY, label text, batch text);
COPY items (id, label) FROM stdin;
1\tone
2\ttwo; with a semicolon
3\t'quoted'
\\.
UPDATE items SET batch = :'batch';
"""


def test_set_and_copy_file_lands_its_rows(cli, db_url, mdir):
    mdir.add(1, "items", COPY_FILE, "DROP TABLE items;")
    result = cli("--dir", str(mdir), "up", url=db_url)
    assert result.returncode == 0, result.stderr
    assert query(db_url, "SELECT id, label, batch FROM items ORDER BY id") == [
        (1, "one", "first batch"), (2, "two; with a semicolon", "first batch"), (3, "'quoted'", "first batch")]
    assert tracked(db_url)[1][2] is False
    assert cli("--dir", str(mdir), "down", url=db_url).returncode == 0
    assert "items" not in tables(db_url) and tracked(db_url) == {}


def test_psql_file_failing_halfway_leaves_nothing(cli, db_url, mdir):
    mdir.add(1, "ok", "CREATE TABLE ok ();")
    mdir.add(2, "half", COPY_FILE + "\nINSERT INTO items VALUES (1, 'duplicate');\n")
    result = cli("--dir", str(mdir), "up", url=db_url)
    assert result.returncode == 1
    first = result.stderr.splitlines()[0]
    assert "0002_half.up.sql:11:" in first and "SQLSTATE 23505" in first and "duplicate key" in first
    assert any(line.strip().startswith("detail: Key (id)=(1)") for line in result.stderr.splitlines())
    assert "items" not in tables(db_url)
    assert set(tracked(db_url)) == {1}


def test_variables_are_passed_and_unset_ones_refused(cli, db_url, mdir):
    mdir.add(1, "greet", "CREATE TABLE greet (who text);\nINSERT INTO greet VALUES (:'who');")
    refused = cli("--dir", str(mdir), "up", url=db_url)
    assert refused.returncode == 2
    assert "0001_greet.up.sql:2: psql variable :'who' is not set; pass it with --set who=VALUE" in refused.stderr
    assert tracked(db_url) == {}
    result = cli("--dir", str(mdir), "up", "--set", "who=O'Brien \\ co", url=db_url)
    assert result.returncode == 0, result.stderr
    assert query(db_url, "SELECT who FROM greet") == [("O'Brien \\ co",)]
    # The checksum is of the raw file, whatever the variables were.
    from pgmigrate.sqltext import checksum

    assert tracked(db_url)[1][1] == checksum((mdir.path / "0001_greet.up.sql").read_text())


def test_two_concurrent_indexes_in_a_no_transaction_file(cli, db_url, mdir):
    mdir.add(1, "t", "CREATE TABLE t (a int, b int);\nINSERT INTO t SELECT g, g FROM generate_series(1, 1000) g;")
    mdir.add(2, "idx", "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY t_a ON t (a);\n"
                       "CREATE INDEX CONCURRENTLY t_b ON t (b);\n",
             "-- migrate:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS t_a;\n"
             "DROP INDEX CONCURRENTLY IF EXISTS t_b;\n")
    result = cli("--dir", str(mdir), "up", url=db_url, timeout=60)
    assert result.returncode == 0, result.stderr
    assert query(db_url, "SELECT indexname FROM pg_indexes WHERE tablename = 't' ORDER BY 1") == [("t_a",), ("t_b",)]
    assert query(db_url, "SELECT bool_and(indisvalid) FROM pg_index WHERE indrelid = 't'::regclass") == [(True,)]
    assert tracked(db_url)[2][2] is False
    assert cli("--dir", str(mdir), "down", url=db_url, timeout=60).returncode == 0
    assert query(db_url, "SELECT count(*) FROM pg_indexes WHERE tablename = 't'") == [(0,)]


def test_failing_no_transaction_file_is_dirty_until_forced(cli, db_url, mdir):
    mdir.add(1, "t", "CREATE TABLE t (a int);")
    broken = mdir.add(2, "idx", "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY t_a ON t (a);\n"
                                "CREATE INDEX CONCURRENTLY t_b ON t (nope);\n")
    result = cli("--dir", str(mdir), "up", url=db_url)
    assert result.returncode == 1
    assert "0002_idx.up.sql:3:" in result.stderr and "statement: CREATE INDEX CONCURRENTLY t_b" in result.stderr
    assert tracked(db_url)[2][2] is True  # dirty, and t_a exists
    assert query(db_url, "SELECT count(*) FROM pg_indexes WHERE indexname = 't_a'") == [(1,)]
    mdir.add(3, "later", "CREATE TABLE later ();")
    refused = cli("--dir", str(mdir), "up", url=db_url)
    assert refused.returncode == 1
    assert "scripts/migrate.py force 2" in refused.stderr and "later" not in tables(db_url)
    broken.write_text("-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS t_a ON t (a);\n"
                      "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_b ON t (a);\n")
    forced = cli("--dir", str(mdir), "force", "2", url=db_url)
    assert forced.returncode == 0, forced.stderr
    assert tracked(db_url)[2][2] is False
    assert cli("--dir", str(mdir), "up", url=db_url).returncode == 0
    assert "later" in tables(db_url)


def test_dirty_version_can_be_rolled_back_with_down(cli, db_url, mdir):
    mdir.add(1, "idx", "-- migrate:no-transaction\nCREATE TABLE t (a int);\nSELECT 1/0;\n",
             "DROP TABLE IF EXISTS t;")
    assert cli("--dir", str(mdir), "up", url=db_url).returncode == 1
    assert tracked(db_url)[1][2] is True
    result = cli("--dir", str(mdir), "down", url=db_url)
    assert result.returncode == 0, result.stderr
    assert tracked(db_url) == {} and "t" not in tables(db_url)


def test_killed_runner_during_a_psql_migration_leaves_nothing(db_url, mdir):
    mdir.add(1, "slow", "\\set pause 30\nCREATE TABLE slow ();\nSELECT pg_sleep(:pause);\n")
    proc = start_runner("--dir", str(mdir), "up", url=db_url)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # wait until psql sleeps inside the migration
        if query(db_url, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%%' "
                         "AND datname = current_database()")[0][0]:
            break
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("the migration never started")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and query(
            db_url, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND application_name = 'pgmigrate'")[0][0]:
        time.sleep(0.1)
    assert "slow" not in tables(db_url)
    assert tracked(db_url) == {}
    mdir.add(1, "slow", "\\set pause 0\nCREATE TABLE slow ();\nSELECT pg_sleep(:pause);\n")
    rerun = run_cli("--dir", str(mdir), "up", url=db_url, timeout=60)
    assert rerun.returncode == 0, rerun.stderr
    assert "slow" in tables(db_url) and set(tracked(db_url)) == {1}


def _state(url):
    """Objects and tracking rows, for comparing two databases."""
    objects = query(url, "SELECT table_name, column_name, data_type FROM information_schema.columns "
                         "WHERE table_schema = 'public' ORDER BY 1, 2")
    indexes = query(url, "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1")
    rows = query(url, "SELECT version, description, checksum, dirty FROM schema_migrations ORDER BY 1")
    data = query(url, "SELECT id, label, batch FROM items ORDER BY id")
    return objects, indexes, rows, data


def test_up_sql_piped_to_psql_gives_the_same_state_as_up(cli, pg_server, mdir):
    mdir.add(1, "items", COPY_FILE, "DROP TABLE items;")
    mdir.add(2, "idx", "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY items_label ON items (label);\n",
             "DROP INDEX items_label;")
    mdir.add(3, "who", "ALTER TABLE items ADD COLUMN who text DEFAULT :'who';\nSELECT 1", "ALTER TABLE items DROP who;")
    names = [pg_server.create_db(), pg_server.create_db()]
    try:
        runner_url, psql_url = (pg_server.url(n) for n in names)
        assert cli("--dir", str(mdir), "up", "--set", "who=x", url=runner_url).returncode == 0
        plan = cli("--dir", str(mdir), "up", "--sql", "--set", "who=x", url=psql_url)
        assert plan.returncode == 0, plan.stderr
        assert tracked(psql_url) == {}  # the preview touched nothing
        applied = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", psql_url],
                                 input=plan.stdout, capture_output=True, text=True, timeout=60)
        assert applied.returncode == 0, applied.stderr
        assert _state(runner_url) == _state(psql_url)
        # And the rollback preview, likewise.
        down_plan = cli("--dir", str(mdir), "down", "--all", "--sql", url=psql_url)
        subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", psql_url], input=down_plan.stdout,
                       capture_output=True, text=True, timeout=60, check=True)
        assert tracked(psql_url) == {} and tables(psql_url) == {"schema_migrations"}
    finally:
        for n in names:
            pg_server.drop_db(n)


def test_psql_child_gets_no_password_on_its_command_line(pg_server, mdir, tmp_path):
    from pgmigrate.config import Target
    from pgmigrate.psql import PsqlSession

    session = PsqlSession(Target(pg_server.url("postgres", password="Secret-123"), "test"), {})
    argv, env = session.command()
    assert all("Secret-123" not in arg for arg in argv)
    assert env["PGPASSWORD"] == "Secret-123"
    assert env["PGDATABASE"] == "postgres" and env["PGHOST"] == pg_server.host


def test_bom_and_crlf_psql_file(cli, db_url, mdir):
    path = mdir.path / "0001_bom.up.sql"
    path.write_bytes("\ufeff\\set v 5\r\nCREATE TABLE bom (v int DEFAULT :v);\r\nINSERT INTO bom DEFAULT VALUES;\r\n"
                     .encode())
    result = cli("--dir", str(mdir), "up", url=db_url)
    assert result.returncode == 0, result.stderr
    assert query(db_url, "SELECT v FROM bom") == [(5,)]


def test_psql_error_line_counts_a_leading_block_comment_but_not_a_line_comment(cli, db_url, mdir):
    mdir.add(1, "lines", "\\set a 1\n-- a line comment\n/* a block\n   comment */\nSELECT 1,\n  2 +\n  nope;\n")
    result = cli("--dir", str(mdir), "up", url=db_url)
    assert result.returncode == 1
    assert "0001_lines.up.sql:7: column \"nope\" does not exist" in result.stderr
    assert tracked(db_url) == {}


# --- psql-run files queued one behind another ---


def _psql_migration(n: int, body: str | None = None) -> str:
    return f"\\set n {n}\nCREATE TABLE q{n} (id int DEFAULT :n);\n" if body is None else body


def test_queued_psql_files_stop_at_the_first_failure(cli, db_url, mdir):
    """Files 1-6 go to one psql, several at a time; 3 fails, so 1 and 2 are applied and printed,
    and 4-6, already sent behind it, never run."""
    for n in range(1, 7):
        body = "\\set n 3\nCREATE TABLE q3 (id int DEFAULT :n);\nSELECT 1/0;\n" if n == 3 else None
        mdir.add(n, f"q{n}", _psql_migration(n, body), f"DROP TABLE q{n};\n")
    result = cli("--dir", str(mdir), "up", url=db_url)
    assert result.returncode == 1
    assert "0003_q3.up.sql:3:" in result.stderr and "division by zero" in result.stderr
    printed = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("applied")]
    assert printed == ["0001_q1", "0002_q2"]
    assert set(tracked(db_url)) == {1, 2}
    assert tables(db_url) == {"q1", "q2", "schema_migrations"}
    mdir.add(3, "q3", _psql_migration(3))
    again = cli("--dir", str(mdir), "up", url=db_url)
    assert again.returncode == 0, again.stderr
    assert set(tracked(db_url)) == {1, 2, 3, 4, 5, 6}
    down = cli("--dir", str(mdir), "down", "--all", url=db_url)
    assert down.returncode == 0, down.stderr
    assert [line.split()[2] for line in down.stdout.splitlines() if line.startswith("rolled back")] == [
        f"000{n}_q{n}" for n in range(6, 0, -1)]
    assert tables(db_url) == {"schema_migrations"} and tracked(db_url) == {}


def test_queued_psql_files_keep_order_with_in_process_files_between(cli, db_url, mdir):
    """psql-run and in-process files alternate: each commits after the one before it, in order."""
    mdir.add(1, "log", "CREATE TABLE log (n int, at timestamptz DEFAULT clock_timestamp());\n")
    for n in range(2, 9):
        if n % 3:
            mdir.add(n, f"m{n}", f"\\set n {n}\nINSERT INTO log (n) VALUES (:n);\n")
        else:
            mdir.add(n, f"m{n}", f"INSERT INTO log (n) VALUES ({n});\n")
    result = cli("--dir", str(mdir), "up", url=db_url)
    assert result.returncode == 0, result.stderr
    assert query(db_url, "SELECT n FROM log ORDER BY at") == [(n,) for n in range(2, 9)]
    applied = query(db_url, "SELECT version FROM schema_migrations ORDER BY applied_at, version")
    assert applied == [(n,) for n in range(1, 9)]


@pytest.mark.slow
def test_queued_psql_files_retry_a_lock_timeout_and_those_behind_it(cli, db_url, mdir):
    """File 2 of 4 (all psql-run) times out on a lock held elsewhere; 3 and 4 were queued behind it
    and never ran; after the holder lets go, the retry applies 2, 3 and 4, each once."""
    from test_concurrency import TableLock

    mdir.add(1, "t", "CREATE TABLE t (id int);\nCREATE TABLE log (n int);\n")
    assert cli("--dir", str(mdir), "up", url=db_url).returncode == 0
    mdir.add(2, "alter", "\\set col c\nALTER TABLE t ADD COLUMN :col int;\nINSERT INTO log VALUES (2);\n")
    mdir.add(3, "three", "\\set n 3\nINSERT INTO log VALUES (:n);\n")
    mdir.add(4, "four", "\\set n 4\nINSERT INTO log VALUES (:n);\n")
    lock = TableLock(db_url, release_on_retry=True)
    try:
        done = cli("--dir", str(mdir), "up", "--lock-timeout", "1", url=db_url, timeout=60)
    finally:
        lock.close()
    assert done.returncode == 0, done.stderr
    assert lock.waits_seen == 2
    notes = [ln for ln in done.stderr.splitlines() if "lock timeout" in ln]
    assert len(notes) == 1 and "0002_alter.up.sql" in notes[0] and "retry 1 of 3" in notes[0], done.stderr
    assert f"pid {lock.pid}" in notes[0], done.stderr
    assert query(db_url, "SELECT n FROM log ORDER BY n") == [(2,), (3,), (4,)]
    assert set(tracked(db_url)) == {1, 2, 3, 4}


@pytest.mark.slow
def test_an_error_after_a_retried_lock_timeout_is_reported_as_itself(cli, db_url, mdir):
    """psql is restarted for the retry; a later failure must be that psql's error, not the old one."""
    from test_concurrency import TableLock

    mdir.add(1, "t", "CREATE TABLE t (id int);\n")
    assert cli("--dir", str(mdir), "up", url=db_url).returncode == 0
    mdir.add(2, "alter", "\\set col c\nALTER TABLE t ADD COLUMN :col int;\n")
    mdir.add(3, "typo", "\\set n 3\nSELEC :n;\n")
    lock = TableLock(db_url, release_on_retry=True)
    try:
        done = cli("--dir", str(mdir), "up", "--lock-timeout", "1", url=db_url, timeout=60)
    finally:
        lock.close()
    assert done.returncode == 1
    error = done.stderr[done.stderr.index("error:"):].splitlines()[0]
    assert "0003_typo.up.sql:2:" in error and "syntax error" in error and "42601" in error, done.stderr
    assert len([ln for ln in done.stderr.splitlines() if "lock timeout" in ln and "retry" in ln]) == 1
    assert set(tracked(db_url)) == {1, 2}
