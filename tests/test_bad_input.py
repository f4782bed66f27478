"""Bad input: each case ends in one clear ``error:`` line and the right exit code, without a
traceback, and leaves the database as it was (no migration recorded, no object created).

Invalid files and folders exit 2, connection problems 3; an edited history (a changed, missing or
out-of-order migration) exits 1 and applies nothing until the way out the message names is taken.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from helpers import ROOT, free_port, query, tables, tracked

from pgmigrate.embedded import EmbeddedServer

GOOD = "CREATE TABLE good (id int);\n"


def assert_one_error(done: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    """Exit ``code``, exactly one ``error:`` line (details may follow, indented), no traceback."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    lines = done.stderr.strip().splitlines()
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    others = [ln for ln in lines if not ln.startswith(("error: ", "  ", "warning:", "note:"))]
    assert not others, done.stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def assert_untouched(url: str) -> None:
    """No migration recorded and nothing created but (at most) the empty tracking table."""
    assert tracked(url) == {}
    assert tables(url) <= {"schema_migrations"}
    assert query(url, "SELECT count(*) FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%%' "
                      "AND nspname NOT IN ('public', 'information_schema')")[0][0] == 0


# --- invalid migration files: exit 2 ---


def _write(mdir, name: str, content: bytes | str) -> Path:
    path = mdir.path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


FILE_CASES = {
    "duplicate version": ([("0002_a.up.sql", "CREATE TABLE a (id int);"), ("0002_b.up.sql", "CREATE TABLE b ();")],
                          ["duplicate version 2", "0002_a.up.sql", "0002_b.up.sql"]),
    "duplicate version, other width": ([("0002_a.up.sql", "CREATE TABLE a ();"), ("02_a.up.sql", "SELECT 1;")],
                                       ["duplicate version 2"]),
    "version beyond bigint": ([("9223372036854775808_big.up.sql", "CREATE TABLE big ();")],
                              ["9223372036854775808", "bigint"]),
    "not UTF-8": ([("0002_latin1.up.sql", b"-- caf\xe9\nCREATE TABLE latin1 (name text DEFAULT 'caf\xe9');\n")],
                  ["0002_latin1.up.sql:1", "not valid UTF-8", "0xe9"]),
    "empty up file": ([("0002_empty.up.sql", "")], ["0002_empty.up.sql", "no SQL statements"]),
    "only comments": ([("0002_nothing.up.sql", "-- TODO\n/* later */\n\n   \n")], ["no SQL statements"]),
    "unknown directive": ([("0002_dir.up.sql", "-- migrate:foo\nCREATE TABLE dir ();\n")],
                          ["0002_dir.up.sql:1", "unknown directive '-- migrate:foo'", "no-transaction"]),
    "down without up": ([("0002_orphan.down.sql", "DROP TABLE orphan;")],
                        ["0002_orphan.down.sql", "down file without its up file"]),
    "invalid name": ([("0002_add users.up.sql", "CREATE TABLE users ();")], ["invalid migration file name"]),
    "transaction control": ([("0002_txn.up.sql", "CREATE TABLE txn ();\nCOMMIT;\n")],
                            ["0002_txn.up.sql:2", "COMMIT", "no-transaction"]),
}


@pytest.fixture(scope="module")
def untouched_db(pg_server) -> Iterator[str]:
    """One database for the cases that must leave it untouched (each checks that it did)."""
    name = pg_server.create_db()
    yield pg_server.url(name)
    pg_server.drop_db(name)


@pytest.mark.parametrize("case", list(FILE_CASES))
def test_invalid_file_refused_before_anything_runs(case, cli, untouched_db, mdir):
    files, needles = FILE_CASES[case]
    _write(mdir, "0001_good.up.sql", GOOD)
    for name, content in files:
        _write(mdir, name, content)
    done = cli("--dir", str(mdir), "up", url=untouched_db)
    assert_one_error(done, 2, *needles)
    assert "good" not in tables(untouched_db)  # the valid migration before it did not run either
    assert_untouched(untouched_db)


def test_verify_lists_every_problem_and_changes_nothing(cli, db_url, mdir):
    files = {
        "0001_good.up.sql": GOOD,
        "0002_a.up.sql": "SELECT 1;", "0002_b.up.sql": "SELECT 2;",
        "9223372036854775808_big.up.sql": "SELECT 1;",
        "0003_latin1.up.sql": b"SELECT 'caf\xe9';",
        "0004_empty.up.sql": "-- nothing yet\n",
        "0005_dir.up.sql": "-- migrate:foo\nSELECT 1;",
        "0006_orphan.down.sql": "SELECT 1;",
        "0007_add users.up.sql": "SELECT 1;",
        "0008_txn.up.sql": "BEGIN;\nSELECT 1;\nCOMMIT;",
    }
    for name, content in files.items():
        _write(mdir, name, content)
    done = cli("--dir", str(mdir), "verify", url=db_url)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    problems = [ln for ln in done.stdout.splitlines() if ln.startswith("problem: ")]
    text = "\n".join(problems)
    for needle in ("duplicate version 2", "bigint", "0003_latin1.up.sql:1: the file is not valid UTF-8",
                   "0004_empty.up.sql: the file has no SQL statements", "0005_dir.up.sql:1: unknown directive",
                   "0006_orphan.down.sql: down file without its up file", "0007_add users.up.sql: invalid",
                   "0008_txn.up.sql:1: BEGIN would end the transaction"):
        assert needle in text, needle
    assert len(problems) == 8, text
    assert tracked(db_url) == {}
    assert tables(db_url) == set()  # verify does not even create the tracking table


def test_missing_migrations_folder(cli, db_url, tmp_path):
    done = cli("--dir", str(tmp_path / "no" / "such"), "up", url=db_url)
    assert_one_error(done, 2, str(tmp_path / "no" / "such"), "migrations folder not found")
    assert tracked(db_url) == {}
    assert tables(db_url) == set()


def _without_file_privileges(secret: Path, env: dict) -> list[str] | None:
    """A command prefix under which ordinary file permissions apply and the CLI can still run:
    nothing when we are not root; as root, ``runuser -u nobody`` if that user can run this Python,
    else ``setpriv`` dropping the capabilities that let root read any file."""
    if os.geteuid() != 0:
        return []
    candidates = []
    if shutil.which("runuser"):
        candidates.append([shutil.which("runuser"), "-u", "nobody", "--"])
    if shutil.which("setpriv"):
        candidates.append([shutil.which("setpriv"), "--bounding-set", "-dac_override,-dac_read_search", "--"])
    for prefix in candidates:
        runs = subprocess.run([*prefix, sys.executable, "-c", "import psycopg"], capture_output=True, env=env, cwd="/")
        denied = subprocess.run([*prefix, "cat", str(secret)], capture_output=True, env=env, cwd="/")
        if runs.returncode == 0 and denied.returncode != 0:
            return prefix
    return None


def test_unreadable_file(db_url):
    folder = Path(tempfile.mkdtemp(prefix="pgm-unreadable-"))
    try:
        folder.chmod(0o755)
        (folder / "0001_good.up.sql").write_text(GOOD)
        (folder / "0001_good.up.sql").chmod(0o644)
        secret = folder / "0002_secret.up.sql"
        secret.write_text("CREATE TABLE secret ();\n")
        secret.chmod(0o000)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "POSTGRES_", "DATABASE_URL"))}
        env.update(NO_COLOR="1", DATABASE_URL=db_url, PYTHONDONTWRITEBYTECODE="1")
        prefix = _without_file_privileges(secret, env)
        if prefix is None:
            pytest.skip("running as root with no way to drop file privileges (runuser/setpriv): an unreadable "
                        "file cannot be made")
        command = [*prefix, sys.executable, str(ROOT / "scripts" / "migrate.py"), "--dir", str(folder), "up"]
        done = subprocess.run(command, cwd="/", env=env, capture_output=True, text=True, timeout=60)
        assert_one_error(done, 2, "0002_secret.up.sql", "permission denied")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert "good" not in tables(db_url)
    assert_untouched(db_url)


# --- connection problems: exit 3 ---


@pytest.mark.parametrize("command", ["up", "status", "init"])
def test_unreachable_server(command, cli, mdir):
    mdir.add(1, "good", GOOD)
    port = free_port()
    done = cli("--dir", str(mdir), command, url=f"postgresql://postgres@127.0.0.1:{port}/anything", timeout=60)
    assert_one_error(done, 3, "cannot connect", f"port {port}")


def test_unknown_role(cli, db_url, mdir, pg_server):
    mdir.add(1, "good", GOOD)
    dbname = db_url.rsplit("/", 1)[1]
    role = f"pgm_nobody_{uuid.uuid4().hex[:8]}"
    done = cli("--dir", str(mdir), "up", url=pg_server.url(dbname, user=role))
    line = assert_one_error(done, 3, role)
    assert "does not exist" in line or "authentication failed" in line
    assert_untouched(db_url)
    assert tables(db_url) == set()


@pytest.fixture
def password_url(tmp_path) -> Iterator[str]:
    """A URL template ({} for the password) of a throwaway cluster that checks passwords on TCP
    (scram-sha-256), with role app whose password is right-password."""
    server = EmbeddedServer(tmp_path / "pw-cluster", port=free_port(), dbname="pw")
    server.start()
    try:
        with psycopg.connect(server.url, autocommit=True) as admin:
            admin.execute("CREATE ROLE app LOGIN PASSWORD 'right-password'")
            admin.execute("ALTER DATABASE pw OWNER TO app")
            (server.cluster_dir / "pg_hba.conf").write_text(
                "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n")
            admin.execute("SELECT pg_reload_conf()")
        yield f"postgresql://app:{{}}@127.0.0.1:{server.port}/pw"
    finally:
        server.destroy()


@pytest.mark.slow
def test_wrong_password(cli, mdir, password_url):
    url = password_url
    mdir.add(1, "good", GOOD)
    done = cli("--dir", str(mdir), "up", url=url.format("wrong-password"))
    assert_one_error(done, 3, "authentication failed")
    assert "wrong-password" not in done.stderr + done.stdout
    right = url.format("right-password")
    assert tracked(right) == {}
    assert cli("--dir", str(mdir), "up", url=right).returncode == 0  # the same command, right password
    assert set(tracked(right)) == {1}


@pytest.mark.parametrize("command", ["up", "status"])
def test_database_does_not_exist(command, cli, mdir, pg_server):
    mdir.add(1, "good", GOOD)
    name = f"pgm_missing_{uuid.uuid4().hex[:8]}"
    done = cli("--dir", str(mdir), command, url=pg_server.url(name))
    assert_one_error(done, 3, f'database "{name}" does not exist', "init")
    with pg_server.admin() as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,)).fetchone()[0] == 0


# --- edited history and ordering: exit 1, nothing applied ---


def recorded_checksums(url: str) -> dict[int, str]:
    return {v: checksum for v, (_, checksum, _) in tracked(url).items()}


def test_formatting_only_edit_is_not_a_change(cli, db_url, mdir):
    path = mdir.add(1, "one", "CREATE TABLE one (id int);\nINSERT INTO one VALUES (1);\n")
    assert cli("--dir", str(mdir), "up", url=db_url).returncode == 0
    before = recorded_checksums(db_url)
    path.write_bytes(b"\xef\xbb\xbfCREATE TABLE one (id int);  \t\r\nINSERT INTO one VALUES (1);\r\n\r\n  \r\n")
    done = cli("--dir", str(mdir), "up", url=db_url)
    assert done.returncode == 0, done.stderr
    assert "nothing to apply" in done.stdout
    assert cli("--dir", str(mdir), "verify", url=db_url).returncode == 0
    status = cli("--dir", str(mdir), "status", "--check", url=db_url)
    assert status.returncode == 0 and "changed" not in status.stdout
    assert recorded_checksums(db_url) == before


def test_changed_file_refuses_up_until_rehashed(cli, db_url, mdir):
    from pgmigrate.sqltext import checksum

    one = mdir.add(1, "one", "CREATE TABLE one (id int);\n")
    mdir.add(2, "two", "CREATE TABLE two (id int);\n")
    assert cli("--dir", str(mdir), "up", url=db_url).returncode == 0
    old = recorded_checksums(db_url)[1]
    one.write_text("CREATE TABLE one (id bigint);\n")
    new = checksum(one.read_text())
    assert new != old
    mdir.add(3, "three", "CREATE TABLE three (id int);\n")

    done = cli("--dir", str(mdir), "up", url=db_url)
    line = assert_one_error(done, 1, "0001_one.up.sql", old[:8], new[:8], "--ignore-changed", "rehash 1")
    assert "changed" in line
    assert set(tracked(db_url)) == {1, 2} and "three" not in tables(db_url)
    status = cli("--dir", str(mdir), "status", url=db_url)
    assert any(ln.split()[:3] == ["1", "one", "changed"] for ln in status.stdout.splitlines()), status.stdout
    verify = cli("--dir", str(mdir), "verify", url=db_url)
    assert verify.returncode == 1 and "0001_one.up.sql changed" in verify.stdout

    done = cli("--dir", str(mdir), "up", "--ignore-changed", url=db_url)
    assert done.returncode == 0, done.stderr
    assert set(tracked(db_url)) == {1, 2, 3} and "three" in tables(db_url)
    assert recorded_checksums(db_url)[1] == old  # ignoring is not recording

    done = cli("--dir", str(mdir), "rehash", "1", url=db_url)
    assert done.returncode == 0, done.stderr
    assert old[:8] in done.stdout and new[:8] in done.stdout
    assert recorded_checksums(db_url)[1] == new
    assert cli("--dir", str(mdir), "verify", url=db_url).returncode == 0
    assert cli("--dir", str(mdir), "up", url=db_url).returncode == 0


def test_missing_file_shows_as_missing_and_cannot_be_rolled_back(cli, db_url, mdir):
    mdir.add(1, "one", "CREATE TABLE one (id int);\n", "DROP TABLE one;\n")
    two = mdir.add(2, "two", "CREATE TABLE two (id int);\n", "DROP TABLE two;\n")
    assert cli("--dir", str(mdir), "up", url=db_url).returncode == 0
    two.unlink()
    two.with_name("0002_two.down.sql").unlink()

    status = cli("--dir", str(mdir), "status", url=db_url)
    assert status.returncode == 0
    assert any(ln.split()[:3] == ["2", "two", "missing"] for ln in status.stdout.splitlines()), status.stdout
    done = cli("--dir", str(mdir), "down", url=db_url)
    line = assert_one_error(done, 1, "version 2", "missing")
    assert "two" in line
    assert set(tracked(db_url)) == {1, 2}
    assert {"one", "two"} <= tables(db_url)  # nothing was rolled back
    verify = cli("--dir", str(mdir), "verify", url=db_url)
    assert verify.returncode == 1 and "version 2 (two) is recorded but its file is missing" in verify.stdout


def test_out_of_order_pending_migration(cli, db_url, mdir):
    mdir.add(1, "one", "CREATE TABLE one (id int);\n")
    mdir.add(3, "three", "CREATE TABLE three (id int);\n")
    assert cli("--dir", str(mdir), "up", url=db_url).returncode == 0
    mdir.add(2, "two", "CREATE TABLE two (id int);\n")

    done = cli("--dir", str(mdir), "up", url=db_url)
    assert_one_error(done, 1, "0002_two", "older than the newest applied version 3", "--allow-out-of-order")
    assert set(tracked(db_url)) == {1, 3} and "two" not in tables(db_url)
    verify = cli("--dir", str(mdir), "verify", url=db_url)
    assert verify.returncode == 1 and "0002_two is pending but older than the newest applied" in verify.stdout
    status = cli("--dir", str(mdir), "status", "--check", url=db_url)
    assert status.returncode == 1 and "out of order" in status.stdout

    done = cli("--dir", str(mdir), "up", "--allow-out-of-order", url=db_url)
    assert done.returncode == 0, done.stderr
    assert set(tracked(db_url)) == {1, 2, 3} and "two" in tables(db_url)
    assert cli("--dir", str(mdir), "verify", url=db_url).returncode == 0
