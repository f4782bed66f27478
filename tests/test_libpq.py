"""The runner's libpq client (ctypes): results, bound values, the server's error fields, a lost
connection, Ctrl-C during a query, and the libpq copy inside psycopg's wheel."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import query, run_cli, tables, tracked

from pgmigrate import libpq
from pgmigrate.config import Target, connection_failure
from pgmigrate.db import connect


def _connect(url: str) -> libpq.Connection:
    return libpq.connect(url, "pgmigrate-test", lambda message: connection_failure(Target(url, "test"), message))


def test_rows_come_back_as_text_with_nulls(db_url):
    with _connect(db_url) as conn:
        assert conn.execute("SELECT 1, NULL::text, 'é'; SELECT 2, 'last result wins'") == [("2", "last result wins")]
        assert conn.execute("CREATE TABLE t (id int)") == []
        assert conn.idle


def test_bound_values_are_never_spliced_into_the_sql(db_url):
    evil = "x'); DROP TABLE t; --"
    with _connect(db_url) as conn:
        conn.execute("CREATE TABLE t (id int, name text, flag boolean)")
        conn.execute("INSERT INTO t VALUES (%s, %s, %s)", (1, evil, True))
        conn.execute("INSERT INTO t VALUES (%s, %s, %s)", (2, None, False))
    assert query(db_url, "SELECT id, name, flag FROM t ORDER BY id") == [(1, evil, True), (2, None, False)]


def test_server_error_fields_and_position(db_url):
    with _connect(db_url) as conn:
        with pytest.raises(libpq.QueryError) as err:
            conn.execute("SELECT 1;\nSELECT no_such_column FROM pg_class")
        assert conn.idle
    exc = err.value
    assert exc.sqlstate == "42703"
    assert exc.message_primary == 'column "no_such_column" does not exist'
    assert exc.statement_position == len("SELECT 1;\nSELECT ") + 1  # 1-based, in characters
    assert str(exc) == 'column "no_such_column" does not exist (SQLSTATE 42703)'


def test_an_error_inside_begin_leaves_the_transaction_failed_until_rollback(db_url):
    with _connect(db_url) as conn:
        with pytest.raises(libpq.QueryError):
            conn.execute("BEGIN; CREATE TABLE t (id int); SELECT 1/0")
        assert not conn.idle
        conn.execute("ROLLBACK")
        assert conn.idle
    assert tables(db_url) == set()


def test_copy_from_stdin_is_refused_not_hung(db_url):
    with _connect(db_url) as conn:
        conn.execute("CREATE TABLE t (id int)")
        with pytest.raises(libpq.QueryError) as err:
            conn.execute("COPY t FROM STDIN")
        assert "needs psql" in str(err.value)
        assert conn.execute("SELECT count(*) FROM t") == [("0",)]


def test_a_terminated_backend_is_a_query_error_not_a_crash(db_url):
    with _connect(db_url) as conn:
        pid = conn.backend_pid
        query(db_url, "SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(libpq.QueryError) as err:
            conn.execute("SELECT 1")
        assert conn.broken
    assert err.value.sqlstate in ("08006", "57P01")


def test_notices_are_not_printed(db_url, capfd):
    with _connect(db_url) as conn:
        conn.execute("DROP TABLE IF EXISTS nothing_here; DO $$ BEGIN RAISE NOTICE 'hello'; END $$")
    out, err = capfd.readouterr()
    assert "hello" not in out + err and "nothing_here" not in out + err


def test_ctrl_c_cancels_the_running_query_on_the_server(db_url):
    conn = connect(Target(db_url, "test"))
    pid = conn.backend_pid
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            conn.execute("BEGIN; CREATE TABLE t (id int); SELECT pg_sleep(30)")
        assert time.monotonic() - started < 10
        assert not conn.idle  # the transaction failed with the cancel ...
        conn.execute("ROLLBACK")
        assert conn.execute("SELECT 1") == [("1",)]  # ... and the connection stays usable
    finally:
        timer.cancel()
        conn.close()
    active = query(db_url, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND state = 'active'", (pid,))
    assert active == [(0,)]
    assert tables(db_url) == set()


def _bundled_libpq() -> Path | None:
    spec = importlib.util.find_spec("psycopg_binary")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))).parent / "psycopg_binary.libs"
    found = sorted(folder.glob("libpq*.so*")) if folder.is_dir() else []
    return found[0] if found else None


def test_runs_on_the_libpq_inside_psycopgs_wheel(db_url, mdir):
    """Where the system has no libpq, the copy that psycopg's binary wheel ships is used."""
    bundled = _bundled_libpq()
    if bundled is None:
        pytest.skip("psycopg's binary wheel with its own libpq is not installed")
    mdir.add(1, "create_t", "CREATE TABLE t (id int);\n", "DROP TABLE t;\n")
    probe = ("import os, pgmigrate.libpq as l; l._load(); "
             "print([p for p in open('/proc/self/maps').read().split() if 'libpq' in p][0])")
    mapped = subprocess.run([sys.executable, "-c", probe], env={**os.environ, "PGMIGRATE_LIBPQ": str(bundled)},
                            capture_output=True, text=True)
    assert mapped.returncode == 0, mapped.stderr
    assert Path(mapped.stdout.strip()).resolve() == bundled.resolve()
    up = run_cli("--dir", str(mdir), "up", url=db_url, env={"PGMIGRATE_LIBPQ": str(bundled)})
    assert up.returncode == 0, up.stderr
    assert "t" in tables(db_url) and set(tracked(db_url)) == {1}


def test_a_libpq_that_does_not_load_is_one_clear_line(db_url, mdir):
    mdir.add(1, "create_t", "CREATE TABLE t (id int);\n")
    r = run_cli("--dir", str(mdir), "up", url=db_url, env={"PGMIGRATE_LIBPQ": "/nonexistent/libpq.so"})
    assert r.returncode == 3
    assert r.stderr.strip() == ("error: PGMIGRATE_LIBPQ=/nonexistent/libpq.so could not be loaded as libpq; "
                                "fix or unset it")
    assert tables(db_url) == set()


def test_verbose_shows_the_servers_notices_of_in_process_migrations(db_url, mdir):
    mdir.add(1, "noisy", "DO $$ BEGIN RAISE NOTICE 'backfilled % rows', 42; END $$;\n"
                         "DROP TABLE IF EXISTS nothing_here;\n", "SELECT 1;\n")
    quiet = run_cli("--dir", str(mdir), "up", url=db_url)
    assert quiet.returncode == 0 and "backfilled" not in quiet.stderr + quiet.stdout
    assert run_cli("--dir", str(mdir), "down", url=db_url).returncode == 0
    loud = run_cli("--verbose", "--dir", str(mdir), "up", url=db_url)
    assert loud.returncode == 0, loud.stderr
    lines = loud.stderr.splitlines()
    assert "NOTICE:  backfilled 42 rows" in lines
    assert 'NOTICE:  table "nothing_here" does not exist, skipping' in lines
    assert set(tracked(db_url)) == {1}


def test_a_lone_semicolon_is_an_empty_statement_not_an_error(db_url, mdir):
    with _connect(db_url) as conn:
        assert conn.execute(";") == []
        assert conn.execute("SELECT 1;;") == [("1",)]
    mdir.add(1, "stray", "-- migrate:no-transaction\nCREATE TABLE t1 (a int);\n;\n")
    r = run_cli("--dir", str(mdir), "up", url=db_url)
    assert r.returncode == 0, r.stderr
    assert "t1" in tables(db_url) and tracked(db_url)[1][2] is False


def test_a_nul_character_is_refused_before_anything_runs(db_url, mdir):
    with _connect(db_url) as conn, pytest.raises(libpq.QueryError, match="NUL"):
        conn.execute("SELECT 1;\x00SELECT 2")
    mdir.add(1, "ok", "CREATE TABLE ok (a int);\n")
    mdir.add(2, "nul", "CREATE TABLE a1 (a int);\n\x00\nCREATE TABLE b1 (a int);\n")
    r = run_cli("--dir", str(mdir), "up", url=db_url)
    assert r.returncode == 2
    assert "0002_nul.up.sql:2: the file contains a NUL character" in r.stderr
    assert tables(db_url) == set()


def test_copy_to_stdout_in_process_fails_instead_of_losing_its_output(db_url):
    with _connect(db_url) as conn:
        conn.execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2)")
        with pytest.raises(libpq.QueryError, match="only psql"):
            conn.execute("BEGIN; COPY t TO STDOUT")
        conn.execute("ROLLBACK")
        assert conn.execute("SELECT count(*) FROM t") == [("2",)]


def test_a_library_that_is_not_libpq_is_passed_over(db_url, mdir):
    import ctypes.util

    libc = ctypes.util.find_library("c")
    if libc is None:
        pytest.skip("no libc to point at")
    mdir.add(1, "t", "CREATE TABLE t (id int);\n")
    r = run_cli("--dir", str(mdir), "up", url=db_url, env={"PGMIGRATE_LIBPQ": libc})
    assert r.returncode == 3
    assert r.stderr.strip() == f"error: PGMIGRATE_LIBPQ={libc} could not be loaded as libpq; fix or unset it"
