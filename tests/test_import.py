"""Importing other tools' migrations folders: the converted files, applied with ``up``, give the
schema the original SQL gives when run directly; downs undo it; no-transaction markers carry over."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from helpers import query, tables, tracked

from pgmigrate.discovery import SqlFile

# The migrations every format below expresses: (name, up statements, down statements).
FUNCTION = """CREATE FUNCTION lower_email() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.email := lower(NEW.email);
    RETURN NEW;
END;
$$"""
MIGRATIONS = [
    ("create_users",
     ["CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL)"],
     ["DROP TABLE users"]),
    ("add_email",
     ["ALTER TABLE users ADD COLUMN email text", FUNCTION,
      "CREATE TRIGGER users_lower_email BEFORE INSERT OR UPDATE ON users FOR EACH ROW EXECUTE FUNCTION lower_email()"],
     ["DROP TRIGGER users_lower_email ON users", "DROP FUNCTION lower_email()", "ALTER TABLE users DROP COLUMN email"]),
    ("users_email_index",  # cannot run in a transaction: each tool's way of saying so must carry over
     ["CREATE INDEX CONCURRENTLY users_email_idx ON users (email)"],
     ["DROP INDEX CONCURRENTLY users_email_idx"]),
]


def sql(statements: list[str]) -> str:
    return "".join(s + ";\n" for s in statements)


# --- writing the same migrations in each tool's format ---


def write_dbmate(src: Path) -> list[str]:
    stamps = ["20240101120000", "20240102120000", "20240103120000"]
    for stamp, (name, up, down) in zip(stamps, MIGRATIONS):
        option = " transaction:false" if "CONCURRENTLY" in up[0] else ""
        (src / f"{stamp}_{name}.sql").write_text(
            f"-- migrate:up{option}\n{sql(up)}\n-- migrate:down{option}\n{sql(down)}")
    return [f"{s}_{n}" for s, (n, _, _) in zip(stamps, MIGRATIONS)]


def write_goose(src: Path) -> list[str]:
    for number, (name, up, down) in enumerate(MIGRATIONS, start=1):
        header = "-- +goose NO TRANSACTION\n" if "CONCURRENTLY" in up[0] else ""
        up_text = "".join(
            # a function body between StatementBegin/End, without the final ';' goose does not need there
            f"-- +goose StatementBegin\n{s}\n-- +goose StatementEnd\n" if s == FUNCTION else s + ";\n" for s in up)
        (src / f"{number:05d}_{name}.sql").write_text(
            f"{header}-- +goose Up\n{up_text}\n-- +goose Down\n-- +goose StatementBegin\n{sql(down)}"
            "-- +goose StatementEnd\n")
    return [f"{n:06d}_{name}" for n, (name, _, _) in enumerate(MIGRATIONS, start=1)]


FLYWAY_VERSIONS = {"1": 10000, "1.1": 10100, "2.0.3": 20003}  # Flyway's version -> ours (formats/flyway.py)


def write_flyway(src: Path) -> list[str]:
    (src / "sub").mkdir()
    for number, (text, (name, up, down)) in enumerate(zip(FLYWAY_VERSIONS, MIGRATIONS), start=1):
        folder = src / "sub" if number == 2 else src  # Flyway reads its locations recursively
        written = text.replace(".", "_") if number == 2 else text  # '_' may stand for '.'
        (folder / f"V{written}__{name}.sql").write_text(sql(up))
        (folder / f"U{written}__{name}.sql").write_text(sql(down))
    return [f"{v:06d}_{name}" for v, (name, _, _) in zip(FLYWAY_VERSIONS.values(), MIGRATIONS)]


def write_golang_migrate(src: Path) -> list[str]:
    for number, (name, up, down) in enumerate(MIGRATIONS, start=1):
        title = name.replace("_", " ") if number == 1 else name  # a title that needs cleaning
        wrap = number == 1  # a file wrapped in its own transaction
        text = f"BEGIN;\n{sql(up)}COMMIT;\n" if wrap else sql(up)
        (src / f"{number}_{title}.up.sql").write_text(text)
        (src / f"{number}_{title}.down.sql").write_text(sql(down))
    return [f"{n:06d}_{name}" for n, (name, _, _) in enumerate(MIGRATIONS, start=1)]


WRITERS: dict[str, Callable[[Path], list[str]]] = {
    "dbmate": write_dbmate, "goose": write_goose, "flyway": write_flyway, "golang-migrate": write_golang_migrate,
}


def schema(url: str) -> tuple:
    """What the migrations built: columns, indexes (and whether valid), triggers, functions."""
    return (
        query(url, "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
                   "WHERE table_schema = 'public' AND table_name <> 'schema_migrations' ORDER BY 1, 2"),
        query(url, "SELECT c.relname, pg_get_indexdef(i.indexrelid), i.indisvalid FROM pg_index i "
                   "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid "
                   "WHERE t.relnamespace = 'public'::regnamespace AND t.relname <> 'schema_migrations' ORDER BY 1"),
        query(url, "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1"),
        query(url, "SELECT proname, prosrc FROM pg_proc WHERE pronamespace = 'public'::regnamespace ORDER BY 1"),
    )


@pytest.mark.parametrize("tool", list(WRITERS))
def test_imported_folder_builds_the_same_schema_and_rolls_back(tool, src, tmp_path, db_url, other_url, cli):
    labels = WRITERS[tool](src)
    dest = tmp_path / "migrations"
    r = cli("--dir", str(dest), "import", "--from", tool, str(src))
    assert r.returncode == 0, r.stderr
    expected = sorted(f"{label}.{d}.sql" for label in labels for d in ("up", "down"))
    assert sorted(p.name for p in dest.iterdir()) == expected
    assert sorted(Path(line).name for line in r.stdout.splitlines()) == expected
    for label in labels:
        up = (dest / f"{label}.up.sql").read_text()
        down = (dest / f"{label}.down.sql").read_text()
        concurrent = "CONCURRENTLY" in up
        assert up.startswith("-- migrate:no-transaction\n") == concurrent
        assert down.startswith("-- migrate:no-transaction\n") == concurrent
        assert "+goose" not in up + down and "migrate:up" not in up and "migrate:down" not in down
        assert "BEGIN;" not in up and "COMMIT;" not in up

    r = cli("--dir", str(dest), "up", url=db_url)
    assert r.returncode == 0, r.stderr
    for _, up, _ in MIGRATIONS:  # the original SQL, statement by statement, as each tool would run it
        with psycopg.connect(other_url, autocommit=True) as conn:
            conn.execute(sql(up))
    assert schema(db_url) == schema(other_url)
    assert query(db_url, "SELECT count(*) FROM pg_index WHERE indexrelid = 'users_email_idx'::regclass "
                         "AND indisvalid") == [(1,)]
    assert sorted(tracked(db_url)) == sorted(int(label.split("_")[0]) for label in labels)

    r = cli("--dir", str(dest), "down", "--all", url=db_url)
    assert r.returncode == 0, r.stderr
    assert tables(db_url) == {"schema_migrations"}
    assert schema(db_url) == ([], [], [], [])
    assert tracked(db_url) == {}


def test_versions_keep_their_width_and_names_are_cleaned(src, tmp_path, cli):
    (src / "20240101120000_create widgets!.sql").write_text("-- migrate:up\nCREATE TABLE w ();\n-- migrate:down\n")
    (src / "7_x.sql").write_text("-- comment\n\n-- migrate:up\n-- nothing to do yet\n-- migrate:down\n")
    dest = tmp_path / "migrations"
    r = cli("--dir", str(dest), "import", "--from", "dbmate", str(src))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["000007_x.down.sql", "000007_x.up.sql",
                                                      "20240101120000_create_widgets.down.sql",
                                                      "20240101120000_create_widgets.up.sql"]
    # an empty up keeps its version, and an empty down block stays a down, each with a no-op the runner accepts
    assert "SELECT 1;" in (dest / "000007_x.up.sql").read_text()
    assert "SELECT 1;" in (dest / "000007_x.down.sql").read_text()
    for path in dest.iterdir():
        SqlFile(path).check_runnable()  # raises FileError for a file the runner would refuse


def test_import_never_overwrites_and_writes_nothing_on_a_clash(src, tmp_path, cli):
    write_golang_migrate(src)
    dest = tmp_path / "migrations"
    dest.mkdir()
    (dest / "000003_users_email_index.down.sql").write_text("-- mine\n")
    r = cli("--dir", str(dest), "import", "--from", "golang-migrate", str(src))
    assert r.returncode == 2
    assert "000003_users_email_index.down.sql already exists; import never overwrites" in r.stderr
    assert [p.name for p in dest.iterdir()] == ["000003_users_email_index.down.sql"]
    assert (dest / "000003_users_email_index.down.sql").read_text() == "-- mine\n"

    (dest / "000003_users_email_index.down.sql").unlink()
    (dest / "000002_something_else.up.sql").write_text("SELECT 1;\n")
    r = cli("--dir", str(dest), "import", "--from", "golang-migrate", str(src))
    assert r.returncode == 2
    assert "000002_something_else.up.sql already has version 2" in r.stderr
    assert [p.name for p in dest.iterdir()] == ["000002_something_else.up.sql"]


def test_flyway_repeatables_become_ours_and_what_has_no_equivalent_is_refused(src, tmp_path, cli):
    dest = tmp_path / "migrations"
    (src / "V1__init.sql").write_text("CREATE TABLE a ();\n")
    (src / "R__views.sql").write_text("CREATE OR REPLACE VIEW v AS SELECT 1;\n")
    (src / "V1.2.3.4__deep.sql").write_text("ALTER TABLE a ADD COLUMN d int;\n")
    r = cli("--dir", str(dest), "import", "--from", "flyway", str(src))
    assert r.returncode == 2
    assert "V1.2.3.4__deep.sql: Flyway version 1.2.3.4 has 4 parts; at most 3 map to a whole number" in r.stderr
    assert not dest.exists()

    (src / "V1.2.3.4__deep.sql").rename(src / "V1.100__wide.sql")
    r = cli("--dir", str(dest), "import", "--from", "flyway", str(src))
    assert r.returncode == 2
    assert "Flyway version 1.100 has a part above 99 after the first" in r.stderr
    (src / "V1.100__wide.sql").unlink()

    (src / "beforeMigrate.sql").write_text("SELECT 1;\n")
    r = cli("--dir", str(dest), "import", "--from", "flyway", str(src))
    assert r.returncode == 2
    assert "not supported: beforeMigrate.sql (callbacks" in r.stderr
    assert not dest.exists()
    (src / "beforeMigrate.sql").unlink()

    (src / "V2.0__tweak.sql").write_text("ALTER TABLE a ADD COLUMN b int;\n")  # 2.0 is 2 to Flyway too
    (src / "V2.0__tweak.sql.conf").write_text("# per-script configuration\nexecuteInTransaction=false\n")
    r = cli("--dir", str(dest), "import", "--from", "flyway", str(src))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["010000_init.up.sql", "020000_tweak.up.sql", "R__views.sql"]
    assert (dest / "020000_tweak.up.sql").read_text() == "-- migrate:no-transaction\nALTER TABLE a ADD COLUMN b int;\n"
    assert (dest / "010000_init.up.sql").read_text() == "CREATE TABLE a ();\n"
    assert (dest / "R__views.sql").read_text() == "CREATE OR REPLACE VIEW v AS SELECT 1;\n"


def test_goose_go_migrations_and_envsub_are_refused(src, tmp_path, cli):
    dest = tmp_path / "migrations"
    (src / "00001_init.sql").write_text("-- +goose Up\nCREATE TABLE a ();\n")
    (src / "00002_backfill.go").write_text("package migrations\n")
    r = cli("--dir", str(dest), "import", "--from", "goose", str(src))
    assert r.returncode == 2
    assert "goose Go migrations cannot be imported (00002_backfill.go)" in r.stderr
    (src / "00002_backfill.go").unlink()
    (src / "00002_env.sql").write_text("-- +goose Up\n-- +goose ENVSUB ON\nCREATE TABLE ${T} ();\n")
    r = cli("--dir", str(dest), "import", "--from", "goose", str(src))
    assert r.returncode == 2
    assert "00002_env.sql:2: '-- +goose ENVSUB ON'" in r.stderr
    assert not dest.exists()


def test_imported_golang_migrate_folder_lines_up_with_the_adopted_database(src, tmp_path, db_url, cli):
    write_golang_migrate(src)
    with psycopg.connect(db_url, autocommit=True) as conn:  # the database golang-migrate left at version 2
        for _, up, _ in MIGRATIONS[:2]:
            conn.execute(sql(up))
        conn.execute('CREATE TABLE IF NOT EXISTS "public"."schema_migrations" '
                     "(version bigint not null primary key, dirty boolean not null)")
        conn.execute("INSERT INTO schema_migrations (version, dirty) VALUES (2, false)")
    dest = tmp_path / "migrations"
    assert cli("--dir", str(dest), "import", "--from", "golang-migrate", str(src)).returncode == 0
    r = cli("--dir", str(dest), "adopt", url=db_url)
    assert r.returncode == 0, r.stderr
    r = cli("--dir", str(dest), "status", "--format", "json", url=db_url)
    assert [(m["version"], m["state"]) for m in json.loads(r.stdout)["migrations"]] == [
        (1, "applied"), (2, "applied"), (3, "pending")]
    r = cli("--dir", str(dest), "up", url=db_url)
    assert r.returncode == 0, r.stderr
    assert query(db_url, "SELECT indexname FROM pg_indexes WHERE indexname = 'users_email_idx'") == [
        ("users_email_idx",)]
