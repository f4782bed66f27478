"""Many databases in one run (--targets / --targets-query), against a real server.

Each test makes its own databases; what a run did is checked in the databases themselves (tracking
rows, tables), and parallelism is proved from the server's side: migrations that can only finish
when several of them are running at the same moment.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from helpers import ROOT, cli_env, finish, free_port, query, start_runner, tables, tracked, wait_until

USERS = "CREATE TABLE users (id int PRIMARY KEY, name text);\n"
POSTS = "CREATE TABLE posts (id int PRIMARY KEY, user_id int REFERENCES users (id));\n"
INDEX = "CREATE INDEX posts_user_idx ON posts (user_id);\n"
LABELS = ["0001_users", "0002_posts", "0003_posts_index"]


@pytest.fixture
def databases(pg_server):
    """make(n): n fresh empty databases (names); all dropped afterwards."""
    made: list[str] = []

    def make(n: int) -> list[str]:
        names = [pg_server.create_db() for _ in range(n)]
        made.extend(names)
        return names

    yield make
    for name in made:
        pg_server.drop_db(name)


@pytest.fixture
def three(mdir):
    mdir.add(1, "users", USERS, "DROP TABLE users;\n")
    mdir.add(2, "posts", POSTS, "DROP TABLE posts;\n")
    mdir.add(3, "posts_index", INDEX, "DROP INDEX posts_user_idx;\n")
    return mdir


def write_targets(tmp_path: Path, lines: list[str], name: str = "targets.txt") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def fleet(*args: str, url: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "migrate.py"), *args], cwd=ROOT,
                          env=cli_env(url), capture_output=True, text=True, timeout=timeout)


def report(done: subprocess.CompletedProcess) -> dict:
    data = json.loads(done.stdout)
    data["by_name"] = {t["name"]: t for t in data["targets"]}
    return data


def lines_of(done: subprocess.CompletedProcess) -> dict[str, str]:
    """name -> its line in the text report."""
    out = {}
    for line in done.stdout.splitlines():
        name, _, rest = line.partition("  ")
        if rest:
            out[name.strip()] = rest.strip()
    return out


def break_posts(url: str) -> None:
    """Make migration 2 fail on this database: its table is already there."""
    query(url, "CREATE TABLE posts (id int)")


def test_six_targets_migrated(pg_server, databases, three, tmp_path):
    names = databases(6)
    urls = [pg_server.url(n) for n in names]
    p = pg_server
    path = write_targets(tmp_path, [
        "# tenants of the test",
        f"acme {urls[0]}",
        f"globex\t{urls[1]}",
        "",
        urls[2],  # no name: the database's
        f"  {urls[3]}  ",
        f"initech host={p.host} port={p.port} user={p.user} dbname={names[4]}",
        f"host={p.host} port={p.port} user={p.user} dbname={names[5]}",
    ])
    done = fleet("--dir", str(three), "--targets", str(path), "up")
    assert done.returncode == 0, done.stderr
    expected = ["acme", "globex", names[2], names[3], "initech", names[5]]
    lines = lines_of(done)
    assert set(expected) <= set(lines)
    for name in expected:
        assert lines[name].startswith("ok       version 3  applied 3: 0001_users .. 0003_posts_index"), lines[name]
    assert done.stdout.splitlines()[-1].startswith("6 targets: 6 ok, 0 failed, 0 skipped in ")
    assert done.stderr == ""
    for url in urls:
        assert set(tracked(url)) == {1, 2, 3}
        assert {"users", "posts"} <= tables(url)

    again = fleet("--dir", str(three), "up", "--targets", str(path), "--format", "json")  # the option after the command
    assert again.returncode == 0, again.stderr
    data = json.loads(again.stdout)
    assert data["summary"] == {"ok": 6, "failed": 0, "skipped": 0}
    assert [t["name"] for t in data["targets"]] == expected  # the file's order
    assert all(t == {"name": t["name"], "state": "ok", "version": 3, "applied": [], "error": None}
               for t in data["targets"])


def test_one_broken_target_fails_while_the_others_finish_and_a_rerun_completes_it(pg_server, databases, three,
                                                                                  tmp_path):
    names = databases(4)
    urls = [pg_server.url(n) for n in names]
    break_posts(urls[1])
    path = write_targets(tmp_path, [f"t{i} {u}" for i, u in enumerate(urls)])

    done = fleet("--dir", str(three), "--targets", str(path), "up", "--parallel", "2", "--format", "json")
    assert done.returncode == 1, done.stderr
    data = report(done)
    assert data["summary"] == {"ok": 3, "failed": 1, "skipped": 0}
    broken = data["by_name"]["t1"]
    assert broken["state"] == "failed" and broken["version"] == 1 and broken["applied"] == ["0001_users"]
    assert "0002_posts.up.sql" in broken["error"] and "already exists" in broken["error"]
    for name in ("t0", "t2", "t3"):
        assert data["by_name"][name] == {"name": name, "state": "ok", "version": 3, "applied": LABELS, "error": None}
    assert "error: 1 of 4 targets failed (t1)" in done.stderr
    assert "run the same command again" in done.stderr
    assert set(tracked(urls[1])) == {1}
    finished_at = {u: query(u, "SELECT version, applied_at FROM schema_migrations ORDER BY 1") for u in urls}

    query(urls[1], "DROP TABLE posts")  # the fix
    rerun = fleet("--dir", str(three), "--targets", str(path), "up", "--format", "json")
    assert rerun.returncode == 0, rerun.stderr
    data = report(rerun)
    assert data["by_name"]["t1"]["applied"] == ["0002_posts", "0003_posts_index"]
    assert all(data["by_name"][n]["applied"] == [] for n in ("t0", "t2", "t3"))
    for u in urls:
        assert set(tracked(u)) == {1, 2, 3}
    for u in (urls[0], urls[2], urls[3]):  # nothing touched where nothing was pending
        assert query(u, "SELECT version, applied_at FROM schema_migrations ORDER BY 1") == finished_at[u]


def test_a_failing_canary_stops_the_rollout(pg_server, databases, three, tmp_path):
    names = databases(5)
    urls = [pg_server.url(n) for n in names]
    break_posts(urls[1])  # the second canary
    path = write_targets(tmp_path, [f"c{i} {u}" for i, u in enumerate(urls)])

    done = fleet("--dir", str(three), "--targets", str(path), "up", "--canary", "2", "--format", "json")
    assert done.returncode == 1
    data = report(done)
    assert [t["state"] for t in data["targets"]] == ["ok", "failed", "skipped", "skipped", "skipped"]
    assert data["summary"] == {"ok": 1, "failed": 1, "skipped": 3}
    for t in data["targets"][2:]:
        assert t == {"name": t["name"], "state": "skipped", "version": None, "applied": [],
                     "error": "not started: canary c1 failed"}
    assert set(tracked(urls[0])) == {1, 2, 3}
    assert set(tracked(urls[1])) == {1}
    for u in urls[2:]:  # never touched: not even a tracking table
        assert tables(u) == set()

    query(urls[1], "DROP TABLE posts")
    done = fleet("--dir", str(three), "--targets", str(path), "up", "--canary", "2")
    assert done.returncode == 0, done.stderr
    assert all(set(tracked(u)) == {1, 2, 3} for u in urls)


def test_max_failures_stops_starting_targets(pg_server, databases, three, tmp_path):
    names = databases(6)
    urls = [pg_server.url(n) for n in names]
    for i in (0, 2, 3):
        break_posts(urls[i])
    path = write_targets(tmp_path, [f"m{i} {u}" for i, u in enumerate(urls)])

    done = fleet("--dir", str(three), "--targets", str(path), "up", "--parallel", "1", "--max-failures", "2")
    assert done.returncode == 1
    lines = lines_of(done)
    assert [lines[f"m{i}"].split()[0] for i in range(6)] == ["failed", "ok", "failed", "skipped", "skipped",
                                                             "skipped"]
    assert lines["m3"] == "skipped  not started: 2 target(s) failed (--max-failures 2)"
    assert "6 targets: 1 ok, 2 failed, 3 skipped" in done.stdout
    assert "error: 2 of 6 targets failed (m0, m2), 3 skipped" in done.stderr
    assert [set(tracked(u)) for u in urls] == [{1}, {1, 2, 3}, {1}, set(), set(), set()]


def test_fleet_status_version_verify_and_down(pg_server, databases, three, tmp_path, cli):
    names = databases(3)
    urls = [pg_server.url(n) for n in names]
    assert cli("--dir", str(three), "up", url=urls[0]).returncode == 0
    assert cli("--dir", str(three), "up", "--to", "1", url=urls[1]).returncode == 0
    path = write_targets(tmp_path, [f"s{i} {u}" for i, u in enumerate(urls)])

    status = fleet("--dir", str(three), "--targets", str(path), "status")
    assert status.returncode == 0, status.stderr
    lines = lines_of(status)
    assert lines["s0"].startswith("ok       3 applied, 0 pending; current version 3")
    assert lines["s1"].startswith("ok       1 applied, 2 pending; current version 1")
    assert lines["s2"].startswith("ok       0 applied, 3 pending; current version 0; no tracking table yet")

    check = fleet("--dir", str(three), "--targets", str(path), "status", "--check", "--format", "json")
    assert check.returncode == 1
    data = report(check)
    assert [(t["state"], t["version"]) for t in data["targets"]] == [("ok", 3), ("failed", 1), ("failed", 0)]
    assert data["by_name"]["s1"]["error"] == "not up to date: 2 pending"
    assert "error: 2 of 3 targets failed (s1, s2)" in check.stderr

    version = fleet("--dir", str(three), "--targets", str(path), "version", "--format", "json")
    assert version.returncode == 0
    assert [t["version"] for t in report(version)["targets"]] == [3, 1, 0]

    (three.path / "0001_users.up.sql").write_text(USERS + "-- edited after it was applied\nSELECT 1;\n")
    verify = fleet("--dir", str(three), "--targets", str(path), "verify")
    assert verify.returncode == 1
    lines = lines_of(verify)
    assert lines["s0"].startswith("failed   version 3  1 problem(s)")
    assert "0001_users.up.sql changed since it was applied" in lines["s0"]
    assert lines["s2"].startswith("ok       version 0  no problems")

    (three.path / "0001_users.up.sql").write_text(USERS)
    down = fleet("--dir", str(three), "--targets", str(path), "down", "--all", "--format", "json")
    assert down.returncode == 0, down.stderr
    data = report(down)
    assert data["by_name"]["s0"]["applied"] == ["0003_posts_index", "0002_posts", "0001_users"]
    assert data["by_name"]["s1"]["applied"] == ["0001_users"]
    assert data["by_name"]["s2"]["applied"] == []
    assert all(tracked(u) == {} for u in urls)


def test_targets_query_discovers_databases(pg_server, databases, three, db_url):
    names = databases(3)
    query(db_url, "CREATE TABLE tenants (db text, active bool)")
    query(db_url, "INSERT INTO tenants VALUES (%s, true), (%s, false), (%s, true)", tuple(names))
    query(db_url, "CREATE TABLE shards (url text)")
    extra = databases(1)[0]
    query(db_url, "INSERT INTO shards VALUES (%s)", (pg_server.url(extra),))
    sql = "SELECT db FROM tenants WHERE active UNION ALL SELECT url FROM shards"

    done = fleet("--dir", str(three), "--targets-query", sql, "up", "--format", "json", url=db_url)
    assert done.returncode == 0, done.stderr
    data = report(done)
    assert sorted(data["by_name"]) == sorted([names[0], names[2], extra])
    assert all(t["applied"] == LABELS for t in data["targets"])
    for name in (names[0], names[2], extra):
        assert set(tracked(pg_server.url(name))) == {1, 2, 3}
    assert tables(pg_server.url(names[1])) == set()  # inactive: left alone
    assert set(tables(db_url)) == {"tenants", "shards"}  # the catalog only answers the query

    bad = fleet("--dir", str(three), "--targets-query", "SELECT nope FROM tenants", "up", url=db_url)
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: --targets-query failed: column \"nope\" does not exist")
    empty = fleet("--dir", str(three), "--targets-query", "SELECT db FROM tenants WHERE false", "up", url=db_url)
    assert empty.returncode == 2 and "returned no rows" in empty.stderr


def overlap_migration(marker: str, *, want: int, sample: float, wait: float = 20, table: str = "overlap") -> str:
    """A migration that waits (up to ``wait`` s) until ``want`` sessions run it at once, then samples for
    ``sample`` seconds how many do, and records the most it saw. Only parallel runs can see more
    than one: the count comes from pg_stat_activity, across every database of the server."""
    count = ("PERFORM pg_stat_clear_snapshot();  -- else the transaction sees its first look again\n    "
             f"SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%{marker}%'")
    return f"""CREATE TABLE {table} (seen int);
DO $$
DECLARE n int; most int := 0; deadline timestamptz := clock_timestamp() + interval '{wait} seconds';
BEGIN
  LOOP
    {count} INTO n;
    most := greatest(most, n);
    EXIT WHEN n >= {want} OR clock_timestamp() > deadline;
    PERFORM pg_sleep(0.02);
  END LOOP;
  deadline := clock_timestamp() + interval '{sample} seconds';
  WHILE clock_timestamp() < deadline LOOP
    {count} INTO n;
    most := greatest(most, n);
    PERFORM pg_sleep(0.02);
  END LOOP;
  INSERT INTO {table} VALUES (most);
END $$;
"""


def test_targets_really_run_in_parallel(pg_server, databases, mdir, tmp_path):
    marker = f"fleet-overlap-{uuid.uuid4().hex}"
    mdir.add(1, "overlap", overlap_migration(marker, want=3, sample=0.2))
    urls = [pg_server.url(n) for n in databases(3)]
    path = write_targets(tmp_path, urls)
    done = fleet("--dir", str(mdir), "--targets", str(path), "up", "--parallel", "3", "--per-host", "3")
    assert done.returncode == 0, done.stderr
    assert [query(u, "SELECT seen FROM overlap") for u in urls] == [[(3,)]] * 3


def test_per_host_caps_the_sessions_on_one_server(pg_server, databases, mdir, tmp_path):
    marker = f"fleet-cap-{uuid.uuid4().hex}"
    mdir.add(1, "overlap", overlap_migration(marker, want=2, sample=0.5))
    urls = [pg_server.url(n) for n in databases(4)]
    path = write_targets(tmp_path, urls)
    done = fleet("--dir", str(mdir), "--targets", str(path), "up", "--parallel", "4")  # --per-host: 2 by default
    assert done.returncode == 0, done.stderr
    assert [query(u, "SELECT seen FROM overlap") for u in urls] == [[(2,)]] * 4
    assert "note: at most 2 at once: the targets are on one server and --per-host is 2" in done.stderr

    canary = f"fleet-canary-{uuid.uuid4().hex}"
    mdir.add(2, "again", overlap_migration(canary, want=2, sample=0.2, wait=1.0, table="overlap2"))
    done = fleet("--dir", str(mdir), "--targets", str(path), "up", "--canary", "2", "--per-host", "4",
                 "--parallel", "4")
    assert done.returncode == 0, done.stderr
    seen = [query(u, "SELECT seen FROM overlap2")[0][0] for u in urls]
    assert seen[:2] == [1, 1]  # each canary ran alone
    assert seen[2:] == [2, 2]  # then the others together


@pytest.mark.slow
def test_two_fleet_runs_at_once_apply_each_migration_once(pg_server, databases, mdir, tmp_path):
    mdir.add(1, "log", "CREATE TABLE log (n int);\n")
    mdir.add(2, "slow", "SELECT pg_sleep(0.3);\nINSERT INTO log VALUES (2);\n")
    mdir.add(3, "more", "INSERT INTO log VALUES (3);\n")
    urls = [pg_server.url(n) for n in databases(4)]
    path = write_targets(tmp_path, [f"d{i} {u}" for i, u in enumerate(urls)])
    args = ("--dir", str(mdir), "--targets", str(path), "up", "--parallel", "4", "--per-host", "4", "--format", "json")
    runs = [start_runner(*args, url=None) for _ in range(2)]
    results = [finish(p) for p in runs]
    for done in results:
        assert done.returncode == 0, done.stderr
    for i, url in enumerate(urls):
        assert set(tracked(url)) == {1, 2, 3}
        assert query(url, "SELECT n FROM log ORDER BY n") == [(2,), (3,)]
        applied = [label for done in results for label in report(done)["by_name"][f"d{i}"]["applied"]]
        assert sorted(applied) == ["0001_log", "0002_slow", "0003_more"]  # each once, by one run or the other


def test_no_password_in_text_or_json_output(pg_server, databases, three, tmp_path):
    role = f"fleet_{uuid.uuid4().hex[:8]}"
    password = f"Pw{uuid.uuid4().hex[:14]}"
    names = databases(3)
    with pg_server.admin() as conn:
        conn.execute("SET password_encryption = 'scram-sha-256'")
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        for name in names:
            conn.execute(f'ALTER DATABASE "{name}" OWNER TO {role}')
    try:
        p = pg_server
        url = [p.url(n, user=role, password=password) for n in names]
        break_posts(pg_server.url(names[2]))
        path = write_targets(tmp_path, [
            url[0],
            f"kv host={p.host} port={p.port} user={role} password={password} dbname={names[1]}",
            f"broken {url[2]}",
            f"missing {p.url('pgm_no_such_db_' + uuid.uuid4().hex[:6], user=role, password=password)}",
            f"down postgresql://{role}:{password}@127.0.0.1:{free_port()}/nothing_listens",
        ])
        outputs = []
        for command in (["up"], ["up", "--format", "json"], ["status", "--check"], ["version", "--format", "json"],
                        ["verify"], ["down", "--verbose"], ["up", "--verbose", "--format", "json"]):
            done = fleet("--dir", str(three), "--targets", str(path), *command)
            assert done.returncode == 1, (command, done.stderr)
            outputs.append(done.stdout + done.stderr)
        data = json.loads(fleet("--dir", str(three), "--targets", str(path), "version", "--format", "json").stdout)
        assert [t["name"] for t in data["targets"]] == [names[0], "kv", "broken", "missing", "down"]
        assert "does not exist" in data["targets"][3]["error"]
        assert "cannot connect" in data["targets"][4]["error"]

        bad_line = write_targets(tmp_path, [f"oops {role}:{password}@127.0.0.1/db"], "bad.txt")
        done = fleet("--dir", str(three), "--targets", str(bad_line), "up")
        assert done.returncode == 2
        outputs.append(done.stdout + done.stderr)
        text = "\n".join(outputs)
        assert names[0] in text and "kv" in text
        pieces = {password[i:i + 5] for i in range(len(password) - 4)}
        assert not [piece for piece in pieces if piece in text]
    finally:
        for name in names:  # the role owns them and what is in them
            pg_server.drop_db(name)
        with pg_server.admin() as conn:
            conn.execute(f"DROP ROLE IF EXISTS {role}")


@pytest.mark.slow
def test_ctrl_c_stops_scheduling_cancels_what_runs_and_reports_where_each_stopped(pg_server, databases, mdir,
                                                                                   tmp_path):
    mdir.add(1, "one", "CREATE TABLE one (id int);\n")
    mdir.add(2, "slow", "CREATE TABLE slow (id int);\nSELECT pg_sleep(60);\n")
    names = databases(4)
    urls = [pg_server.url(n) for n in names]
    path = write_targets(tmp_path, [f"k{i} {u}" for i, u in enumerate(urls)])
    proc = start_runner("--dir", str(mdir), "--targets", str(path), "up", "--parallel", "2", "--per-host", "2",
                        url=None)

    def sleeping() -> int:
        return query(urls[0], "SELECT count(*) FROM pg_stat_activity WHERE datname = ANY(%s) "
                              "AND query LIKE '%%pg_sleep(60)%%' AND application_name LIKE 'pgmigrate-fleet-%%'",
                     (names,))[0][0]

    wait_until(lambda: sleeping() == 2, 30, "two targets to reach their pg_sleep", proc)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    done = finish(proc, timeout=30)
    assert time.monotonic() - started < 10, "the running migrations were not cancelled"
    assert done.returncode == 130, done.stderr
    lines = lines_of(done)
    for name in ("k0", "k1"):
        assert lines[name].startswith("failed   version 1  applied 0001_one"), lines[name]
        assert lines[name].endswith("error: interrupted (Ctrl-C): its work in progress was cancelled; "
                                    "it is at version 1")
    for name in ("k2", "k3"):
        assert lines[name] == "skipped  not started: interrupted (Ctrl-C)"
    assert "; interrupted" in done.stdout.splitlines()[-1]
    assert "Traceback" not in done.stderr
    wait_until(lambda: sleeping() == 0, 10, "the cancelled sessions to end")
    assert [set(tracked(u)) for u in urls] == [{1}, {1}, set(), set()]
    assert "slow" not in tables(urls[0]) and "slow" not in tables(urls[1])


def run_on_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run the CLI with stdout and stderr on a pseudo-terminal; its exit code and everything it wrote."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "migrate.py"), *args], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, stdout=follower, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 30)
        if not ready:
            break
        try:
            data = os.read(leader, 65536)
        except OSError:  # the other side closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    return proc.wait(timeout=30), b"".join(chunks).decode()


def test_progress_line_only_on_a_terminal_and_never_with_quiet(pg_server, databases, mdir, tmp_path):
    mdir.add(1, "slowish", "SELECT pg_sleep(0.2);\nCREATE TABLE t (id int);\n")
    urls = [pg_server.url(n) for n in databases(3)]
    path = write_targets(tmp_path, [f"p{i} {u}" for i, u in enumerate(urls)])
    env = cli_env(None, {"TERM": "xterm"})
    args = ["--dir", str(mdir), "--targets", str(path), "up", "--parallel", "1"]

    code, screen = run_on_terminal(args, env)
    assert code == 0, screen
    assert "\r\x1b[K[0/3] 0 ok, 0 failed, 0 skipped, 1 running" in screen
    assert "\r\x1b[K[1/3] 1 ok, 0 failed, 0 skipped, 1 running" in screen
    assert "3 targets: 3 ok, 0 failed, 0 skipped" in screen
    assert "\x1b[3" not in screen  # NO_COLOR: no colour, only the line's own redrawing

    query(urls[0], "DROP TABLE t; DELETE FROM schema_migrations")
    code, screen = run_on_terminal([*args, "--quiet"], env)
    assert code == 0 and screen == ""

    query(urls[0], "DROP TABLE t; DELETE FROM schema_migrations")
    piped = fleet(*args)
    assert piped.returncode == 0
    assert "\r" not in piped.stdout and "\x1b" not in piped.stdout and "\x1b" not in piped.stderr
    assert len(piped.stdout.splitlines()) == 4  # three targets and the summary


def test_bad_targets_and_options_are_one_line_errors(pg_server, databases, three, tmp_path, cli):
    url = pg_server.url(databases(1)[0])
    cases = [
        (["no_such_file.txt"], "targets file no_such_file.txt not found"),
        ([f"bad/name {url}"], ":1: expected '[NAME ]URL'"),
        ([f"a {url}", "", f"a {url}x"], ":3: the name 'a' is already used at"),
        ([f"a {url}", f"b {url}"], ":2: the same database as"),
        (["# nothing but a comment"], "lists no database"),
        ([f"a {url.rsplit('/', 1)[0]}/"], ":1: the connection string names no database"),
        (["a host=x port=oops dbname=d"], ":1: the host or port read from it is not a host name and port number"),
        (["a dbname='unterminated"], ":1 is not a connection string libpq can read"),
    ]
    for lines, message in cases:
        path = "no_such_file.txt" if lines == ["no_such_file.txt"] else str(write_targets(tmp_path, lines))
        done = fleet("--dir", str(three), "--targets", path, "up")
        assert done.returncode == 2, (lines, done.stderr)
        assert done.stderr.startswith("error: ") and message in done.stderr, (lines, done.stderr)
        assert len(done.stderr.splitlines()) == 1 and done.stdout == ""
    assert tables(url) == set()

    good = write_targets(tmp_path, [url])
    for args, message in [
        (["--targets", str(good), "redo"], "--targets and --targets-query work with up, down, status, version, verify"),
        (["--targets", str(good), "up", "--sql"], "'up --sql' prints one database's script"),
        (["--targets", str(good), "--targets-query", "SELECT 1", "up"], "not both"),
        (["--targets", str(good), "--database-url", url, "up"], "--database-url and --targets"),
        (["up", "--parallel", "3"], "--parallel needs --targets FILE or --targets-query SQL"),
        (["version", "--format", "json"], "--format json needs --targets"),
    ]:
        done = cli("--dir", str(three), *args, url=url)
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr, (args, done.stderr)
    assert tables(url) == set()
    assert fleet("--targets", str(good), "up", "--parallel", "0").returncode == 2  # argparse: a count of 1 or more


def test_invalid_migration_files_stop_the_run_at_the_first_target(pg_server, databases, mdir, tmp_path):
    mdir.add(1, "one", "CREATE TABLE one (id int);\n")
    mdir.add(2, "bad", "")  # an empty up file: every target would refuse it
    urls = [pg_server.url(n) for n in databases(3)]
    path = write_targets(tmp_path, urls)
    done = fleet("--dir", str(mdir), "--targets", str(path), "up", "--parallel", "1", "--format", "json")
    assert done.returncode == 2
    states = [t["state"] for t in json.loads(done.stdout)["targets"]]
    assert states == ["failed", "skipped", "skipped"]
    assert all(tables(u) == set() for u in urls)


def test_make_db_migrate_passes_targets(pg_server, databases, three, tmp_path):
    stamp = ROOT / ".venv" / ".installed"
    if not stamp.exists() or stamp.stat().st_mtime < (ROOT / "pyproject.toml").stat().st_mtime:
        pytest.skip("make would build .venv first; run through 'make test'")
    urls = [pg_server.url(n) for n in databases(2)]
    path = write_targets(tmp_path, urls)
    env = cli_env(None, {"MIGRATIONS_DIR": str(three)})
    done = subprocess.run(["make", "-s", "db-migrate", f"TARGETS={path}"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "2 targets: 2 ok" in done.stdout
    assert all(set(tracked(u)) == {1, 2, 3} for u in urls)
    done = subprocess.run(["make", "-s", "db-migrate-status", f"TARGETS={path}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.count("current version 3") == 2, done.stdout
