"""Fault injection: the runner killed with SIGKILL at chosen moments, the server restarted under it.

Afterwards nothing is half-applied (or a no-transaction migration is marked dirty, precisely), the
lock is gone with the dead runner's connection, and the next run recovers.

Slow migrations sleep for as long as the ``pause`` table says, so that the test can make the
same, unchanged file quick for the run that recovers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import PAUSE, dirty_flags, free_port, query, start_runner, tables, wait_until

from pgmigrate.embedded import EmbeddedServer

pytestmark = pytest.mark.slow


def runner_sessions(url: str) -> list[tuple]:
    """(pid, state, wait_event) of this database's sessions opened by a runner."""
    return query(url, "SELECT pid, state, wait_event FROM pg_stat_activity WHERE datname = current_database() "
                      "AND application_name LIKE 'pgmigrate%%' AND pid <> pg_backend_pid()")


def sleeping(url: str) -> bool:
    return any(event == "PgSleep" for _, _, event in runner_sessions(url))


def advisory_locks(url: str) -> int:
    return query(url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
                      "(SELECT oid FROM pg_database WHERE datname = current_database())")[0][0]


def kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    for stream in (proc.stdout, proc.stderr):
        if stream:
            stream.close()


def assert_runner_gone(url: str) -> None:
    """The dead runner's sessions end, and its migration lock with them."""
    wait_until(lambda: not runner_sessions(url), 10, "the killed runner's sessions to end")
    assert advisory_locks(url) == 0


def with_pause(url: str, seconds: float) -> None:
    query(url, "CREATE TABLE pause (seconds float)")
    query(url, "INSERT INTO pause VALUES (%s)", (seconds,))


def no_pause(url: str) -> None:
    query(url, "UPDATE pause SET seconds = 0")


# --- kill -9 during a transactional migration ---


def test_kill_during_transactional_migration(cli, db_url, mdir):
    with_pause(db_url, 60)
    mdir.add(1, "one", "CREATE TABLE one (id int);\n")
    mdir.add(2, "slow", "CREATE TABLE slow (id int);\nINSERT INTO slow VALUES (1);\n"
             "CREATE INDEX slow_id ON slow (id);\n" + PAUSE)
    mdir.add(3, "three", "CREATE TABLE three (id int);\n")
    proc = start_runner("--dir", str(mdir), "up", url=db_url)
    wait_until(lambda: sleeping(db_url), 30, "migration 2 to reach its pg_sleep", proc)
    assert advisory_locks(db_url) == 1
    kill(proc)

    assert_runner_gone(db_url)
    assert dirty_flags(db_url) == {1: False}
    assert tables(db_url) == {"pause", "one", "schema_migrations"}  # nothing of 2, nothing of 3
    assert not query(db_url, "SELECT to_regclass('slow_id')")[0][0]

    no_pause(db_url)
    done = cli("--dir", str(mdir), "up", url=db_url)
    assert done.returncode == 0, done.stderr
    assert dirty_flags(db_url) == {1: False, 2: False, 3: False}
    assert query(db_url, "SELECT id FROM slow") == [(1,)]
    assert {"one", "slow", "three"} <= tables(db_url)


@pytest.mark.parametrize("bridge", [False, True], ids=["in-process", "psql"])
def test_ctrl_c_during_a_migration_cancels_it_and_rolls_it_back(db_url, mdir, bridge):
    """Ctrl-C (SIGINT) while the server runs a migration: the query is cancelled at once, not left to
    finish; exit 130 with one line; nothing of that migration remains; the ones before it stay."""
    with_pause(db_url, 60)
    mdir.add(1, "one", "CREATE TABLE one (id int);\n")
    mdir.add(2, "slow", ("\\set n 1\n" if bridge else "") + "CREATE TABLE slow (id int);\n" + PAUSE)
    mdir.add(3, "after", ("\\set n 1\n" if bridge else "") + "CREATE TABLE after (id int);\n")  # queued behind 2
    proc = start_runner("--dir", str(mdir), "up", url=db_url)
    wait_until(lambda: sleeping(db_url), 30, "migration 2 to reach its pg_sleep", proc)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)  # the runner alone: it must stop its psql itself
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - started < 10, "the migration was not cancelled"
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "error: interrupted; the migration in progress was rolled back"
    assert "Traceback" not in err
    wait_until(lambda: not runner_sessions(db_url), 10, "the runner's sessions to end")
    assert dirty_flags(db_url) == {1: False}
    assert tables(db_url) == {"pause", "one", "schema_migrations"}
    assert advisory_locks(db_url) == 0


def test_kill_during_psql_bridge_migration(cli, db_url, mdir):
    """The psql child dies with the runner, and the transaction it had open is rolled back."""
    with_pause(db_url, 60)
    mdir.add(1, "one", "CREATE TABLE one (id int);\n")
    mdir.add(2, "bridged", "\\set v 7\nCREATE TABLE bridged (id int);\nINSERT INTO bridged VALUES (:v);\n" + PAUSE)
    proc = start_runner("--dir", str(mdir), "up", url=db_url)
    wait_until(lambda: sleeping(db_url), 30, "migration 2 to reach its pg_sleep", proc)
    psql = [p for p in _children(proc.pid) if _comm(p) == "psql"]
    assert psql, "no psql child"
    kill(proc)

    wait_until(lambda: all(_gone(p) for p in psql), 10, "psql to die with its parent")
    assert_runner_gone(db_url)
    assert dirty_flags(db_url) == {1: False}
    assert "bridged" not in tables(db_url)

    no_pause(db_url)
    done = cli("--dir", str(mdir), "up", url=db_url)
    assert done.returncode == 0, done.stderr
    assert dirty_flags(db_url) == {1: False, 2: False}
    assert query(db_url, "SELECT id FROM bridged") == [(7,)]


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                pass
    return found


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _gone(pid: int) -> bool:
    """Dead, or a zombie waiting for a parent (init in a container) to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


# --- kill -9 during a no-transaction migration ---

NONTX_UP = (
    "-- migrate:no-transaction\n"
    "CREATE TABLE IF NOT EXISTS part_a (id int);\n"
    "INSERT INTO part_a SELECT 1 WHERE NOT EXISTS (SELECT FROM part_a);\n"
    + PAUSE +
    "CREATE TABLE IF NOT EXISTS part_b (id int);\n"
)
NONTX_DOWN = "DROP TABLE IF EXISTS part_b;\nDROP TABLE IF EXISTS part_a;\n"


@pytest.mark.parametrize("resolve", ["force", "down"])
def test_kill_during_no_transaction_migration(resolve, cli, db_url, mdir):
    with_pause(db_url, 60)
    mdir.add(1, "one", "CREATE TABLE one (id int);\n", "DROP TABLE one;\n")
    mdir.add(2, "nontx", NONTX_UP, NONTX_DOWN)
    mdir.add(3, "three", "CREATE TABLE three (id int);\n", "DROP TABLE three;\n")
    proc = start_runner("--dir", str(mdir), "up", url=db_url)
    wait_until(lambda: sleeping(db_url), 30, "migration 2 to reach its pg_sleep", proc)
    kill(proc)

    assert_runner_gone(db_url)
    # Precisely dirty: the row says so, the statements before the kill are done, the rest not.
    assert dirty_flags(db_url) == {1: False, 2: True}
    assert query(db_url, "SELECT id FROM part_a") == [(1,)]
    assert "part_b" not in tables(db_url)
    assert "three" not in tables(db_url)

    status = cli("--dir", str(mdir), "status", "--check", url=db_url)
    assert status.returncode == 1
    assert any(line.split()[:3] == ["2", "nontx", "dirty"] for line in status.stdout.splitlines()), status.stdout
    refused = cli("--dir", str(mdir), "up", url=db_url)
    assert refused.returncode == 1
    assert "dirty" in refused.stderr and "force 2" in refused.stderr
    assert dirty_flags(db_url) == {1: False, 2: True}  # the refusal changed nothing

    no_pause(db_url)
    if resolve == "force":
        done = cli("--dir", str(mdir), "force", "2", url=db_url)
        assert done.returncode == 0, done.stderr
        assert dirty_flags(db_url) == {1: False, 2: False}
        assert query(db_url, "SELECT id FROM part_a") == [(1,)]
        assert "part_b" in tables(db_url)
    else:
        done = cli("--dir", str(mdir), "down", url=db_url)
        assert done.returncode == 0, done.stderr
        assert dirty_flags(db_url) == {1: False}
        assert not {"part_a", "part_b"} & tables(db_url)
    done = cli("--dir", str(mdir), "up", url=db_url)
    assert done.returncode == 0, done.stderr
    assert dirty_flags(db_url) == {1: False, 2: False, 3: False}
    assert query(db_url, "SELECT id FROM part_a") == [(1,)]
    assert {"part_a", "part_b", "three"} <= tables(db_url)


# --- kill -9 between two migrations ---


def _full_pipe() -> tuple[int, int]:
    """A pipe whose buffer is full: the first write to it blocks."""
    r, w = os.pipe()
    os.set_blocking(w, False)
    for size in (65536, 4096, 1):
        try:
            while True:
                os.write(w, b"." * size)
        except BlockingIOError:
            pass
    os.set_blocking(w, True)
    return r, w


def _blocked_writing(pid: int) -> bool:
    try:
        return "pipe_write" in Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return True  # no wchan here: rely on the database state alone


def test_kill_between_migrations(cli, db_url, mdir):
    """The runner prints each result as it happens; with its stdout a full pipe, that print blocks
    right after migration 1 committed and before migration 2 began: kill it there."""
    mdir.add(1, "one", "CREATE TABLE one (id int);\n")
    mdir.add(2, "two", "CREATE TABLE two (id int);\n")
    mdir.add(3, "three", "-- migrate:no-transaction\nCREATE TABLE three (id int);\n")
    r, w = _full_pipe()
    try:
        proc = start_runner("--dir", str(mdir), "up", url=db_url, stdout=w)
        wait_until(lambda: dirty_flags(db_url) == {1: False} and _blocked_writing(proc.pid), 30,
                   "migration 1 to commit and the runner to block on its output", proc)
        time.sleep(0.3)
        assert dirty_flags(db_url) == {1: False}, "the runner did not stop between migrations"
        # between migrations: the lock is held, the runner's other connection is idle, not in a transaction
        assert advisory_locks(db_url) == 1
        states = sorted(state for _, state, _ in runner_sessions(db_url))
        assert states == ["idle", "idle in transaction"], states
        kill(proc)
    finally:
        os.close(r)
        os.close(w)

    assert_runner_gone(db_url)
    assert dirty_flags(db_url) == {1: False}
    assert tables(db_url) == {"one", "schema_migrations"}
    done = cli("--dir", str(mdir), "up", url=db_url)
    assert done.returncode == 0, done.stderr
    assert "0002_two" in done.stdout and "0001_one" not in done.stdout
    assert dirty_flags(db_url) == {1: False, 2: False, 3: False}
    assert {"one", "two", "three"} <= tables(db_url)


# --- the server restarted under a running 'up' ---


@pytest.fixture
def throwaway(tmp_path) -> EmbeddedServer:
    server = EmbeddedServer(tmp_path / "cluster", port=free_port(), dbname="x")
    try:
        server.start()
        yield server
    finally:
        server.destroy()


def test_server_restart_under_running_up(cli, throwaway, mdir):
    url = throwaway.url
    with_pause(url, 60)
    mdir.add(1, "one", "CREATE TABLE one (id int);\n")
    mdir.add(2, "slow", "CREATE TABLE slow (id int);\nINSERT INTO slow VALUES (1);\n" + PAUSE)
    mdir.add(3, "three", "CREATE TABLE three (id int);\n")
    proc = start_runner("--dir", str(mdir), "up", url=url)
    wait_until(lambda: sleeping(url), 30, "migration 2 to reach its pg_sleep", proc)

    throwaway.stop()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode not in (0, None), out + err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert "0002_slow.up.sql" in errors[0] or "connection" in errors[0].lower(), errors[0]

    throwaway.start()
    assert dirty_flags(url) == {1: False}
    assert tables(url) == {"pause", "one", "schema_migrations"}
    no_pause(url)
    done = cli("--dir", str(mdir), "up", url=url)
    assert done.returncode == 0, done.stderr
    assert dirty_flags(url) == {1: False, 2: False, 3: False}
    assert query(url, "SELECT id FROM slow") == [(1,)]
