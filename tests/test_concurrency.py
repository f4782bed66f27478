"""Runners at once, the migration lock, and the per-migration lock and statement timeouts."""

from __future__ import annotations

import re
import threading
import time

import psycopg
import pytest
from helpers import PAUSE, dirty_flags, finish, query, start_runner, tables, tracked, wait_until

from pgmigrate.lock import LOCK_NAMESPACE

LOCK_KEY_SQL = "hashtext(current_database() || '/public.schema_migrations')"

def runner_sessions(url: str) -> list[tuple]:
    """(pid, application_name, state, wait_event_type, wait_event) of the runners' sessions."""
    return query(url, "SELECT pid, application_name, state, wait_event_type, wait_event FROM pg_stat_activity "
                      "WHERE datname = current_database() AND application_name LIKE 'pgmigrate%%' "
                      "AND pid <> pg_backend_pid()")


def hold_migration_lock(url: str, application_name: str) -> psycopg.Connection:
    """Another session holding the lock the runner takes, in an open transaction."""
    conn = psycopg.connect(url, application_name=application_name)
    got = conn.execute(f"SELECT pg_try_advisory_xact_lock(%s, {LOCK_KEY_SQL})", (LOCK_NAMESPACE,)).fetchone()[0]
    assert got
    return conn


# --- many runners at once ---


def write_many(mdir, count: int) -> None:
    """``count`` migrations; each creates a table and logs itself once. Some run through psql,
    some outside a transaction."""
    mdir.add(1, "log", "CREATE TABLE applied_log (version int, backend int);\n"
                       "INSERT INTO applied_log VALUES (1, pg_backend_pid());\n")
    for v in range(2, count + 1):
        body = f"CREATE TABLE t_{v} (id int);\nINSERT INTO applied_log VALUES ({v}, pg_backend_pid());\n"
        if v % 10 == 0:
            body = "-- migrate:no-transaction\n" + body
        elif v % 7 == 0:
            body = f"\\set v {v}\n" + body.replace(f"VALUES ({v},", "VALUES (:v,")
        mdir.add(v, f"m{v}", body)


@pytest.mark.slow
@pytest.mark.parametrize("runners", [6, 8])
def test_runners_at_once_apply_each_migration_once(runners, db_url, mdir):
    count = 50
    write_many(mdir, count)
    procs = [start_runner("--dir", str(mdir), "up", "--lock-wait", "60", url=db_url) for _ in range(runners)]
    results = [finish(p) for p in procs]
    for r in results:
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr
    applied_lines = [ln for r in results for ln in r.stdout.splitlines() if re.match(r"applied\s+\d{4}_", ln)]
    assert len(applied_lines) == count, "\n".join(applied_lines)  # reported applied once, by one runner or another
    assert dirty_flags(db_url) == dict.fromkeys(range(1, count + 1), False)
    log = query(db_url, "SELECT version, count(*) FROM applied_log GROUP BY version ORDER BY version")
    assert log == [(v, 1) for v in range(1, count + 1)]
    assert {f"t_{v}" for v in range(2, count + 1)} <= tables(db_url)


# --- the migration lock ---


@pytest.mark.slow
def test_lock_held_elsewhere_gives_up_on_time(db_url, mdir):
    mdir.add(1, "one", "CREATE TABLE one (id int);\n")
    holder = hold_migration_lock(db_url, "lock-holder-test")
    try:
        holder_pid = holder.info.backend_pid
        started = time.monotonic()
        done = finish(start_runner("--dir", str(mdir), "up", "--lock-wait", "2", url=db_url), timeout=60)
        elapsed = time.monotonic() - started
    finally:
        holder.rollback()
        holder.close()
    assert done.returncode == 4, done.stderr
    assert 2 <= elapsed <= 10, elapsed
    waiting = [ln for ln in done.stderr.splitlines() if "waiting for the migration lock" in ln]
    assert len(waiting) == 1, done.stderr  # told once, not on every poll
    for part in (f"pid {holder_pid}", "application lock-holder-test", "client 127.0.0.1", "since 2"):
        assert part in waiting[0], (part, waiting[0])
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr
    assert "gave up waiting 2 s" in errors[0] and f"pid {holder_pid}" in errors[0] and "--lock-wait" in errors[0]
    assert tracked(db_url) == {}
    assert tables(db_url) == set()


@pytest.mark.slow
def test_waiting_runner_polls_then_proceeds(db_url, mdir):
    mdir.add(1, "one", "CREATE TABLE one (id int);\n")
    holder = hold_migration_lock(db_url, "lock-holder-test")
    try:
        proc = start_runner("--dir", str(mdir), "up", "--lock-wait", "30", url=db_url)
        wait_until(lambda: runner_sessions(db_url), 20, "the runner to connect", proc)
        seen = []
        for _ in range(15):  # the runner polls: none of its sessions ever waits inside the server for the lock
            seen += runner_sessions(db_url)
            time.sleep(0.05)
        assert not [s for s in seen if s[3] == "Lock"], seen
        assert {s[1] for s in seen} == {"pgmigrate"}
        assert "one" not in tables(db_url)
    finally:
        holder.rollback()
        holder.close()
    done = finish(proc)
    assert done.returncode == 0, done.stderr
    assert sum("waiting for the migration lock" in ln for ln in done.stderr.splitlines()) == 1
    assert dirty_flags(db_url) == {1: False}
    assert "one" in tables(db_url)


@pytest.mark.slow
def test_second_runner_names_the_first_and_killed_runner_frees_the_lock(db_url, mdir):
    query(db_url, "CREATE TABLE pause (seconds float); INSERT INTO pause VALUES (60)")
    mdir.add(1, "slow", "CREATE TABLE slow (id int);\n" + PAUSE)
    mdir.add(2, "two", "CREATE TABLE two (id int);\n")
    first = start_runner("--dir", str(mdir), "up", url=db_url)
    wait_until(lambda: any(s[4] == "PgSleep" for s in runner_sessions(db_url)), 30, "migration 1 to sleep", first)
    sessions = runner_sessions(db_url)
    assert {s[1] for s in sessions} == {"pgmigrate"}
    lock_pid = query(db_url, "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = "
                             "(SELECT oid FROM pg_database WHERE datname = current_database())")[0][0]

    second = finish(start_runner("--dir", str(mdir), "up", "--lock-wait", "1", url=db_url), timeout=60)
    assert second.returncode == 4, second.stderr
    assert f"pid {lock_pid} (application pgmigrate, client 127.0.0.1, since " in second.stderr

    third = start_runner("--dir", str(mdir), "up", "--lock-wait", "30", url=db_url)
    first.kill()
    first.communicate(timeout=10)
    query(db_url, "UPDATE pause SET seconds = 0")
    done = finish(third)
    assert done.returncode == 0, done.stderr
    assert dirty_flags(db_url) == {1: False, 2: False}
    assert {"slow", "two"} <= tables(db_url)


# --- lock_timeout and statement_timeout for each migration ---

ALTER_BODIES = {
    "in-process": "ALTER TABLE t ADD COLUMN c int;\n",
    "psql": "\\set col c\nALTER TABLE t ADD COLUMN :col int;\n",
}


class TableLock:
    """``LOCK TABLE t IN ACCESS EXCLUSIVE MODE`` in another transaction. With ``release_on_retry``,
    a thread lets go as soon as a runner waits for the table a second time (its first attempt timed
    out and it is retrying), so the retry succeeds without any guess at timings."""

    def __init__(self, url: str, *, release_on_retry: bool) -> None:
        self.url = url
        self.conn = psycopg.connect(url, application_name="table-holder")
        self.conn.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        self.pid = self.conn.info.backend_pid
        self.waits_seen = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True) if release_on_retry else None
        if self.thread:
            self.thread.start()

    def _watch(self) -> None:
        waiting_before = False
        with psycopg.connect(self.url, autocommit=True) as watch:
            deadline = time.monotonic() + 30
            while not self._stop.is_set() and time.monotonic() < deadline:
                waiting = watch.execute(
                    "SELECT count(*) > 0 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE NOT l.granted AND l.relation = 't'::regclass AND a.application_name = 'pgmigrate' "
                    "AND a.datname = current_database()"
                ).fetchone()[0]
                if waiting and not waiting_before:
                    self.waits_seen += 1
                    if self.waits_seen == 2:
                        break
                waiting_before = waiting
                time.sleep(0.01)
        self.conn.rollback()

    def close(self) -> None:
        self._stop.set()
        if self.thread:
            self.thread.join()
        self.conn.close()


@pytest.mark.slow
@pytest.mark.parametrize("path", ["in-process", "psql"])
def test_lock_timeout_retries_until_the_lock_goes(path, cli, db_url, mdir):
    mdir.add(1, "table", "CREATE TABLE t (id int);\n")
    assert cli("--dir", str(mdir), "up", url=db_url).returncode == 0
    mdir.add(2, "alter", ALTER_BODIES[path])
    lock = TableLock(db_url, release_on_retry=True)
    try:
        done = cli("--dir", str(mdir), "up", "--lock-timeout", "1", url=db_url, timeout=60)
    finally:
        lock.close()
    assert lock.waits_seen == 2  # timed out once, then waited again: the retry got the table
    assert done.returncode == 0, done.stderr
    notes = [ln for ln in done.stderr.splitlines() if "lock timeout" in ln]
    assert notes and "retry 1 of 3" in notes[0], done.stderr
    if path == "in-process":  # the psql path: see test_psql_bridge_lock_timeout_names_the_blocker
        assert f"pid {lock.pid}" in notes[0], done.stderr
    assert dirty_flags(db_url) == {1: False, 2: False}
    assert query(db_url, "SELECT count(*) FROM information_schema.columns WHERE table_name = 't' "
                         "AND column_name = 'c'") == [(1,)]


@pytest.mark.slow
@pytest.mark.parametrize("path", ["in-process", "psql"])
def test_lock_timeout_gives_up_naming_the_blocker(path, cli, db_url, mdir):
    mdir.add(1, "table", "CREATE TABLE t (id int);\n")
    assert cli("--dir", str(mdir), "up", url=db_url).returncode == 0
    mdir.add(2, "alter", ALTER_BODIES[path])
    lock = TableLock(db_url, release_on_retry=False)
    try:
        done = cli("--dir", str(mdir), "up", "--lock-timeout", "0.5", "--lock-retries", "1", url=db_url, timeout=60)
    finally:
        lock.close()
    assert done.returncode == 1, done.stderr
    assert "retry 1 of 1" in done.stderr
    failure = done.stderr[done.stderr.index("error:"):]
    assert "lock timeout" in failure and "55P03" in failure
    if path == "in-process":  # the psql path: see test_psql_bridge_lock_timeout_names_the_blocker
        assert f"pid {lock.pid}" in failure, failure
    assert "Traceback" not in done.stderr
    assert dirty_flags(db_url) == {1: False}
    assert query(db_url, "SELECT count(*) FROM information_schema.columns WHERE table_name = 't'") == [(1,)]


def test_psql_bridge_lock_timeout_names_the_blocker(cli, db_url, mdir):
    mdir.add(1, "table", "CREATE TABLE t (id int);\n")
    assert cli("--dir", str(mdir), "up", url=db_url).returncode == 0
    mdir.add(2, "alter", ALTER_BODIES["psql"])
    lock = TableLock(db_url, release_on_retry=False)
    try:
        done = cli("--dir", str(mdir), "up", "--lock-timeout", "0.5", "--lock-retries", "1", url=db_url, timeout=60)
    finally:
        lock.close()
    assert done.returncode == 1, done.stderr
    assert dirty_flags(db_url) == {1: False}
    notes = [ln for ln in done.stderr.splitlines() if "retry 1 of 1" in ln]
    assert notes and f"pid {lock.pid}" in notes[0], done.stderr
    assert f"pid {lock.pid}" in done.stderr[done.stderr.index("error:"):], done.stderr


SEEN = ("INSERT INTO seen SELECT {v}, current_setting('lock_timeout'), current_setting('statement_timeout');\n")


@pytest.mark.parametrize("options, lock_timeout, statement_timeout", [
    ([], "5s", None),
    (["--lock-timeout", "2.5"], "2500ms", None),
    (["--lock-timeout", "0"], None, None),
    (["--statement-timeout", "3"], "5s", "3s"),
])
def test_timeouts_are_set_local_for_each_transactional_migration(options, lock_timeout, statement_timeout, cli,
                                                                 db_url, mdir):
    default_lock, default_statement = query(db_url, "SELECT current_setting('lock_timeout'), "
                                                    "current_setting('statement_timeout')")[0]
    mdir.add(1, "seen", "CREATE TABLE seen (version int, lock_timeout text, statement_timeout text);\n"
             + SEEN.format(v=1))
    mdir.add(2, "bridge", "\\set v 2\n" + SEEN.format(v=":v"))
    mdir.add(3, "nontx", "-- migrate:no-transaction\n" + SEEN.format(v=3))
    mdir.add(4, "again", SEEN.format(v=4))
    done = cli("--dir", str(mdir), "up", *options, url=db_url)
    assert done.returncode == 0, done.stderr
    expected = (lock_timeout or default_lock, statement_timeout or default_statement)
    rows = {v: (lt, st) for v, lt, st in query(db_url, "SELECT * FROM seen")}
    assert rows[1] == expected and rows[2] == expected and rows[4] == expected
    assert rows[3] == (default_lock, default_statement)  # SET LOCAL: nothing leaks out of the transactions
    assert dirty_flags(db_url) == dict.fromkeys(range(1, 5), False)


@pytest.mark.slow
@pytest.mark.parametrize("path", ["in-process", "psql"])
def test_statement_timeout_cancels_a_long_migration(path, cli, db_url, mdir):
    prefix = "\\set s 30\n" if path == "psql" else ""
    sleep = "SELECT pg_sleep(:s);\n" if path == "psql" else "SELECT pg_sleep(30);\n"
    mdir.add(1, "long", prefix + "CREATE TABLE long_one (id int);\n" + sleep)
    started = time.monotonic()
    done = cli("--dir", str(mdir), "up", "--statement-timeout", "1", url=db_url, timeout=60)
    assert time.monotonic() - started < 25
    assert done.returncode == 1, done.stderr
    assert "statement timeout" in done.stderr and "57014" in done.stderr
    assert "0001_long.up.sql" in done.stderr
    assert tracked(db_url) == {}
    assert "long_one" not in tables(db_url)
