"""Two runners behind PgBouncer in transaction pooling mode: every migration applied exactly once.

In transaction pooling a client gets a server connection per transaction, so session-level
advisory locks would mean nothing; the runner's lock is a transaction-level lock in a transaction it
keeps open, which pins its server connection. A PgBouncer is started on a free port in front of the
test server, with a pool smaller than the runners' connections, so server connections are shared.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from helpers import finish, free_port, query, start_runner, tables, tracked, wait_until

PGBOUNCER = shutil.which("pgbouncer") or next(
    (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(p, os.X_OK)), None)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(PGBOUNCER is None, reason="pgbouncer binary not found; install it (Debian/Ubuntu: apt-get "
                       "install pgbouncer) to test running behind PgBouncer"),
]


class Bouncer:
    def __init__(self, port: int, user: str, folder: Path) -> None:
        self.port = port
        self.user = user
        self.folder = folder

    def url(self, dbname: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def transactions(self, dbname: str) -> int:
        """Transactions PgBouncer has pooled for ``dbname`` (its admin console's SHOW STATS)."""
        with psycopg.connect(self.url("pgbouncer"), autocommit=True) as admin:
            cur = admin.cursor()
            cur.execute("SHOW STATS")
            names = [c.name for c in cur.description]
            rows = [dict(zip(names, row)) for row in cur.fetchall()]
        return sum(int(r["total_xact_count"]) for r in rows if r["database"] == dbname)

    def log(self) -> str:
        try:
            return (self.folder / "pgbouncer.log").read_text()
        except OSError:
            return ""


@pytest.fixture(scope="module")
def bouncer(pg_server) -> Iterator[Bouncer]:
    run_as: str | None = None
    if os.geteuid() == 0:  # pgbouncer refuses to run as root
        for name in ("postgres", "nobody"):
            try:
                pwd.getpwnam(name)
                run_as = name
                break
            except KeyError:
                continue
        if run_as is None:
            pytest.skip("running as root and no unprivileged user (postgres, nobody) to run pgbouncer as")
    folder = Path(tempfile.mkdtemp(prefix="pgm-pgbouncer-"))
    folder.chmod(0o755)
    port = free_port()
    server_login = f" user={pg_server.user}" + (f" password={pg_server.password}" if pg_server.password else "")
    (folder / "userlist.txt").write_text(f'"{pg_server.user}" ""\n')
    (folder / "pgbouncer.ini").write_text(f"""\
[databases]
* = host={pg_server.host} port={pg_server.port}{server_login}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/userlist.txt
pool_mode = transaction
default_pool_size = 5
max_client_conn = 200
ignore_startup_parameters = extra_float_digits
admin_users = {pg_server.user}
logfile = {folder}/pgbouncer.log
pidfile = {folder}/pgbouncer.pid
""")
    if run_as:
        entry = pwd.getpwnam(run_as)
        for path in folder.iterdir():
            os.chown(path, entry.pw_uid, entry.pw_gid)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    proc = subprocess.Popen([PGBOUNCER, str(folder / "pgbouncer.ini")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=folder, user=run_as,
                            group=pwd.getpwnam(run_as).pw_gid if run_as else None,
                            extra_groups=[] if run_as else None)
    b = Bouncer(port, pg_server.user, folder)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                psycopg.connect(b.url("postgres"), connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"pgbouncer did not start (exit {proc.poll()}): {b.log()[-2000:]}")
                time.sleep(0.1)
        yield b
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(folder, ignore_errors=True)


def write_migrations(mdir, count: int, first: str) -> None:
    mdir.add(1, "log", "CREATE TABLE applied_log (version int);\nINSERT INTO applied_log VALUES (1);\n" + first)
    for v in range(2, count + 1):
        body = f"CREATE TABLE t_{v} (id int);\nINSERT INTO applied_log VALUES ({v});\n"
        if v % 5 == 0:
            body = "-- migrate:no-transaction\n" + body
        elif v % 7 == 0:
            body = f"\\set v {v}\n" + body.replace(f"VALUES ({v})", "VALUES (:v)")
        mdir.add(v, f"m{v}", body)


def assert_each_applied_once(url: str, count: int, results: list[subprocess.CompletedProcess]) -> None:
    for r in results:
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr
    reported = [ln for r in results for ln in r.stdout.splitlines() if re.match(r"applied\s+\d{4}_", ln)]
    assert len(reported) == count, reported
    assert {v: dirty for v, (_, _, dirty) in tracked(url).items()} == dict.fromkeys(range(1, count + 1), False)
    assert query(url, "SELECT version, count(*) FROM applied_log GROUP BY version ORDER BY version") == [
        (v, 1) for v in range(1, count + 1)]
    assert {f"t_{v}" for v in range(2, count + 1)} <= tables(url)


def test_second_runner_waits_behind_pgbouncer(bouncer, db_url, mdir):
    """Deterministic: the second runner starts while the first is inside a migration."""
    query(db_url, "CREATE TABLE pause (seconds float); INSERT INTO pause VALUES (60)")
    count = 20
    write_migrations(mdir, count, "DO $$ BEGIN WHILE (SELECT seconds FROM pause) > 0 AND clock_timestamp() < "
                     "statement_timestamp() + interval '60 seconds' LOOP PERFORM pg_sleep(0.05); END LOOP; END $$;\n")
    url = bouncer.url(db_url.rsplit("/", 1)[1])
    first = start_runner("--dir", str(mdir), "up", "--lock-wait", "60", url=url)
    procs = [first]
    try:
        wait_until(lambda: query(db_url, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                         "AND wait_event = 'PgSleep'")[0][0] == 1, 30, "runner 1 to sleep", procs)
        second = start_runner("--dir", str(mdir), "up", "--lock-wait", "60", url=url)
        procs.append(second)
        # both lock transactions are open (one holding, one polling), each pinning a server connection
        wait_until(lambda: query(db_url, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                         "AND state = 'idle in transaction'")[0][0] >= 2, 30,
                   "runner 2 to poll for the lock", procs)
        time.sleep(0.5)
        assert tracked(db_url) == {}  # runner 2 did not get past the lock while runner 1 is in migration 1
    finally:
        query(db_url, "UPDATE pause SET seconds = 0")
    results = [finish(p) for p in procs]
    assert "waiting for the migration lock" in results[1].stderr
    assert "nothing to apply" in results[1].stdout
    assert_each_applied_once(db_url, count, results)


def test_two_runners_at_once_behind_pgbouncer(bouncer, db_url, mdir):
    count = 40
    write_migrations(mdir, count, "SELECT pg_sleep(0.3);\n")
    url = bouncer.url(db_url.rsplit("/", 1)[1])
    procs = [start_runner("--dir", str(mdir), "up", "--lock-wait", "60", url=url) for _ in range(2)]
    results = [finish(p) for p in procs]
    assert_each_applied_once(db_url, count, results)
    # and it really went through PgBouncer's transaction pool
    assert bouncer.transactions(db_url.rsplit("/", 1)[1]) >= count
