"""Rough edges a new user meets: ``\\ir`` in a file that starts with a BOM, names and versions
``create`` cannot write, versions in other scripts' digits, ``status`` beside a broken folder,
``ON_ERROR_STOP`` turned off with ``--set``, and plans applied on the database the runner uses.
Each checks the database afterwards."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, cli_env, query, tables, tracked

import pgmigrate
from pgmigrate.discovery import MAX_VERSION, SqlFile

BOM = b"\xef\xbb\xbf"


def _checksum(path: Path) -> str:
    return SqlFile(path).checksum


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# --- \ir in a file that starts with a BOM ---


def _bom_folder(mdir, *, no_transaction: bool = False) -> None:
    """0001 leaves psql's session in LATIN1 (the session reset gives the next file back the UTF-8
    psql needs to skip a BOM); 0002 starts with a BOM and includes files of its folder with \\ir;
    0003 starts with a BOM and runs in-process."""
    directive = "-- migrate:no-transaction\n" if no_transaction else ""
    parts = mdir.path / "parts"
    parts.mkdir()
    (parts / "create.sql").write_text("CREATE TABLE included (id int);\nINSERT INTO included VALUES (:n);\n")
    (parts / "drop.sql").write_text("DROP TABLE included;\n")
    mdir.add(1, "latin1", directive + "\\set n 7\nSET client_encoding = 'LATIN1';\nCREATE TABLE one (id int);\n",
             "DROP TABLE one;\n")
    (mdir.path / "0002_bom.up.sql").write_bytes(
        BOM + (directive + "\\ir parts/create.sql\nCREATE TABLE two (id int);\n").encode())
    (mdir.path / "0002_bom.down.sql").write_bytes(BOM + directive.encode() + b"\\ir parts/drop.sql\nDROP TABLE two;\n")
    (mdir.path / "0003_plain.up.sql").write_bytes(BOM + directive.encode() + b"CREATE TABLE three (id int);\n")
    (mdir.path / "0003_plain.down.sql").write_bytes(BOM + b"DROP TABLE three;\n")


@pytest.mark.parametrize("mode", ["transaction", "no-transaction", "single-transaction"])
def test_bom_file_includes_relative_to_its_own_folder(cli, db_url, mdir, mode):
    _bom_folder(mdir, no_transaction=mode == "no-transaction")
    extra = ["--single-transaction"] if mode == "single-transaction" else []
    up = cli("--dir", str(mdir), "up", "--set", "n=5", *extra, url=db_url)
    assert up.returncode == 0, up.stderr
    assert tables(db_url) == {"schema_migrations", "one", "two", "three", "included"}
    assert query(db_url, "SELECT id FROM included") == [(5,)]
    assert tracked(db_url) == {
        1: ("latin1", _checksum(mdir.path / "0001_latin1.up.sql"), False),
        2: ("bom", _checksum(mdir.path / "0002_bom.up.sql"), False),
        3: ("plain", _checksum(mdir.path / "0003_plain.up.sql"), False),
    }
    down = cli("--dir", str(mdir), "down", "2", url=db_url)
    assert down.returncode == 0, down.stderr
    assert tables(db_url) == {"schema_migrations", "one"}
    assert set(tracked(db_url)) == {1}


def _without_write_permission(argv: list[str]) -> list[str]:
    """The command as a user who may not write the folders (root writes anywhere unless it gives
    up the capabilities that let it)."""
    if os.geteuid() != 0:
        return argv
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv is needed to run as root without write permission")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--", *argv]


def test_read_only_migrations_and_seeds_folders_run_and_stay_untouched(db_url, mdir, tmp_path):
    _bom_folder(mdir)
    seeds = tmp_path / "seeds"
    (seeds / "parts").mkdir(parents=True)
    (seeds / "parts" / "rows.sql").write_text("INSERT INTO one VALUES (1), (2);\n")
    (seeds / "01_rows.sql").write_bytes(BOM + b"\\ir parts/rows.sql\n")
    folders = [mdir.path, mdir.path / "parts", seeds, seeds / "parts"]
    before = {folder: _listing(folder) for folder in folders}
    script = [sys.executable, str(ROOT / "scripts" / "migrate.py"), "--dir", str(mdir)]
    try:
        for folder in folders:
            folder.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
        probe = subprocess.run(_without_write_permission(["touch", str(mdir.path / "probe")]), capture_output=True)
        assert probe.returncode != 0, "the folder should not be writable for the test"
        for command in (["up", "--set", "n=3"], ["seed", "--seeds-dir", str(seeds)]):
            done = subprocess.run(_without_write_permission([*script, *command]), env=cli_env(db_url),
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
    finally:
        for folder in folders:
            folder.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    assert {folder: _listing(folder) for folder in folders} == before
    assert tables(db_url) == {"schema_migrations", "one", "two", "three", "included"}
    assert query(db_url, "SELECT id FROM one ORDER BY id") == [(1,), (2,)]
    assert {v: dirty for v, (_, _, dirty) in tracked(db_url).items()} == {1: False, 2: False, 3: False}


# --- create ---


def test_create_refuses_names_it_cannot_write_and_writes_nothing(cli, db_url, mdir):
    mdir.add(1, "first", "CREATE TABLE first ();")
    before = _listing(mdir.path)
    limit = os.pathconf(mdir.path, "PC_NAME_MAX") - len("0002_.down.sql")
    for name in ("two\nlines", "trailing\n", "x" * 300, "y" * (limit + 1), "é"):
        refused = cli("--dir", str(mdir), "create", name)
        assert refused.returncode == 2, refused.stdout
        assert refused.stderr.startswith("error: ") and refused.stderr.count("\n") == 1, refused.stderr
        assert "unexpected" not in refused.stderr and "Traceback" not in refused.stderr
        assert _listing(mdir.path) == before
    assert f"use a name of at most {limit} characters" in cli("--dir", str(mdir), "create", "x" * 300).stderr
    # The folder is as it was: every later command works, and the database gets what is there.
    up = cli("--dir", str(mdir), "up", url=db_url)
    assert up.returncode == 0, up.stderr
    assert "first" in tables(db_url) and set(tracked(db_url)) == {1}
    longest = cli("--dir", str(mdir), "create", "y" * limit)
    assert longest.returncode == 0, longest.stderr
    assert len(_listing(mdir.path)) == len(before) + 2
    assert cli("--dir", str(mdir), "status", url=db_url).returncode == 0


def test_create_after_the_largest_version_refuses_and_writes_nothing(cli, db_url, mdir):
    mdir.add(MAX_VERSION, "last", "CREATE TABLE last ();")
    before = _listing(mdir.path)
    refused = cli("--dir", str(mdir), "create", "next")
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1
    assert f"version {MAX_VERSION} is the largest bigint allows" in refused.stderr
    assert "nothing was written" in refused.stderr
    assert _listing(mdir.path) == before
    up = cli("--dir", str(mdir), "up", url=db_url)
    assert up.returncode == 0, up.stderr
    assert set(tracked(db_url)) == {MAX_VERSION} and "last" in tables(db_url)


def test_a_file_name_with_a_line_break_is_one_line_everywhere(cli, db_url, mdir):
    mdir.add(1, "ok", "CREATE TABLE ok ();")
    (mdir.path / "0002_bad\n.up.sql").write_text("CREATE TABLE bad ();")
    up = cli("--dir", str(mdir), "up", url=db_url)
    assert up.returncode == 2 and up.stderr.count("\n") == 1
    assert "'0002_bad\\n.up.sql': invalid migration file name" in up.stderr
    assert tracked(db_url) == {} and tables(db_url) == set()
    status = cli("--dir", str(mdir), "status", url=db_url)
    assert status.returncode == 0
    assert status.stderr.count("\n") == 1 and status.stderr.startswith("problem: '0002_bad\\n.up.sql'")


# --- versions and counts: digits 0-9 only ---


def test_versions_and_counts_in_other_digits_are_refused(cli, db_url, mdir):
    for v in (1, 2, 3):
        mdir.add(v, f"t{v}", f"CREATE TABLE t{v} ();", f"DROP TABLE t{v};")
    assert cli("--dir", str(mdir), "up", "--to", "2", url=db_url).returncode == 0
    state = (tables(db_url), tracked(db_url))
    for args in (["force", "\u0661"], ["up", "--to", "\u0663"], ["down", "\u0661"], ["down", "--to", "\u0661"],
                 ["up", "--steps", "\u0661"], ["up", "--lock-retries", "\u0663"], ["up", "--lock-wait", "\u0665"],
                 ["baseline", "\u0663"], ["down", "\u00b2"], ["up", "--to", "\uff13"]):
        refused = cli("--dir", str(mdir), *args, url=db_url)
        assert refused.returncode == 2, (args, refused.stdout)
        assert "digits 0-9" in refused.stderr or "such as 5 or 0.5" in refused.stderr, refused.stderr
        assert (tables(db_url), tracked(db_url)) == state, args
    # The same in digits 0-9 does what it says.
    assert cli("--dir", str(mdir), "down", "1", url=db_url).returncode == 0
    assert set(tracked(db_url)) == {1}
    assert cli("--dir", str(mdir), "up", "--to", "3", url=db_url).returncode == 0
    assert set(tracked(db_url)) == {1, 2, 3}


def test_a_migration_file_numbered_in_other_digits_is_named_not_applied(cli, db_url, mdir):
    mdir.add(1, "ok", "CREATE TABLE ok ();")
    (mdir.path / "\u0662_two.up.sql").write_text("CREATE TABLE two ();")
    up = cli("--dir", str(mdir), "up", url=db_url)
    assert up.returncode == 2 and up.stderr.count("\n") == 1
    assert "\u0662_two.up.sql: invalid migration file name; the version must be written with the digits 0-9" \
        in up.stderr
    assert tracked(db_url) == {} and tables(db_url) == set()


# --- status beside a broken folder ---


def test_status_shows_the_rows_and_the_problem_when_a_down_file_lost_its_up_file(cli, db_url, mdir):
    mdir.add(1, "one", "CREATE TABLE one ();", "DROP TABLE one;")
    mdir.add(2, "two", "CREATE TABLE two ();", "DROP TABLE two;")
    assert cli("--dir", str(mdir), "up", "--to", "1", url=db_url).returncode == 0
    (mdir.path / "0003_three.down.sql").write_text("DROP TABLE three;")
    orphan = "0003_three.down.sql: down file without its up file 0003_three.up.sql"

    status = cli("--dir", str(mdir), "status", url=db_url)
    assert status.returncode == 0, status.stderr
    rows = [line.split()[:3] for line in status.stdout.splitlines()[2:4]]
    assert rows == [["1", "one", "applied"], ["2", "two", "pending"]]
    assert "1 problem(s) with the migration files" in status.stdout
    problems = status.stderr.splitlines()
    assert len(problems) == 1 and problems[0].startswith("problem: ") and orphan in problems[0]

    check = cli("--dir", str(mdir), "status", "--check", url=db_url)
    assert check.returncode == 1 and orphan in check.stderr
    data = json.loads(cli("--dir", str(mdir), "status", "--format", "json", url=db_url).stdout)
    assert data["clean"] is False and len(data["problems"]) == 1 and orphan in data["problems"][0]
    assert [(m["version"], m["state"]) for m in data["migrations"]] == [(1, "applied"), (2, "pending")]
    api = pgmigrate.status(db_url, migrations_dir=mdir.path)
    assert not api.clean and len(api.problems) == 1 and [r.state for r in api.rows] == ["applied", "pending"]

    # Commands that run files still refuse, and nothing changed.
    refused = cli("--dir", str(mdir), "up", url=db_url)
    assert refused.returncode == 2 and orphan in refused.stderr
    assert set(tracked(db_url)) == {1} and tables(db_url) == {"schema_migrations", "one"}
    # Once every migration is applied, only the problem keeps --check failing.
    (mdir.path / "0003_three.down.sql").unlink()
    assert cli("--dir", str(mdir), "up", url=db_url).returncode == 0
    assert cli("--dir", str(mdir), "status", "--check", url=db_url).returncode == 0


# --- ON_ERROR_STOP turned off from the command line ---


@pytest.mark.parametrize("path", ["in-process", "psql"])
def test_set_on_error_stop_off_is_refused_before_anything_runs(cli, db_url, mdir, path):
    meta = "\\set x 1\n" if path == "psql" else ""
    mdir.add(1, "ok", "CREATE TABLE ok ();")
    mdir.add(2, "fails", "-- migrate:no-transaction\n" + meta + "SELECT 1/0;\nCREATE TABLE after_error ();\n")
    for value in ("0", "off", "false"):
        refused = cli("--dir", str(mdir), "up", "--set", f"ON_ERROR_STOP={value}", url=db_url)
        assert refused.returncode == 2 and "ON_ERROR_STOP" in refused.stderr, refused.stderr
        assert tracked(db_url) == {} and tables(db_url) == set()
    failed = cli("--dir", str(mdir), "up", "--set", "ON_ERROR_STOP=on", url=db_url)
    assert failed.returncode == 1 and "division by zero" in failed.stderr
    assert {v: dirty for v, (_, _, dirty) in tracked(db_url).items()} == {1: False, 2: True}
    assert "after_error" not in tables(db_url)


@pytest.mark.parametrize("mode", ["transaction", "no-transaction", "single-transaction"])
def test_an_error_an_included_file_lets_pass_still_stops_the_migration(cli, db_url, mdir, mode):
    (mdir.path / "inc.sql").write_text("\\set ON_ERROR_STOP 0\n\\set ON_ERROR_ROLLBACK on\nSELECT no_such_column;\n")
    directive = "-- migrate:no-transaction\n" if mode == "no-transaction" else ""
    mdir.add(1, "ok", "CREATE TABLE ok ();")
    mdir.add(2, "passes_over", directive + "CREATE TABLE q (id int);\n\\ir inc.sql\nCREATE TABLE q2 (id int);\n")
    mdir.add(3, "later", "CREATE TABLE later ();")
    extra = ["--single-transaction"] if mode == "single-transaction" else []
    done = cli("--dir", str(mdir), "up", *extra, url=db_url)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no_such_column" in done.stderr and "applied     0002" not in done.stdout
    if mode == "no-transaction":  # its statements ran, one by one: the version says so, dirty
        assert {v: dirty for v, (_, _, dirty) in tracked(db_url).items()} == {1: False, 2: True}
        assert tables(db_url) == {"schema_migrations", "ok", "q", "q2"}
    elif mode == "transaction":
        assert {v: dirty for v, (_, _, dirty) in tracked(db_url).items()} == {1: False}
        assert tables(db_url) == {"schema_migrations", "ok"}
    else:
        assert tracked(db_url) == {} and tables(db_url) == {"schema_migrations"}


@pytest.mark.parametrize("how", ["runner", "plan"])
def test_a_file_that_ends_the_single_transaction_stops_there_and_stays_dirty(cli, db_url, mdir, tmp_path, how):
    (mdir.path / "inc.sql").write_text("CREATE TABLE early (id int);\nCOMMIT;\n")
    mdir.add(1, "one", "CREATE TABLE one ();")
    mdir.add(2, "escapes", "\\ir inc.sql\nCREATE TABLE two ();\n")
    mdir.add(3, "three", "CREATE TABLE three ();")
    if how == "runner":
        done = cli("--dir", str(mdir), "up", "--single-transaction", url=db_url)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "0002_escapes.up.sql: the file ended the transaction that holds its tracking row" in done.stderr
        assert "applied" not in done.stdout
    else:  # the plan 'up --single-transaction --sql' prints does the same in psql
        plan = cli("--dir", str(mdir), "up", "--single-transaction", "--sql", url=db_url)
        (tmp_path / "plan.sql").write_text(plan.stdout)
        done = cli("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(tmp_path / "plan.sql"), url=db_url)
        assert done.returncode == 3 and "the file ended the transaction" in done.stderr, done.stderr
    # What the COMMIT committed is recorded as it is: 1 whole, 2 part-way (dirty); 3 never ran.
    assert {v: dirty for v, (_, _, dirty) in tracked(db_url).items()} == {1: False, 2: True}
    assert "three" not in tables(db_url) and {"one", "early", "two"} <= tables(db_url)
    assert cli("--dir", str(mdir), "up", url=db_url).returncode == 1  # refused while dirty


# --- plans, applied where the runner would apply them ---


def _guide_commands() -> list[str]:
    """The commands of MIGRATION_GUIDE.md's "Applying by hand with psql", as written there."""
    text = (ROOT / "MIGRATION_GUIDE.md").read_text()
    section = text.split("## Applying by hand with psql", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [re.sub(r"\s+#.*$", "", line) for line in block.splitlines() if line.strip()]


def _in_a_shell(command: str) -> str:
    """A documented command as run from another folder: the checkout's script (and interpreter) by path."""
    if command.startswith(".venv/bin/python scripts/migrate.py"):
        return command.replace(".venv/bin/python scripts/migrate.py", f"{sys.executable} {ROOT}/scripts/migrate.py", 1)
    assert command.startswith("scripts/migrate.py"), command
    return f"{ROOT}/{command}"


def _plan_folder(mdir) -> None:
    """A file the runner runs in-process, one it runs through psql (BOM, \\ir, \\set), a no-transaction one."""
    (mdir.path / "parts").mkdir()
    (mdir.path / "parts" / "seed.sql").write_text("INSERT INTO items VALUES (:'first'), ('two');\n")
    mdir.add(1, "items", "CREATE TABLE items (label text);\n", "DROP TABLE items;\n")
    mdir.add(2, "fill", "written below", "DELETE FROM items;\n")
    (mdir.path / "0002_fill.up.sql").write_bytes(BOM + b"\\set first one\n\\ir parts/seed.sql\n")
    mdir.add(3, "index", "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY items_label ON items (label);\n",
             "-- migrate:no-transaction\nDROP INDEX CONCURRENTLY items_label;\n")


def _environment(kind: str, db_url: str, pg_server, mdir) -> dict[str, str]:
    """What a user has set: DATABASE_URL (configured), or nothing, so that the embedded server's
    address is the target (LOCAL_PG_PORT and LOCAL_PG_DB point it at the test server)."""
    if kind == "configured":
        return cli_env(db_url, {"MIGRATIONS_DIR": str(mdir.path)})
    if (pg_server.host, pg_server.user, pg_server.password) != ("127.0.0.1", "postgres", None):
        pytest.skip("the embedded server's address is postgres@127.0.0.1 without a password")
    return cli_env(None, {"MIGRATIONS_DIR": str(mdir.path), "LOCAL_PG_PORT": str(pg_server.port),
                          "LOCAL_PG_DB": db_url.rsplit("/", 1)[1]})


def _run(command: str, env: dict[str, str], cwd: Path) -> None:
    done = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"


def _assert_applied(db_url: str, mdir) -> None:
    assert tables(db_url) == {"schema_migrations", "items"}
    assert query(db_url, "SELECT label FROM items ORDER BY label") == [("one",), ("two",)]
    assert query(db_url, "SELECT indexname FROM pg_indexes WHERE tablename = 'items'") == [("items_label",)]
    assert tracked(db_url) == {
        1: ("items", _checksum(mdir.path / "0001_items.up.sql"), False),
        2: ("fill", _checksum(mdir.path / "0002_fill.up.sql"), False),
        3: ("index", _checksum(mdir.path / "0003_index.up.sql"), False),
    }


@pytest.mark.parametrize("kind", ["configured", "embedded"])
def test_the_guides_plan_commands_apply_the_plan_on_the_runners_database(db_url, pg_server, mdir, tmp_path, kind):
    _plan_folder(mdir)
    env = _environment(kind, db_url, pg_server, mdir)
    commands = _guide_commands()
    assert len(commands) == 2 and "up --sql > plan.sql" in commands[0] and "-f plan.sql" in commands[1]
    for command in commands:
        _run(_in_a_shell(command), env, tmp_path)
    _assert_applied(db_url, mdir)
    # The runner agrees: nothing left to do, every row clean.
    _run(f"{sys.executable} {ROOT}/scripts/migrate.py status --check", env, tmp_path)
    # And the rollback plan, applied the same way, undoes it all.
    _run(_in_a_shell(commands[0].replace("up --sql > plan.sql", "down --all --sql > plan.sql")), env, tmp_path)
    _run(_in_a_shell(commands[1]), env, tmp_path)
    assert tables(db_url) == {"schema_migrations"} and tracked(db_url) == {}


@pytest.mark.parametrize("kind", ["configured", "embedded"])
def test_make_plan_then_the_command_its_header_gives(db_url, pg_server, mdir, tmp_path, kind):
    if (ROOT / ".env").exists():
        pytest.skip("make runs in the checkout, whose .env would choose the database")
    _plan_folder(mdir)
    env = {k: v for k, v in _environment(kind, db_url, pg_server, mdir).items()
           if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}  # as typed in a shell, not from inside make
    plan = tmp_path / "plan.sql"
    _run(f"make db-migrate-plan > {plan}", env, ROOT)
    header = plan.read_text().splitlines()[1]
    command = header.split("run it on that database with: ", 1)[1]
    assert f".venv/bin/python {command}" == _guide_commands()[1]  # the guide's, applied in the test above
    assert tracked(db_url) == {}  # printing the plan touched nothing
    readme = (ROOT / "README.md").read_text()
    shown = "`make db-migrate-plan > plan.sql`, then `scripts/migrate.py psql -f plan.sql`"
    assert shown in readme and shown.replace("`", "") in (ROOT / "Makefile").read_text()
    _run(_in_a_shell("scripts/migrate.py psql -f plan.sql"), env, tmp_path)
    _assert_applied(db_url, mdir)
