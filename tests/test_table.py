"""``--table SCHEMA.NAME`` / ``MIGRATIONS_TABLE``: where our tracking table (and the repeatable
migrations' table beside it) lives. Every command, the lock, ``--sql`` plans and the psql bridge use
it; a project whose own migrations alter golang-migrate's ``public.schema_migrations`` keeps ours
elsewhere."""

from __future__ import annotations

import json
import subprocess

import psycopg
import pytest
from helpers import query, tables

from pgmigrate.config import Settings, Target, build_settings
from pgmigrate.engine import Runner
from pgmigrate.errors import LockTimeout, UsageError
from pgmigrate.lock import LOCK_NAMESPACE
from pgmigrate.tracking import parse_table

CUSTOM = "app_meta.migrations"


def rows_of(url: str, table: str) -> dict[int, tuple]:
    """version -> (description, dirty) of a tracking table ({} when it does not exist)."""
    if not query(url, "SELECT to_regclass(%s)", (table,))[0][0]:
        return {}
    return {v: rest for v, *rest in query(url, f"SELECT version, description, dirty FROM {table}")}


def write(mdir) -> None:
    mdir.add(1, "items", "CREATE TABLE IF NOT EXISTS items (id int PRIMARY KEY);\n", "DROP TABLE items;\n")
    mdir.add(2, "psql_run", "\\set kind 'plain'\nCREATE TABLE notes (id int, kind text DEFAULT :'kind');\n",
             "DROP TABLE notes;\n")
    mdir.add(3, "no_tx", "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY notes_kind_idx ON notes (kind);\n",
             "-- migrate:no-transaction\nDROP INDEX CONCURRENTLY notes_kind_idx;\n")
    (mdir.path / "R__item_count.sql").write_text(
        "CREATE OR REPLACE FUNCTION item_count() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM items $$;\n")


def test_every_command_uses_the_table_it_is_given(cli, db_url, mdir):
    write(mdir)
    t = ("--dir", str(mdir), "--table", CUSTOM)
    r = cli(*t, "status", url=db_url)
    assert r.returncode == 0 and "no tracking table yet" in r.stdout
    r = cli(*t, "up", url=db_url)  # the schema is made by the first write, like the table
    assert r.returncode == 0, r.stderr
    assert rows_of(db_url, CUSTOM) == {1: ["items", False], 2: ["psql_run", False], 3: ["no_tx", False]}
    assert query(db_url, f"SELECT name FROM {CUSTOM}_repeatables") == [("item_count",)]
    assert "schema_migrations" not in tables(db_url) and "schema_migrations_repeatables" not in tables(db_url)
    assert tables(db_url, "app_meta") == {"migrations", "migrations_repeatables"}

    assert cli(*t, "version", url=db_url).stdout.strip() == "3"
    assert cli("--dir", str(mdir), "version", url=db_url).stdout.strip() == "0"  # the default table: none
    r = cli(*t, "status", "--check", "--format", "json", url=db_url)
    assert r.returncode == 0 and json.loads(r.stdout)["current_version"] == 3
    assert cli(*t, "verify", url=db_url).returncode == 0

    r = cli("--dir", str(mdir), "down", "3", "--table", CUSTOM, url=db_url)  # after the command too
    assert r.returncode == 0, r.stderr
    assert rows_of(db_url, CUSTOM) == {}
    assert query(db_url, f"SELECT checksum FROM {CUSTOM}_repeatables") == [(None,)]  # to be applied again
    assert cli(*t, "up", "--to", "2", url=db_url).returncode == 0
    assert cli(*t, "redo", url=db_url).returncode == 0
    assert cli(*t, "force", "1", url=db_url).returncode == 0
    assert cli(*t, "rehash", "1", url=db_url).returncode == 0
    assert set(rows_of(db_url, CUSTOM)) == {1, 2}
    assert "schema_migrations" not in tables(db_url)


def test_sql_plan_names_the_table_and_psql_applies_it(cli, db_url, pg_server, mdir):
    write(mdir)
    r = cli("--dir", str(mdir), "--table", CUSTOM, "up", "--sql", url=db_url)
    assert r.returncode == 0, r.stderr
    plan = r.stdout
    assert "tracking table app_meta.migrations" in plan.splitlines()[0]
    assert 'CREATE SCHEMA "app_meta"' in plan and 'INSERT INTO "app_meta"."migrations" AS m' in plan
    assert 'INSERT INTO "app_meta"."migrations_repeatables"' in plan
    assert "schema_migrations" not in plan
    assert tables(db_url, "app_meta") == set()  # --sql changes nothing

    applied = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db_url], input=plan, text=True,
                             capture_output=True)
    assert applied.returncode == 0, applied.stderr
    assert set(rows_of(db_url, CUSTOM)) == {1, 2, 3}
    assert cli("--dir", str(mdir), "--table", CUSTOM, "status", "--check", url=db_url).returncode == 0
    r = cli("--dir", str(mdir), "--table", CUSTOM, "down", "--all", "--sql", url=db_url)
    assert 'DELETE FROM "app_meta"."migrations" WHERE version = 1' in r.stdout
    assert 'UPDATE "app_meta"."migrations_repeatables" SET checksum = NULL' in r.stdout


def test_quoted_names_and_the_python_api(db_url, mdir):
    from pgmigrate import api

    write(mdir)
    results = api.run_migrations(db_url, migrations_dir=mdir.path, table='"Tracking"."Log"')
    assert [r.label for r in results] == ["0001_items", "0002_psql_run", "0003_no_tx", "R__item_count"]
    assert set(rows_of(db_url, '"Tracking"."Log"')) == {1, 2, 3}
    assert api.current_version(db_url, table='"Tracking"."Log"') == 3
    assert api.current_version(db_url) == 0
    assert [r.version for r in api.rollback(db_url, 3, migrations_dir=mdir.path, table='"Tracking"."Log"')] == [3, 2, 1]
    assert api.history(db_url, table='"Tracking"."Log"') == []


@pytest.mark.parametrize(("text", "schema", "name"), [
    ("schema_migrations", "public", "schema_migrations"),
    ("pgmigrate.schema_migrations", "pgmigrate", "schema_migrations"),
    ("Ops.History", "ops", "history"),
    ('"Ops"."History"', "Ops", "History"),
    ('"my.schema"."a ""b"""', "my.schema", 'a "b"'),
])
def test_names_are_read_as_sql_reads_them(text, schema, name):
    table = parse_table(text, "--table")
    assert (table.schema, table.name) == (schema, name)
    assert table.repeatables_name == name + "_repeatables"


@pytest.mark.parametrize(("text", "message"), [
    ("a.b.c", "'a.b.c' is not a table name; write SCHEMA.NAME"),
    ("", "'' is not a table name"),
    ("public.", "'public.' is not a table name"),
    ("pg_catalog.t", "schema pg_catalog is PostgreSQL's own"),
    ("public." + "x" * 52, "is too long: the schema may have 63 bytes, the table 51"),
    ('"50%"', "a tracking table's name cannot hold '%'"),
])
def test_bad_names_are_one_line_errors(text, message, cli, db_url, mdir):
    with pytest.raises(UsageError) as caught:
        parse_table(text, "--table")
    assert message in caught.value.message
    r = cli("--dir", str(mdir), "--table", text, "status", url=db_url)
    assert r.returncode == 2 and r.stderr.startswith("error: --table: ") and len(r.stderr.splitlines()) == 1


def test_flag_beats_environment_beats_dotenv_beats_default(cli, db_url, mdir, tmp_path):
    mdir.add(1, "one", "SELECT 1;\n")
    (tmp_path / ".env").write_text(f"DATABASE_URL={db_url}\nMIGRATIONS_TABLE=from_dotenv.migrations\n")
    env_table = {"MIGRATIONS_TABLE": "from_env.migrations"}

    def made(*args: str, env: dict | None = None) -> str:
        r = cli("--dir", str(mdir), *args, "init", cwd=tmp_path, env=env)
        assert r.returncode == 0, r.stderr
        return r

    made("--table", "from_flag.migrations", env=env_table)
    made(env=env_table)
    made()
    assert {s for (s,) in query(db_url, "SELECT table_schema FROM information_schema.tables "
                                        "WHERE table_name = 'migrations'")} == {"from_flag", "from_env", "from_dotenv"}
    (tmp_path / ".env").write_text(f"DATABASE_URL={db_url}\n")
    made()
    assert "schema_migrations" in tables(db_url)  # the default

    settings = build_settings(environ={"MIGRATIONS_TABLE": "x.y"}, cwd=tmp_path, migrations_table=None)
    assert settings.table.qualified == "x.y"
    (tmp_path / ".env").write_text("MIGRATIONS_TABLE=bad name\n")
    r = cli("--dir", str(mdir), "status", cwd=tmp_path, url=db_url)
    assert r.returncode == 2
    assert f"error: MIGRATIONS_TABLE in {tmp_path / '.env'}: 'bad name' is not a table name" in r.stderr


# --- the lock ---


def _runner(url: str, mdir, table: str, wait: float = 0.3) -> Runner:
    return Runner(Settings(Target(url, "test"), mdir.path, lock_wait=wait, table=parse_table(table, "test")))


def test_the_lock_is_the_tables(db_url, mdir):
    mdir.add(1, "one", "SELECT 1;\n")
    with _runner(db_url, mdir, CUSTOM) as first:
        first.plan("up")  # planning takes the lock, held until the runner closes
        with _runner(db_url, mdir, CUSTOM) as same, pytest.raises(LockTimeout):
            same.plan("up")
        with _runner(db_url, mdir, "other.migrations") as other:  # another table: another lock
            assert [r.label for r in other.up()] == ["0001_one"]
    with _runner(db_url, mdir, CUSTOM) as same:
        assert [r.label for r in same.up()] == ["0001_one"]


def test_a_session_holding_the_tables_key_makes_the_cli_wait(cli, db_url, mdir):
    mdir.add(1, "one", "SELECT 1;\n")
    with psycopg.connect(db_url) as holder:
        key = "hashtext(current_database() || '/app_meta.migrations')"  # the key, as documented
        assert holder.execute(f"SELECT pg_try_advisory_xact_lock(%s, {key})", (LOCK_NAMESPACE,)).fetchone()[0]
        r = cli("--dir", str(mdir), "--table", CUSTOM, "up", "--lock-wait", "1", url=db_url)
        assert r.returncode == 4 and "waiting for the migration lock, held by pid" in r.stderr
        r = cli("--dir", str(mdir), "--table", "other.migrations", "up", "--lock-wait", "1", url=db_url)
        assert r.returncode == 0, r.stderr  # another table's runner does not wait
        holder.rollback()
    assert cli("--dir", str(mdir), "--table", CUSTOM, "up", url=db_url).returncode == 0


# --- golang-migrate's table altered by the project's own migrations (goharbor/harbor) ---


GOLANG_MIGRATE_DDL = ('CREATE TABLE IF NOT EXISTS "public"."schema_migrations" '
                      "(version bigint not null primary key, dirty boolean not null)")
# goharbor/harbor's 0030_2.0.0_schema.up.sql and 0040_2.1.0_schema.up.sql do this to golang-migrate's table
HARBOR_ADD = "ALTER TABLE schema_migrations ADD COLUMN data_version int;\n"
HARBOR_DROP = "ALTER TABLE schema_migrations DROP COLUMN IF EXISTS data_version;\n"


def harbor(mdir, url: str) -> None:
    """A project golang-migrate built up to version 10, with two migrations to come that alter
    golang-migrate's table."""
    mdir.add(10, "initial_schema", "CREATE TABLE project (project_id int PRIMARY KEY, name text);\n")
    mdir.add(30, "2_0_0_schema", HARBOR_ADD + "CREATE TABLE artifact (id int PRIMARY KEY);\n")
    mdir.add(40, "2_1_0_schema", HARBOR_DROP + "CREATE TABLE artifact_trash (id int PRIMARY KEY);\n")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE project (project_id int PRIMARY KEY, name text)")
        conn.execute(GOLANG_MIGRATE_DDL)
        conn.execute("INSERT INTO schema_migrations VALUES (10, false)")


def columns(url: str, table: str) -> list[str]:
    return [c for (c,) in query(url, "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                                     "AND NOT attisdropped ORDER BY attnum", (table,))]


def test_in_the_default_place_the_projects_migrations_alter_our_table(cli, db_url, mdir):
    harbor(mdir, db_url)
    r = cli("--dir", str(mdir), "adopt", "--keep", url=db_url)  # our table needs golang-migrate's name
    assert r.returncode == 2 and "--keep cannot leave golang-migrate's public.schema_migrations in place" in r.stderr
    assert cli("--dir", str(mdir), "adopt", url=db_url).returncode == 0  # golang-migrate's table renamed away
    r = cli("--dir", str(mdir), "up", "--to", "30", url=db_url)
    assert r.returncode == 0, r.stderr
    assert "data_version" in columns(db_url, "public.schema_migrations")  # 0030 altered OUR table


def test_kept_elsewhere_ours_is_left_alone(cli, db_url, mdir):
    harbor(mdir, db_url)
    t = ("--dir", str(mdir), "--table", "pgmigrate.schema_migrations")
    r = cli(*t, "status", url=db_url)
    assert r.returncode == 1 and "public.schema_migrations is the tracking table of golang-migrate" in r.stderr
    r = cli(*t, "adopt", "--keep", url=db_url)  # golang-migrate's table stays where the migrations expect it
    assert r.returncode == 0, r.stderr
    assert "create pgmigrate.schema_migrations with 1 row(s)" in r.stdout
    assert "leave public.schema_migrations as it is (--keep)" in r.stdout
    assert rows_of(db_url, "pgmigrate.schema_migrations") == {10: ["initial_schema", False]}

    r = cli(*t, "up", url=db_url)
    assert r.returncode == 0, r.stderr
    assert set(rows_of(db_url, "pgmigrate.schema_migrations")) == {10, 30, 40}
    ours = ["version", "description", "checksum", "applied_at", "execution_ms", "applied_by", "dirty"]
    assert columns(db_url, "pgmigrate.schema_migrations") == ours  # never altered
    assert columns(db_url, "public.schema_migrations") == ["version", "dirty"]  # 0030 added, 0040 dropped it
    assert {"artifact", "artifact_trash"} <= tables(db_url)
    assert cli(*t, "status", "--check", url=db_url).returncode == 0


def test_adopt_table_given_the_old_way_is_refused(cli, db_url, mdir):
    mdir.add(1, "one", "SELECT 1;\n")
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE seaql_migrations (version varchar PRIMARY KEY, applied_at bigint NOT NULL)")
    r = cli("--dir", str(mdir), "adopt", "--table", "public.seaql_migrations", url=db_url)
    assert r.returncode == 2
    assert ("--table / MIGRATIONS_TABLE names public.seaql_migrations, sea-orm-cli's table, as this runner's tracking "
            "table; name the table to adopt with --from-table SCHEMA.NAME") in r.stderr
    assert tables(db_url) == {"seaql_migrations"}


def test_history_in_the_default_place_is_not_silently_ignored(cli, db_url, mdir):
    mdir.add(1, "one", "CREATE TABLE one (id int);\n")
    assert cli("--dir", str(mdir), "up", url=db_url).returncode == 0
    for extra in ([], ["--sql"]):
        r = cli("--dir", str(mdir), "--table", CUSTOM, "up", *extra, url=db_url)
        assert r.returncode == 1
        assert ("public.schema_migrations holds the history of this folder (1 of its migrations, up to 0001_one), "
                "but another tracking table is configured (--table / MIGRATIONS_TABLE) and has none: nothing was "
                "changed") in r.stderr
    assert tables(db_url, "app_meta") == set()
    r = cli("--dir", str(mdir), "adopt", "--table", CUSTOM, url=db_url)
    assert r.returncode == 1 and tables(db_url, "app_meta") == set()
    # another project's history in the default table is no reason to stop: two folders, two tables
    other = mdir.path.parent / "plugin"
    other.mkdir()
    (other / "0001_plugin.up.sql").write_text("CREATE TABLE plugin (id int);\n")
    r = cli("--dir", str(other), "--table", "plugin.migrations", "up", url=db_url)
    assert r.returncode == 0, r.stderr
    assert rows_of(db_url, "plugin.migrations") == {1: ["plugin", False]}
    assert rows_of(db_url, "public.schema_migrations") == {1: ["one", False]}


# --- check and fleet ---


def test_check_and_fleet_read_the_table_they_are_given(cli, db_url, mdir, tmp_path):
    write(mdir)
    t = ("--dir", str(mdir), "--table", CUSTOM)
    assert cli(*t, "up", url=db_url).returncode == 0
    r = cli(*t, "check", "--against", db_url, "--format", "json", url=db_url)
    assert r.returncode == 0, r.stdout + r.stderr
    findings = json.loads(r.stdout)["findings"]
    assert [f for f in findings if f["rule"] == "drift"] == []  # our tables are not part of the schema
    assert [f for f in findings if "migrations" in f["message"]] == []

    targets = tmp_path / "targets.txt"
    targets.write_text(f"one {db_url}\n")
    r = cli(*t, "--targets", str(targets), "version", "--format", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["targets"][0]["version"] == 3
    (mdir.path / "R__item_count.sql").write_text("SELECT 1;\n")
    r = cli(*t, "--targets", str(targets), "status", "--check")
    assert r.returncode == 1 and "not up to date: 1 repeatable pending" in r.stdout + r.stderr
