"""Repeatable migrations (``R__name.sql``): applied after the versioned migrations of a run that
leaves none pending, in name order, whenever the file's checksum differs from the one recorded in
``schema_migrations_repeatables``; in-process or through psql like any file; shown by ``status``,
planned by ``--sql``, never rolled back."""

from __future__ import annotations

import json
import subprocess

import psycopg
import pytest
from helpers import query, tables, tracked

from pgmigrate import api, sqltext

REPEATABLES = "public.schema_migrations_repeatables"
TABLE = "CREATE TABLE items (id int PRIMARY KEY, price numeric NOT NULL);\n"
FUNCTION = ("CREATE OR REPLACE FUNCTION item_total() RETURNS numeric LANGUAGE sql\n"
            "  AS $$ SELECT coalesce(sum(price), 0) {} FROM items $$;\n")
VIEW = "CREATE OR REPLACE VIEW cheap_items AS SELECT id FROM items WHERE price < 10;\n"


def repeated(url: str, table: str = REPEATABLES) -> dict[str, tuple]:
    """name -> (checksum, applied_at) of the repeatables' table ({} when it does not exist)."""
    if not query(url, "SELECT to_regclass(%s)", (table,))[0][0]:
        return {}
    return {name: rest for name, *rest in query(url, f"SELECT name, checksum, applied_at FROM {table}")}


def function_source(url: str) -> str:
    return query(url, "SELECT prosrc FROM pg_proc WHERE proname = 'item_total'")[0][0].strip()


def write(mdir, *, function: str = "", down: bool = True) -> None:
    mdir.add(1, "items", TABLE, "DROP TABLE items;\n" if down else None)
    (mdir.path / "R__item_total.sql").write_text(FUNCTION.format(function))
    (mdir.path / "R__cheap_items.sql").write_text(VIEW)


def applied_lines(stdout: str) -> list[list[str]]:
    return [line.split()[:2] for line in stdout.splitlines() if line.startswith(("applied", "would apply"))]


def checksum_of(path) -> str:
    return sqltext.checksum(path.read_text())


# --- applied once, again only when changed ---


def test_applied_after_the_versioned_ones_once_then_only_when_changed(cli, db_url, mdir):
    write(mdir)
    r = cli("--dir", str(mdir), "up", url=db_url)
    assert r.returncode == 0, r.stderr
    assert applied_lines(r.stdout) == [["applied", "0001_items"], ["applied", "R__cheap_items"],
                                       ["applied", "R__item_total"]]  # versioned first, then by name
    assert "1 migration(s) and 2 repeatable migration(s) applied" in r.stdout
    first = repeated(db_url)
    assert {name: row[0] for name, row in first.items()} == {
        "cheap_items": checksum_of(mdir.path / "R__cheap_items.sql"),
        "item_total": checksum_of(mdir.path / "R__item_total.sql")}
    assert function_source(db_url) == "SELECT coalesce(sum(price), 0)  FROM items"
    assert set(tracked(db_url)) == {1}  # the versioned table holds versioned migrations only

    r = cli("--dir", str(mdir), "up", url=db_url)
    assert r.returncode == 0 and "nothing to apply" in r.stdout
    # formatting-only edits (CRLF, trailing blanks) are no change, as for versioned files
    (mdir.path / "R__cheap_items.sql").write_bytes(VIEW.replace("\n", "  \r\n").encode() + b"\r\n\r\n")
    r = cli("--dir", str(mdir), "up", url=db_url)
    assert r.returncode == 0 and "nothing to apply" in r.stdout
    assert repeated(db_url) == first

    (mdir.path / "R__item_total.sql").write_text(FUNCTION.format("+ 1"))
    r = cli("--dir", str(mdir), "up", url=db_url)
    assert r.returncode == 0, r.stderr
    assert applied_lines(r.stdout) == [["applied", "R__item_total"]]
    assert "1 repeatable migration(s) applied" in r.stdout
    assert function_source(db_url) == "SELECT coalesce(sum(price), 0) + 1 FROM items"
    after = repeated(db_url)
    assert after["cheap_items"] == first["cheap_items"]  # not run again: same row, same time
    assert after["item_total"][0] == checksum_of(mdir.path / "R__item_total.sql") != first["item_total"][0]
    assert after["item_total"][1] > first["item_total"][1]


def test_through_psql_with_variables_and_the_escape_guard(cli, db_url, mdir):
    mdir.add(1, "items", TABLE)
    path = mdir.path / "R__item_total.sql"

    def through_psql(n: int) -> str:  # a meta-command and a variable: psql runs the file
        return (f"\\set note 'version {n}'\n" + FUNCTION.format(f"+ {n}")
                + "COMMENT ON FUNCTION item_total() IS :'note';\n")

    def comment() -> str:
        return query(db_url, "SELECT obj_description('item_total'::regproc, 'pg_proc')")[0][0]

    path.write_text(through_psql(2))
    r = cli("--dir", str(mdir), "up", url=db_url)
    assert r.returncode == 0, r.stderr
    assert function_source(db_url) == "SELECT coalesce(sum(price), 0) + 2 FROM items"
    assert comment() == "version 2"
    assert repeated(db_url)["item_total"][0] == checksum_of(path)

    path.write_text(through_psql(3))
    r = cli("--dir", str(mdir), "up", url=db_url)
    assert r.returncode == 0 and applied_lines(r.stdout) == [["applied", "R__item_total"]]
    assert function_source(db_url) == "SELECT coalesce(sum(price), 0) + 3 FROM items" and comment() == "version 3"
    assert repeated(db_url)["item_total"][0] == checksum_of(path)

    # a file that ends the transaction holding its row (\gexec hides the COMMIT from the lexer):
    # what it did is committed, and the row says 'to be applied again'
    path.write_text(FUNCTION.format("+ 4") + "SELECT 'COMMIT' \\gexec\nCREATE TABLE after_commit (id int);\n")
    r = cli("--dir", str(mdir), "up", url=db_url)
    assert r.returncode == 1
    assert "the file ended the transaction that holds its tracking row" in r.stderr
    assert function_source(db_url) == "SELECT coalesce(sum(price), 0) + 4 FROM items"
    assert repeated(db_url)["item_total"][0] is None
    assert "after_commit" in tables(db_url)
    status = json.loads(cli("--dir", str(mdir), "status", "--format", "json", url=db_url).stdout)
    assert status["repeatables"][0]["state"] == "pending" and not status["clean"]


def test_no_transaction_repeatable_runs_statement_by_statement(cli, db_url, mdir):
    mdir.add(1, "items", TABLE)
    path = mdir.path / "R__item_indexes.sql"
    path.write_text("-- migrate:no-transaction\n"
                    "CREATE INDEX CONCURRENTLY IF NOT EXISTS items_price_idx ON items (price);\n"
                    "CREATE INDEX CONCURRENTLY IF NOT EXISTS items_missing_idx ON items (missing);\n")
    r = cli("--dir", str(mdir), "up", url=db_url)
    assert r.returncode == 1 and "R__item_indexes.sql:3:" in r.stderr
    assert tracked(db_url) == {1: ("items", tracked(db_url)[1][1], False)}  # the versioned one committed
    assert query(db_url, "SELECT indexname FROM pg_indexes WHERE tablename = 'items' ORDER BY 1") == [
        ("items_pkey",), ("items_price_idx",)]  # the first statement ran
    assert repeated(db_url)["item_indexes"][0] is None  # marked before it ran: still to be applied

    path.write_text(path.read_text().replace("(missing)", "(id, price)"))
    r = cli("--dir", str(mdir), "up", url=db_url)
    assert r.returncode == 0, r.stderr
    assert applied_lines(r.stdout) == [["applied", "R__item_indexes"]]
    assert repeated(db_url)["item_indexes"][0] == checksum_of(path)
    assert ("items_missing_idx",) in query(db_url, "SELECT indexname FROM pg_indexes WHERE tablename = 'items'")


def test_a_failing_repeatable_rolls_back_alone_and_stays_pending(cli, db_url, mdir):
    write(mdir)
    (mdir.path / "R__cheap_items.sql").write_text("CREATE OR REPLACE VIEW cheap_items AS SELECT nope FROM items;\n")
    r = cli("--dir", str(mdir), "up", url=db_url)
    assert r.returncode == 1
    assert "R__cheap_items.sql:1: column \"nope\" does not exist" in r.stderr
    assert set(tracked(db_url)) == {1}  # the versioned migration before it committed
    assert repeated(db_url) == {}  # the failed one left no row; the one after it did not run
    r = cli("--dir", str(mdir), "status", "--check", url=db_url)
    assert r.returncode == 1 and "repeatable: 0 applied, 2 pending" in r.stdout


# --- when they run: after a run that leaves nothing pending ---


def test_partial_runs_leave_them_for_the_run_that_reaches_the_newest(cli, db_url, mdir):
    write(mdir)
    mdir.add(2, "more", "ALTER TABLE items ADD COLUMN name text;\n", "ALTER TABLE items DROP COLUMN name;\n")
    r = cli("--dir", str(mdir), "up", "--to", "1", url=db_url)
    assert r.returncode == 0 and applied_lines(r.stdout) == [["applied", "0001_items"]]
    assert repeated(db_url) == {}
    r = cli("--dir", str(mdir), "up", "--steps", "1", "--dry-run", url=db_url)
    assert applied_lines(r.stdout) == [["would", "apply"]] * 3  # the last step reaches the newest
    assert "would apply R__item_total" in " ".join(r.stdout.split())
    r = cli("--dir", str(mdir), "up", "--steps", "1", url=db_url)
    assert [x[1] for x in applied_lines(r.stdout)] == ["0002_more", "R__cheap_items", "R__item_total"]


def test_fresh_and_single_transaction_include_them(cli, db_url, mdir):
    write(mdir)
    r = cli("--dir", str(mdir), "up", "--single-transaction", url=db_url)
    assert r.returncode == 0, r.stderr
    assert set(repeated(db_url)) == {"cheap_items", "item_total"}
    r = cli("--dir", str(mdir), "fresh", "--yes", url=db_url)
    assert r.returncode == 0, r.stderr
    assert "dropped everything; 1 migration(s) and 2 repeatable migration(s) applied" in r.stdout
    assert set(repeated(db_url)) == {"cheap_items", "item_total"}

    (mdir.path / "R__item_total.sql").write_text("-- migrate:no-transaction\n" + FUNCTION.format("+ 5"))
    r = cli("--dir", str(mdir), "up", "--single-transaction", url=db_url)
    assert r.returncode == 2
    assert "R__item_total.sql is marked '-- migrate:no-transaction', so it cannot run inside the one transaction" \
        in r.stderr


def test_a_failure_in_single_transaction_undoes_the_whole_run(cli, db_url, mdir):
    write(mdir)
    (mdir.path / "R__cheap_items.sql").write_text("SELECT 1/0;\n")
    r = cli("--dir", str(mdir), "up", "--single-transaction", url=db_url)
    assert r.returncode == 1 and "division by zero" in r.stderr
    assert tracked(db_url) == {} and repeated(db_url) == {} and "items" not in tables(db_url)


# --- never rolled back ---


def test_down_leaves_them_and_marks_them_to_run_again(cli, db_url, mdir):
    write(mdir)
    mdir.add(2, "names", "ALTER TABLE items ADD COLUMN name text;\n", "ALTER TABLE items DROP COLUMN name;\n")
    assert cli("--dir", str(mdir), "up", url=db_url).returncode == 0
    before = repeated(db_url)

    r = cli("--dir", str(mdir), "down", url=db_url)
    assert r.returncode == 0, r.stderr
    assert [line.split()[:3] for line in r.stdout.splitlines()[:1]] == [["rolled", "back", "0002_names"]]
    assert function_source(db_url) == "SELECT coalesce(sum(price), 0)  FROM items"  # not rolled back
    assert "cheap_items" in {v for (v,) in query(db_url, "SELECT viewname FROM pg_views")}
    after = repeated(db_url)
    assert set(after) == set(before)  # the rows stay, with the time they last ran...
    assert [row[1] for row in after.values()] == [row[1] for row in before.values()]
    assert [row[0] for row in after.values()] == [None, None]  # ...marked to be applied again
    status = json.loads(cli("--dir", str(mdir), "status", "--format", "json", url=db_url).stdout)
    assert [(r["name"], r["state"]) for r in status["repeatables"]] == [("cheap_items", "pending"),
                                                                          ("item_total", "pending")]

    r = cli("--dir", str(mdir), "up", url=db_url)
    assert [x[1] for x in applied_lines(r.stdout)] == ["0002_names", "R__cheap_items", "R__item_total"]
    assert all(row[0] for row in repeated(db_url).values())

    r = cli("--dir", str(mdir), "redo", url=db_url)  # down, up, and the repeatables again
    assert r.returncode == 0, r.stderr
    assert [line.split()[-3 if "rolled" in line else 1] for line in r.stdout.splitlines()] == [
        "0002_names", "0002_names", "R__cheap_items", "R__item_total"]
    assert cli("--dir", str(mdir), "status", "--check", url=db_url).returncode == 0


def test_down_without_repeatables_table_writes_nothing_about_them(cli, db_url, mdir):
    mdir.add(1, "items", TABLE, "DROP TABLE items;\n")
    assert cli("--dir", str(mdir), "up", url=db_url).returncode == 0
    r = cli("--dir", str(mdir), "down", "--sql", url=db_url)
    assert "schema_migrations_repeatables" not in r.stdout
    assert cli("--dir", str(mdir), "down", url=db_url).returncode == 0
    assert "schema_migrations_repeatables" not in tables(db_url)


# --- status, verify, --sql ---


def test_status_check_and_verify(cli, db_url, mdir):
    write(mdir)
    r = cli("--dir", str(mdir), "status", url=db_url)
    assert r.returncode == 0
    assert [line.split()[:2] for line in r.stdout.splitlines() if line.startswith("R__")] == [
        ["R__cheap_items", "pending"], ["R__item_total", "pending"]]
    assert cli("--dir", str(mdir), "up", url=db_url).returncode == 0
    r = cli("--dir", str(mdir), "status", "--check", url=db_url)
    assert r.returncode == 0, r.stdout
    assert r.stdout.splitlines()[-1] == "1 applied, 0 pending; current version 1; repeatable: 2 applied, 0 pending"

    (mdir.path / "R__cheap_items.sql").write_text(VIEW.replace("< 10", "< 20"))
    (mdir.path / "R__item_total.sql").rename(mdir.path / "R__item_sum.sql")
    r = cli("--dir", str(mdir), "status", "--check", "--format", "json", url=db_url)
    assert r.returncode == 1
    data = json.loads(r.stdout)
    assert data["clean"] is False and data["repeatables_summary"] == {"applied": 0, "pending": 2, "missing": 1}
    assert [(x["name"], x["file"], x["state"]) for x in data["repeatables"]] == [
        ("cheap_items", "R__cheap_items.sql", "pending"), ("item_sum", "R__item_sum.sql", "pending"),
        ("item_total", "R__item_total.sql", "missing")]
    assert data["repeatables"][0]["applied_at"] and data["repeatables"][1]["applied_at"] is None

    r = cli("--dir", str(mdir), "verify", url=db_url)
    assert r.returncode == 1
    assert r.stdout.splitlines()[0] == ("problem: repeatable migration R__item_total is recorded but its file "
                                        "R__item_total.sql is missing; restore it, or let the next 'up' forget it "
                                        "(what it made stays in the database)")
    r = cli("--dir", str(mdir), "up", url=db_url)  # applies the changed and the new one, forgets the gone one
    assert r.returncode == 0, r.stderr
    assert [x[1] for x in applied_lines(r.stdout)] == ["R__cheap_items", "R__item_sum"]
    assert "forgot      R__item_total" in r.stdout
    assert set(repeated(db_url)) == {"cheap_items", "item_sum"}
    assert cli("--dir", str(mdir), "verify", url=db_url).returncode == 0


def test_bad_repeatable_files_are_refused_before_anything_runs(cli, db_url, mdir):
    write(mdir)
    (mdir.path / "R__has space.sql").write_text("SELECT 1;\n")
    r = cli("--dir", str(mdir), "up", url=db_url)
    assert r.returncode == 2
    assert ("error: R__has space.sql: invalid repeatable migration file name; names may use letters, digits, '_' "
            "and '-' (R__name.sql); rename the file") in r.stderr
    (mdir.path / "R__has space.sql").unlink()
    (mdir.path / "R__item_total.sql").write_text(FUNCTION.format("") + "COMMIT;\n")
    r = cli("--dir", str(mdir), "up", url=db_url)
    assert r.returncode == 2 and "R__item_total.sql:3: COMMIT would end the transaction" in r.stderr
    assert tables(db_url) == set()


def test_sql_plan_includes_them_and_psql_applies_it_like_up(cli, db_url, pg_server, mdir):
    write(mdir)
    (mdir.path / "R__cheap_items.sql").write_text("\\set limit 10\n" + VIEW.replace("10", ":limit"))
    r = cli("--dir", str(mdir), "up", "--sql", url=db_url)
    assert r.returncode == 0, r.stderr
    plan = r.stdout
    assert plan.splitlines()[0].startswith("-- pgmigrate plan: apply 1 migration(s) and 2 repeatable migration(s)")
    assert "-- repeatable R__cheap_items:" in plan and "-- repeatable R__item_total:" in plan
    assert plan.index("-- up 0001_items") < plan.index("-- repeatable R__cheap_items") < plan.index(
        "-- repeatable R__item_total")
    assert tables(db_url) == set()  # --sql touches nothing

    other = pg_server.url(pg_server.create_db())
    try:
        applied = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", other], input=plan, text=True,
                                 capture_output=True)
        assert applied.returncode == 0, applied.stderr
        assert cli("--dir", str(mdir), "up", url=db_url).returncode == 0
        assert {k: v[0] for k, v in repeated(other).items()} == {k: v[0] for k, v in repeated(db_url).items()}
        assert cli("--dir", str(mdir), "status", "--check", url=other).returncode == 0
        r = cli("--dir", str(mdir), "up", "--sql", url=other)
        assert "-- nothing to apply" in r.stdout
    finally:
        pg_server.drop_db(other.rsplit("/", 1)[1])


def test_sql_and_dry_run_are_refused_exactly_like_up(cli, db_url, mdir):
    write(mdir)
    assert cli("--dir", str(mdir), "up", url=db_url).returncode == 0
    before = repeated(db_url)
    (mdir.path / "R__item_total.sql").write_text(FUNCTION.format("+ 9"))  # pending...
    (mdir.path / "0001_items.up.sql").write_text(TABLE + "-- edited\n")  # ...but an applied file changed
    outcomes = [cli("--dir", str(mdir), "up", *extra, url=db_url) for extra in ([], ["--sql"], ["--dry-run"])]
    assert {r.returncode for r in outcomes} == {1}
    assert len({r.stderr for r in outcomes}) == 1 and "0001_items.up.sql changed since it was applied" in \
        outcomes[0].stderr
    assert repeated(db_url) == before and function_source(db_url) == "SELECT coalesce(sum(price), 0)  FROM items"


# --- the Python API, and check ---


def test_api_reports_them_without_a_version(db_url, mdir):
    write(mdir)
    results = api.run_migrations(db_url, migrations_dir=mdir.path)
    assert [(r.action, r.version, r.label) for r in results] == [
        ("applied", 1, "0001_items"), ("applied", None, "R__cheap_items"), ("applied", None, "R__item_total")]
    status = api.status(db_url, migrations_dir=mdir.path)
    assert status.clean and [(r.label, r.state) for r in status.repeatables] == [
        ("R__cheap_items", "applied"), ("R__item_total", "applied")]
    assert api.run_migrations(db_url, migrations_dir=mdir.path) == []


def test_check_runs_them_after_the_migrations_and_compares_drift_with_them(cli, db_url, mdir):
    write(mdir)
    mdir.add(2, "names", "ALTER TABLE items ADD COLUMN name text;\n", "ALTER TABLE items DROP COLUMN name;\n")
    r = cli("--dir", str(mdir), "check", "--format", "json", url=db_url)
    assert r.returncode == 0, r.stdout + r.stderr
    assert [f for f in json.loads(r.stdout)["findings"] if f["severity"] != "info"] == []

    assert cli("--dir", str(mdir), "up", url=db_url).returncode == 0  # the live database, repeatables included
    r = cli("--dir", str(mdir), "check", "--against", db_url, "--format", "json", url=db_url)
    assert r.returncode == 0, r.stdout + r.stderr
    assert [f for f in json.loads(r.stdout)["findings"] if f["rule"] == "drift"] == []
    with psycopg.connect(db_url, autocommit=True) as conn:  # live at version 1: the repeatables ran there too
        conn.execute("ALTER TABLE items DROP COLUMN name")
        conn.execute("DELETE FROM schema_migrations WHERE version = 2")
    r = cli("--dir", str(mdir), "check", "--against", db_url, "--format", "json", url=db_url)
    assert r.returncode == 0, r.stdout + r.stderr
    assert [f for f in json.loads(r.stdout)["findings"] if f["rule"] == "drift"] == []

    (mdir.path / "R__cheap_items.sql").write_text("CREATE OR REPLACE VIEW cheap_items AS SELECT nope FROM items;\n")
    r = cli("--dir", str(mdir), "check", "--format", "json", url=db_url)
    assert r.returncode == 1
    errors = [f for f in json.loads(r.stdout)["findings"] if f["severity"] == "error"]
    assert [(f["rule"], f["file"].rsplit("/", 1)[-1]) for f in errors] == [("up-fails", "R__cheap_items.sql")]
    assert 'column "nope" does not exist' in errors[0]["message"]


@pytest.mark.parametrize("changed", [False, True])
def test_flyway_repeatables_import_adopt_and_apply(changed, cli, db_url, tmp_path):
    src = tmp_path / "flyway"
    src.mkdir()
    (src / "V1__items.sql").write_text(TABLE)
    (src / "R__Item total.sql").write_text(FUNCTION.format(""))  # Flyway's description: "Item total"
    dest = tmp_path / "migrations"
    r = cli("--dir", str(dest), "import", "--from", "flyway", str(src))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["010000_items.up.sql", "R__Item_total.sql"]

    # the database Flyway built: the table, the function, and its history with Flyway's checksums
    from test_formats import flyway_crc

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(TABLE + FUNCTION.format(""))
        conn.execute('CREATE TABLE flyway_schema_history (installed_rank int PRIMARY KEY, "version" varchar(50), '
                     "description varchar(200) NOT NULL, type varchar(20) NOT NULL, script varchar(1000) NOT NULL, "
                     "checksum int, installed_by varchar(100) NOT NULL, installed_on timestamp NOT NULL DEFAULT now(), "
                     "execution_time int NOT NULL, success boolean NOT NULL)")
        ran = FUNCTION.format("- 1" if changed else "")  # Flyway ran another text of it last, when 'changed'
        for rank, version, description, script, crc in (
                (1, "1", "items", "V1__items.sql", flyway_crc(TABLE)),
                (2, None, "Item total", "R__Item total.sql", flyway_crc(FUNCTION.format("- 2"))),
                (3, None, "Item total", "R__Item total.sql", flyway_crc(ran))):
            conn.execute("INSERT INTO flyway_schema_history VALUES (%s, %s, %s, 'SQL', %s, %s, 'ci', "
                         "'2024-01-01 12:00:00', 7, true)", (rank, version, description, script, crc))
    r = cli("--dir", str(dest), "adopt", url=db_url)
    assert r.returncode == 0, r.stderr
    if changed:
        assert "pending R__Item_total: changed since Flyway ran it; 'up' applies it" in r.stdout
        assert repeated(db_url) == {}
    else:
        assert "record R__Item_total: applied at 2024-01-01 12:00:00" in r.stdout
        assert {k: v[0] for k, v in repeated(db_url).items()} == {"Item_total": checksum_of(dest / "R__Item_total.sql")}
    r = cli("--dir", str(dest), "status", "--check", url=db_url)
    assert r.returncode == (1 if changed else 0), r.stdout
    r = cli("--dir", str(dest), "up", url=db_url)
    assert r.returncode == 0, r.stderr
    assert applied_lines(r.stdout) == ([["applied", "R__Item_total"]] if changed else [])
    assert cli("--dir", str(dest), "status", "--check", url=db_url).returncode == 0

    (dest / "R__Item_total.sql").write_text(FUNCTION.format("* 2"))  # then changed here: applied again
    r = cli("--dir", str(dest), "up", url=db_url)
    assert applied_lines(r.stdout) == [["applied", "R__Item_total"]]
    assert function_source(db_url) == "SELECT coalesce(sum(price), 0) * 2 FROM items"


def test_flyway_checksum_is_flyways():
    from test_formats import flyway_crc

    from pgmigrate.formats.flyway import checksum

    # java.util.zip.CRC32 over the lines' bytes, as a Java int: the value ebean's migration index (which
    # computes it the same way) records for a file holding '2b'
    assert checksum("2b\n") == checksum("2b\r\n") == checksum("\ufeff2b") == 253052666
    assert checksum("a\n") == flyway_crc("a\n") == -390611389  # above 2**31 unsigned: negative, as Java stores it
