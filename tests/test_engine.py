"""The core against a real PostgreSQL: every command, checked in the database afterwards."""

import json

import pytest
from helpers import query, tables, tracked

from pgmigrate import api
from pgmigrate.errors import MigrationFailed, StateError, UsageError


@pytest.fixture
def three(mdir):
    mdir.add(1, "users", "CREATE TABLE users (id int PRIMARY KEY);", "DROP TABLE users;")
    mdir.add(2, "posts", "CREATE TABLE posts (id int PRIMARY KEY, user_id int REFERENCES users);", "DROP TABLE posts;")
    mdir.add(3, "tags", "CREATE TABLE tags (id int);\nCREATE INDEX tags_id ON tags (id);", "DROP TABLE tags;")
    return mdir


def test_up_applies_in_order_with_tracking_rows(db_url, three):
    applied = api.run_migrations(db_url, migrations_dir=str(three.path))
    assert [r.version for r in applied] == [1, 2, 3]
    assert tables(db_url) == {"schema_migrations", "users", "posts", "tags"}
    rows = query(db_url, "SELECT version, description, length(checksum), applied_by = current_user, dirty, "
                         "execution_ms >= 0, applied_at IS NOT NULL FROM schema_migrations ORDER BY version")
    assert rows == [(1, "users", 64, True, False, True, True), (2, "posts", 64, True, False, True, True),
                    (3, "tags", 64, True, False, True, True)]
    assert api.run_migrations(db_url, migrations_dir=str(three.path)) == []


def test_up_to_and_steps(db_url, three):
    api.run_migrations(db_url, migrations_dir=str(three.path), to=2)
    assert set(tracked(db_url)) == {1, 2}
    with pytest.raises(UsageError, match="no migration with version 7"):
        api.run_migrations(db_url, migrations_dir=str(three.path), to=7)


def test_failure_keeps_earlier_migrations_and_leaves_nothing_of_the_failing_one(db_url, three):
    three.add(4, "broken",
              "CREATE TABLE half (id int);\nINSERT INTO half VALUES (1);\n\nSELECT * FROM no_such_table;\n")
    with pytest.raises(MigrationFailed) as info:
        api.run_migrations(db_url, migrations_dir=str(three.path))
    err = info.value
    assert err.line == 4 and err.sqlstate == "42P01"
    assert err.path.endswith("0004_broken.up.sql:4")
    assert "half" not in tables(db_url)
    assert set(tracked(db_url)) == {1, 2, 3}


def test_rollback_newest_first_and_to_version(db_url, three):
    api.run_migrations(db_url, migrations_dir=str(three.path))
    rolled = api.rollback(db_url, steps=2, migrations_dir=str(three.path))
    assert [r.version for r in rolled] == [3, 2]
    assert tables(db_url) == {"schema_migrations", "users"}
    assert set(tracked(db_url)) == {1}


def test_down_without_down_file_rolls_back_nothing(db_url, mdir):
    mdir.add(1, "a", "CREATE TABLE a ();", "DROP TABLE a;")
    mdir.add(2, "b", "CREATE TABLE b ();")
    api.run_migrations(db_url, migrations_dir=str(mdir.path))
    with pytest.raises(StateError, match="0002_b has no down file"):
        api.rollback(db_url, steps=2, migrations_dir=str(mdir.path))
    assert set(tracked(db_url)) == {1, 2}
    assert tables(db_url) == {"schema_migrations", "a", "b"}


def test_status_history_and_version(db_url, three):
    api.run_migrations(db_url, migrations_dir=str(three.path), to=2)
    states = [(r.version, r.state) for r in api.status(db_url, migrations_dir=str(three.path)).rows]
    assert states == [(1, "applied"), (2, "applied"), (3, "pending")]
    assert api.current_version(db_url) == 2
    assert [h.version for h in api.history(db_url)] == [1, 2]


def test_self_recording_files_work_with_the_runner(db_url, mdir):
    mdir.add(1, "a", "CREATE TABLE a ();\nINSERT INTO schema_migrations (version, description) VALUES (1, 'a') "
                     "ON CONFLICT (version) DO NOTHING;",
             "DROP TABLE a;\nDELETE FROM schema_migrations WHERE version = 1;")
    api.run_migrations(db_url, migrations_dir=str(mdir.path))
    description, checksum, dirty = tracked(db_url)[1]
    assert (description, len(checksum), dirty) == ("a", 64, False)
    api.rollback(db_url, migrations_dir=str(mdir.path))
    assert tracked(db_url) == {}


def test_hand_applied_rows_get_their_checksum_on_the_next_up(db_url, mdir):
    up = mdir.add(1, "a", "CREATE TABLE a ();")
    api.run_migrations(db_url, migrations_dir=str(mdir.path))
    query(db_url, "UPDATE schema_migrations SET checksum = NULL")
    mdir.add(2, "b", "CREATE TABLE b ();")
    api.run_migrations(db_url, migrations_dir=str(mdir.path))
    from pgmigrate.sqltext import checksum

    assert tracked(db_url)[1][1] == checksum(up.read_text())


def test_cli_status_json_and_check(cli, db_url, three):
    assert cli("--dir", str(three), "up", "--to", "1", url=db_url).returncode == 0
    result = cli("--dir", str(three), "status", "--format", "json", url=db_url)
    data = json.loads(result.stdout)
    assert data["current_version"] == 1
    assert data["summary"] == {"applied": 1, "pending": 2, "changed": 0, "missing": 0, "dirty": 0}
    assert cli("--dir", str(three), "status", "--check", url=db_url).returncode == 1
    cli("--dir", str(three), "up", url=db_url)
    assert cli("--dir", str(three), "status", "--check", url=db_url).returncode == 0


def test_cli_up_prints_a_line_per_migration_and_nothing_to_apply(cli, db_url, three):
    first = cli("--dir", str(three), "up", url=db_url)
    assert first.returncode == 0, first.stderr
    lines = [ln for ln in first.stdout.splitlines() if ln.startswith("applied ")]
    assert [ln.split()[1] for ln in lines] == ["0001_users", "0002_posts", "0003_tags"]
    assert all(ln.endswith(" ms") for ln in lines)
    second = cli("--dir", str(three), "up", url=db_url)
    assert second.returncode == 0 and "nothing to apply; current version 3" in second.stdout


def test_cli_dry_run_touches_nothing(cli, db_url, three):
    result = cli("--dir", str(three), "up", "--dry-run", url=db_url)
    assert result.returncode == 0
    assert "would apply 0001_users" in result.stdout
    assert tables(db_url) <= {"schema_migrations"} and tracked(db_url) == {}
    cli("--dir", str(three), "up", url=db_url)
    result = cli("--dir", str(three), "down", "--all", "--dry-run", url=db_url)
    assert "would roll back 0003_tags" in result.stdout and set(tracked(db_url)) == {1, 2, 3}


def test_cli_down_variants(cli, db_url, three):
    cli("--dir", str(three), "up", url=db_url)
    assert cli("--dir", str(three), "down", url=db_url).returncode == 0
    assert set(tracked(db_url)) == {1, 2}
    cli("--dir", str(three), "up", url=db_url)
    assert cli("--dir", str(three), "down", "--to", "1", url=db_url).returncode == 0
    assert set(tracked(db_url)) == {1} and tables(db_url) == {"schema_migrations", "users"}
    assert cli("--dir", str(three), "down", "--all", url=db_url).returncode == 0
    assert tracked(db_url) == {} and tables(db_url) == {"schema_migrations"}


def test_cli_redo(cli, db_url, three):
    cli("--dir", str(three), "up", url=db_url)
    query(db_url, "INSERT INTO tags VALUES (1)")
    result = cli("--dir", str(three), "redo", url=db_url)
    assert result.returncode == 0, result.stderr
    assert "rolled back 0003_tags" in result.stdout and "applied     0003_tags" in result.stdout
    assert query(db_url, "SELECT count(*) FROM tags") == [(0,)]  # recreated empty
    assert set(tracked(db_url)) == {1, 2, 3}


def test_cli_version(cli, db_url, three):
    assert cli("--dir", str(three), "version", url=db_url).stdout.strip() == "0"
    cli("--dir", str(three), "up", "--steps", "2", url=db_url)
    assert cli("--dir", str(three), "version", url=db_url).stdout.strip() == "2"


def test_cli_force_reruns_the_up_file(cli, db_url, mdir):
    mdir.add(1, "seed_table", "CREATE TABLE IF NOT EXISTS s (id int);\nINSERT INTO s VALUES (1);")
    cli("--dir", str(mdir), "up", url=db_url)
    result = cli("--dir", str(mdir), "force", "1", url=db_url)
    assert result.returncode == 0, result.stderr
    assert query(db_url, "SELECT count(*) FROM s") == [(2,)]
    assert tracked(db_url)[1][2] is False


def test_cli_baseline_records_without_running(cli, db_url, three):
    result = cli("--dir", str(three), "baseline", "2", url=db_url)
    assert result.returncode == 0, result.stderr
    assert set(tracked(db_url)) == {1, 2}
    assert tables(db_url) == {"schema_migrations"}  # nothing ran
    cli("--dir", str(three), "up", url=db_url)
    assert tables(db_url) == {"schema_migrations", "tags"}


def test_cli_verify(cli, db_url, three):
    cli("--dir", str(three), "up", url=db_url)
    assert cli("--dir", str(three), "verify", url=db_url).returncode == 0
    (three.path / "0002_posts.up.sql").write_text("CREATE TABLE posts (id bigint);")
    (three.path / "0003_tags.up.sql").unlink()
    (three.path / "0003_tags.down.sql").unlink()
    result = cli("--dir", str(three), "verify", url=db_url)
    assert result.returncode == 1
    assert "0002_posts.up.sql changed since it was applied" in result.stdout
    assert "version 3 (tags) is recorded but its file is missing" in result.stdout


def test_cli_create_pads_like_the_folder(cli, tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    result = cli("--dir", str(folder), "create", "add_users")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(folder / "000001_add_users.up.sql"), str(folder / "000001_add_users.down.sql")]
    (folder / "0042_x.up.sql").write_text("SELECT 1;")
    result = cli("--dir", str(folder), "create", "next-one")
    assert (folder / "0043_next-one.up.sql").exists(), result.stdout
    for bad in ("has space", "a/b", ""):
        bad_result = cli("--dir", str(folder), "create", bad)
        assert bad_result.returncode == 2 and bad_result.stderr.startswith("error: invalid migration name")


def test_cli_fresh_requires_yes_and_rebuilds(cli, db_url, three):
    cli("--dir", str(three), "up", url=db_url)
    query(db_url, "CREATE SCHEMA extra; CREATE TABLE extra.t (); CREATE TABLE public.leftover (); "
                  "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    refused = cli("--dir", str(three), "fresh", url=db_url)
    assert refused.returncode == 1 and "without --yes" in refused.stderr
    assert "leftover" in tables(db_url)
    result = cli("--dir", str(three), "fresh", "--yes", url=db_url)
    assert result.returncode == 0, result.stderr
    assert tables(db_url) == {"schema_migrations", "users", "posts", "tags"}
    assert query(db_url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'extra'") == [(0,)]
    assert query(db_url, "SELECT count(*) FROM pg_proc WHERE proname = 'f'") == [(0,)]


def test_cli_seed(cli, db_url, three, tmp_path):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "01_users.sql").write_text("INSERT INTO users VALUES (1), (2) ON CONFLICT DO NOTHING;")
    (seeds / "02_tags.sql").write_text("\\set tag 7\nINSERT INTO tags VALUES (:tag);")
    cli("--dir", str(three), "up", url=db_url)
    result = cli("--dir", str(three), "seed", url=db_url, env={"SEEDS_DIR": str(seeds)})
    assert result.returncode == 0, result.stderr
    assert [ln.split()[:2] for ln in result.stdout.splitlines()[:2]] == [["seeded", "01_users.sql"],
                                                                          ["seeded", "02_tags.sql"]]
    assert query(db_url, "SELECT count(*) FROM users") == [(2,)]
    assert query(db_url, "SELECT id FROM tags") == [(7,)]


def test_cli_init_creates_the_database(cli, pg_server):
    name = "pgm_init_" + __import__("uuid").uuid4().hex[:8]
    url = pg_server.url(name)
    try:
        for _ in range(2):  # idempotent
            result = cli("init", url=url)
            assert result.returncode == 0, result.stderr
        assert tables(url) == {"schema_migrations"}
    finally:
        pg_server.drop_db(name)


def test_cli_missing_database_says_init(cli, pg_server, three):
    result = cli("--dir", str(three), "up", url=pg_server.url("pgm_does_not_exist"))
    assert result.returncode == 3
    assert result.stderr.count("\n") == 1 and "does not exist" in result.stderr and "init" in result.stderr


def test_cli_cannot_connect_hides_the_password(cli, three):
    url = "postgresql://someone:s3cret-pw@127.0.0.1:1/db"
    result = cli("--dir", str(three), "--verbose", "up", url=url)
    assert result.returncode == 3
    assert "s3cret-pw" not in result.stdout + result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith("error: cannot connect") and "host 127.0.0.1, port 1, database db" in first


def test_cli_failure_message_names_file_line_and_sqlstate(cli, db_url, mdir):
    mdir.add(1, "bad", "CREATE TABLE ok ();\n\nALTER TABLE ok\n  ADD COLUMN x nosuchtype;\n")
    result = cli("--dir", str(mdir), "up", url=db_url)
    assert result.returncode == 1
    first = result.stderr.splitlines()[0]
    assert first.startswith("error: ") and "0001_bad.up.sql:4:" in first and "SQLSTATE 42704" in first
    assert "Traceback" not in result.stderr
    assert tracked(db_url) == {} and "ok" not in tables(db_url)


def test_help_documents_exit_codes(cli):
    result = cli("--help")
    assert result.returncode == 0 and "exit codes:" in result.stdout and "4  another runner" in result.stdout
    for command in ("up", "down", "status", "force", "create", "fresh", "seed"):
        sub = cli(command, "--help")
        assert sub.returncode == 0 and "usage:" in sub.stdout


def test_refused_up_leaves_a_new_database_untouched(cli, db_url, mdir):
    mdir.add(1, "good", "CREATE TABLE good ();")
    mdir.add(2, "empty", "-- nothing yet\n")
    result = cli("--dir", str(mdir), "up", url=db_url)
    assert result.returncode == 2 and "no SQL statements" in result.stderr
    assert tables(db_url) == set()  # not even the tracking table


def test_global_options_may_follow_the_command(cli, db_url, mdir):
    mdir.add(1, "one", "CREATE TABLE one (id int);\n", "DROP TABLE one;\n")
    mdir.add(2, "two", "CREATE TABLE two (id int);\n", "DROP TABLE two;\n")
    up = cli("up", "-q", "--dir", str(mdir), "--steps", "1", url=None, env={"DATABASE_URL": "postgresql://nobody@nowhere/x"})
    assert up.returncode == 3  # --database-url not given: the environment's (unreachable) target
    up = cli("up", "-q", "--dir", str(mdir), "--steps", "1", "--database-url", db_url, url=None)
    assert up.returncode == 0, up.stderr
    assert up.stdout == ""  # -q after the command counts
    assert set(tracked(db_url)) == {1}
    status = cli("status", "--format", "json", "--dir", str(mdir), url=db_url)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["summary"]["pending"] == 1
