"""``check``: migrations run on a throwaway database, and what PostgreSQL says they did.

Every test runs the CLI as a user would, with DATABASE_URL pointing at an empty test database (the
configured one, which check must never touch) and reads the JSON report; the shadow database it
names on stderr must be gone afterwards.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess

import pytest
from helpers import PAUSE, ROOT, finish, free_port, query, start_runner, tables, tracked, wait_until

SHADOW = re.compile(r"shadow database (pgm_check_[0-9a-f]+)")

ECHO_UPS = sorted((ROOT / "migrations/postgres").glob("*.up.sql"))
ECHO_NEWEST = int(ECHO_UPS[-1].name.split("_", 1)[0])


def check(cli, mdir, url: str | None, *args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess,
                                                                                   list[dict], dict]:
    """Run ``check --format json`` on ``mdir``; return the process, the findings and the summary."""
    proc = cli("--dir", str(mdir), "check", "--format", "json", *args, url=url, env=env)
    assert proc.returncode in (0, 1), proc.stderr
    data = json.loads(proc.stdout)
    return proc, data["findings"], data["summary"]


def shadow_name(stderr: str) -> str:
    m = SHADOW.search(stderr)
    assert m, stderr
    return m.group(1)


def database_exists(pg_server, name: str) -> bool:
    return bool(query(pg_server.url("postgres"), "SELECT 1 FROM pg_database WHERE datname = %s", (name,)))


def rules_of(findings: list[dict]) -> list[str]:
    return [f["rule"] for f in findings]


def untouched(url: str) -> None:
    """The configured database: still empty, no tracking table."""
    assert tables(url) == set()
    assert tracked(url) == {}


# --- down files ---


def test_clean_migrations_pass_and_leave_nothing_behind(cli, mdir, db_url, pg_server):
    mdir.add(1, "accounts", "CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL UNIQUE);\n"
             "CREATE INDEX accounts_email_lower ON accounts (lower(email));\n", "DROP TABLE accounts;\n")
    mdir.add(2, "orders", "CREATE TABLE orders (id bigint PRIMARY KEY, account_id bigint REFERENCES accounts,\n"
             "  amount numeric CHECK (amount >= 0));\nCREATE FUNCTION order_total() RETURNS numeric LANGUAGE sql\n"
             "  AS $$ SELECT coalesce(sum(amount), 0) FROM orders $$;\n",
             "DROP FUNCTION order_total();\nDROP TABLE orders;\n")
    mdir.add(3, "psql_run", "\\set kind 'plain'\nCREATE TABLE notes (id int, kind text DEFAULT :'kind');\n",
             "\\set tbl notes\nDROP TABLE :tbl;\n")
    proc, findings, summary = check(cli, mdir, db_url)
    assert proc.returncode == 0, proc.stdout
    assert findings == []
    assert summary["checked"] == summary["migrations"] == 3
    assert summary["errors"] == summary["warnings"] == summary["info"] == 0
    assert not database_exists(pg_server, shadow_name(proc.stderr))
    untouched(db_url)


@pytest.mark.parametrize("psql", [False, True], ids=["in-process", "psql-run"])
def test_down_that_forgets_a_table(cli, mdir, db_url, pg_server, psql):
    head = "\\set x 1\n" if psql else ""
    mdir.add(1, "two_tables", head + "CREATE TABLE kept (id int);\nCREATE TABLE forgotten (id int);\n",
             head + "DROP TABLE kept;\n")
    proc, findings, _ = check(cli, mdir, db_url)
    assert proc.returncode == 1
    down = [f for f in findings if f["rule"] == "down-not-reverting"]
    assert down[0]["severity"] == "error"
    assert down[0]["file"].endswith("0001_two_tables.down.sql")
    assert "table public.forgotten is still there after the down file" in down[0]["message"]
    # up again then fails on the table the down file left
    assert any("after up and down, the up file fails" in f["message"] and "forgotten" in f["message"]
               for f in down), down
    text = cli("--dir", str(mdir), "check", url=db_url)
    assert re.search(r"^\S*0001_two_tables\.down\.sql:1: error: down-not-reverting: table public\.forgotten",
                     text.stdout, re.M), text.stdout
    assert not database_exists(pg_server, shadow_name(proc.stderr))
    untouched(db_url)


def test_up_down_up_that_differs_from_the_first_up(cli, mdir, db_url):
    mdir.add(1, "widen", "CREATE TABLE IF NOT EXISTS t (a int);\nALTER TABLE t ADD COLUMN IF NOT EXISTS b int;\n",
             "ALTER TABLE t DROP COLUMN a;\n")
    proc, findings, _ = check(cli, mdir, db_url)
    messages = [f["message"] for f in findings if f["rule"] == "down-not-reverting"]
    assert "table public.t is still there after the down file; it did not exist before the up file" in messages
    assert "after up, down and up again, column public.t.a is missing; the first up created it" in messages
    assert proc.returncode == 1


def test_a_migration_without_down_file_is_info(cli, mdir, db_url):
    mdir.add(1, "no_down", "CREATE TABLE t (a int);\n")
    proc, findings, _ = check(cli, mdir, db_url)
    assert proc.returncode == 0
    assert [(f["rule"], f["severity"]) for f in findings] == [("down-not-reverting", "info")]
    assert "has no down file" in findings[0]["message"]


def test_an_up_file_that_fails_stops_the_check_and_drops_the_shadow(cli, mdir, db_url, pg_server):
    mdir.add(1, "ok", "CREATE TABLE t (a int);\n", "DROP TABLE t;\n")
    mdir.add(2, "broken", "ALTER TABLE t ADD COLUMN b int;\nALTER TABLE missing ADD COLUMN c int;\n",
             "ALTER TABLE t DROP COLUMN b;\n")
    mdir.add(3, "later", "CREATE TABLE u (a int);\n", "DROP TABLE u;\n")
    proc, findings, summary = check(cli, mdir, db_url)
    assert proc.returncode == 1
    fail = [f for f in findings if f["rule"] == "up-fails"]
    assert len(fail) == 1 and fail[0]["line"] == 2 and fail[0]["version"] == 2
    assert 'relation "missing" does not exist' in fail[0]["message"]
    assert summary["checked"] == 1
    assert not database_exists(pg_server, shadow_name(proc.stderr))
    untouched(db_url)


# --- hazards: each on an existing table, none on a table the same migration created ---

HAZARDS = [  # (rule, statement on table {t}, severity); each runs last in its file, so no lock is held on
    ("index-without-concurrently", "CREATE INDEX {t}_a_idx ON {t} (a);", "warning"),
    ("table-rewrite", "ALTER TABLE {t} ALTER COLUMN a TYPE bigint;", "warning"),
    ("table-rewrite", "ALTER TABLE {t} ADD COLUMN created timestamptz DEFAULT clock_timestamp();", "warning"),
    ("constraint-validation", "ALTER TABLE {t} ADD CONSTRAINT {t}_a_check CHECK (a > 0);", "warning"),
    ("constraint-validation", "ALTER TABLE {t} ADD CONSTRAINT {t}_ref_fk FOREIGN KEY (a) REFERENCES ref (id);",
     "warning"),
    ("constraint-validation", "ALTER TABLE {t} ALTER COLUMN a SET NOT NULL;", "warning"),
    ("access-exclusive-lock", "ALTER TABLE {t} ADD COLUMN note text;", "info"),
]


def test_each_hazard_on_an_existing_table_and_not_on_a_new_one(cli, mdir, db_url):
    mdir.add(1, "base", "CREATE TABLE ref (id int PRIMARY KEY);\nCREATE TABLE old (id int PRIMARY KEY, a int);\n")
    for version, (_, statement, _) in enumerate(HAZARDS, start=2):  # no down files: only the up files run
        mdir.add(version, f"hazard_{version}", "SELECT 1;\n" + statement.format(t="old") + "\n")
    new = len(HAZARDS) + 2
    mdir.add(new, "on_new", "CREATE TABLE fresh (id int PRIMARY KEY, a int);\n"
             + "".join(statement.format(t="fresh") + "\n" for _, statement, _ in HAZARDS))
    proc, findings, _ = check(cli, mdir, db_url)
    hazards = [f for f in findings if f["rule"] != "down-not-reverting"]
    expected = [(version, rule, 2, "public.old", severity)
                for version, (rule, _, severity) in enumerate(HAZARDS, start=2)]
    assert [(f["version"], f["rule"], f["line"], f["table"], f["severity"]) for f in hazards] == expected, hazards
    assert all("public.old" in f["message"] for f in hazards)
    assert not [f for f in findings if f["version"] == new and f["rule"] != "down-not-reverting"]
    assert proc.returncode == 0
    untouched(db_url)


def test_access_exclusive_lock_held_while_more_runs_is_a_warning(cli, mdir, db_url):
    mdir.add(1, "base", "CREATE TABLE old (id int);\n", "DROP TABLE old;\n")
    mdir.add(2, "more", "ALTER TABLE old ADD COLUMN b int;\nSELECT pg_sleep(0);\nSELECT 1;\n",
             "ALTER TABLE old DROP COLUMN b;\n")
    _, findings, _ = check(cli, mdir, db_url)
    (hit,) = [f for f in findings if f["rule"] == "access-exclusive-lock" and f["version"] == 2]
    assert hit["severity"] == "warning" and hit["line"] == 1
    assert "runs 2 more statement(s) while holding it" in hit["message"]


def test_not_valid_constraints_and_a_proven_not_null_are_not_flagged(cli, mdir, db_url):
    mdir.add(1, "base", "CREATE TABLE ref (id int PRIMARY KEY);\nCREATE TABLE old (id int, a int);\n",
             "DROP TABLE old;\nDROP TABLE ref;\n")
    mdir.add(2, "not_valid", "ALTER TABLE old ADD CONSTRAINT old_a_nn CHECK (a IS NOT NULL) NOT VALID;\n"
             "ALTER TABLE old ADD CONSTRAINT old_ref FOREIGN KEY (id) REFERENCES ref (id) NOT VALID;\n",
             "ALTER TABLE old DROP CONSTRAINT old_ref;\nALTER TABLE old DROP CONSTRAINT old_a_nn;\n")
    mdir.add(3, "validate", "ALTER TABLE old VALIDATE CONSTRAINT old_a_nn;\n"
             "ALTER TABLE old VALIDATE CONSTRAINT old_ref;\n", "SELECT 1;\n")
    mdir.add(4, "set_not_null", "ALTER TABLE old ALTER COLUMN a SET NOT NULL;\n",
             "ALTER TABLE old ALTER COLUMN a DROP NOT NULL;\n")
    _, findings, _ = check(cli, mdir, db_url)
    assert "constraint-validation" not in rules_of(findings), findings
    # VALIDATE cannot be undone: the down file of 3 leaves them validated, and says so
    assert any(f["version"] == 3 and "old_a_nn is not restored" in f["message"] for f in findings)


def test_concurrently_in_a_transactional_file(cli, mdir, db_url):
    mdir.add(1, "base", "CREATE TABLE old (id int, a int);\n", "DROP TABLE old;\n")
    mdir.add(2, "cic", "SELECT 1;\nCREATE INDEX CONCURRENTLY old_a_idx ON old (a);\n", "DROP INDEX old_a_idx;\n")
    mdir.add(3, "after", "CREATE TABLE later (id int);\n", "DROP TABLE later;\n")
    proc, findings, summary = check(cli, mdir, db_url)
    assert proc.returncode == 1
    (hit,) = [f for f in findings if f["rule"] == "needs-no-transaction"]
    assert (hit["severity"], hit["version"], hit["line"]) == ("error", 2, 2)
    assert "CREATE INDEX CONCURRENTLY old_a_idx" in hit["message"] and "-- migrate:no-transaction" in hit["message"]
    assert "index-without-concurrently" not in rules_of(findings)
    assert summary["checked"] == 3  # the check goes on with the index built


def test_no_transaction_file_concurrently_is_fine_and_a_plain_index_is_seen(cli, mdir, db_url):
    mdir.add(1, "base", "CREATE TABLE old (id int, a int, b int);\n", "DROP TABLE old;\n")
    mdir.add(2, "indexes", "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY old_a_idx ON old (a);\n"
             "CREATE INDEX old_b_idx ON old (b);\n",
             "-- migrate:no-transaction\nDROP INDEX CONCURRENTLY old_b_idx;\nDROP INDEX CONCURRENTLY old_a_idx;\n")
    proc, findings, _ = check(cli, mdir, db_url)
    assert proc.returncode == 0, findings
    assert [(f["rule"], f["line"]) for f in findings] == [("index-without-concurrently", 3)]
    assert "old_b_idx" in findings[0]["message"]


def test_psql_run_file_hazards_are_seen_for_the_whole_file(cli, mdir, db_url):
    mdir.add(1, "base", "CREATE TABLE old (id int, a int);\n", "DROP TABLE old;\n")
    mdir.add(2, "psql", "\\set col a\nCREATE INDEX old_a_idx ON old (:col);\n", "DROP INDEX old_a_idx;\n")
    _, findings, _ = check(cli, mdir, db_url)
    (hit,) = findings
    assert (hit["rule"], hit["line"], hit["table"]) == ("index-without-concurrently", 1, "public.old")
    assert "runs through psql" in hit["message"]


# --- a live database: drift and sizes ---


def test_drift_after_a_hand_made_column(cli, echo_url, db_url):
    before = query(echo_url, "SELECT version, checksum FROM public.schema_migrations ORDER BY 1")
    proc = cli("check", "--format", "json", "--against", echo_url, url=db_url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["summary"]["live_version"] == ECHO_NEWEST
    query(echo_url, "ALTER TABLE auth.users ADD COLUMN nickname text")
    proc = cli("check", "--format", "json", "--against", echo_url, url=db_url)
    assert proc.returncode == 1
    findings = json.loads(proc.stdout)["findings"]
    live = f"live:{echo_url.rsplit('/', 1)[1]}"
    assert all(f["severity"] == "info" for f in findings if f["rule"] != "drift")  # already applied there
    findings = [f for f in findings if f["rule"] == "drift"]
    assert [(f["rule"], f["severity"], f["file"], f["line"]) for f in findings] == [("drift", "error", live, None)]
    assert findings[0]["message"].startswith("column auth.users.nickname exists on the live database but not in "
                                             f"what the migrations build at version {ECHO_NEWEST}")
    text = cli("check", "--against", echo_url, url=db_url)
    assert re.search(r"^live:\S+: error: drift: column auth\.users\.nickname", text.stdout, re.M), text.stdout
    assert query(echo_url, "SELECT version, checksum FROM public.schema_migrations ORDER BY 1") == before
    untouched(db_url)


def test_drift_names_what_is_missing_and_what_differs(cli, mdir, db_url, pg_server):
    live = pg_server.url(pg_server.create_db())
    try:
        mdir.add(1, "t", "CREATE TABLE t (id int PRIMARY KEY, a varchar(10));\nCREATE INDEX t_a ON t (a);\n",
                 "DROP TABLE t;\n")
        assert cli("--dir", str(mdir), "up", url=live).returncode == 0
        query(live, "DROP INDEX t_a; ALTER TABLE t ALTER COLUMN a TYPE varchar(20)")
        _, findings, _ = check(cli, mdir, db_url, "--against", live)
        messages = sorted(f["message"] for f in findings if f["rule"] == "drift")
        assert messages[0].startswith("column public.t.a differs on the live database"), messages
        assert "character varying(10)" in messages[0] and "character varying(20)" in messages[0]
        assert messages[1].startswith("index public.t_a is missing on the live database")
    finally:
        pg_server.drop_db(live.rsplit("/", 1)[1])


@pytest.mark.parametrize(("rows", "severity"), [(200_000, "error"), (1_000, "warning")])
def test_a_hazard_on_a_large_live_table_is_an_error(cli, mdir, db_url, pg_server, rows, severity):
    live = pg_server.url(pg_server.create_db())
    try:
        mdir.add(1, "events", "CREATE TABLE events (id bigint PRIMARY KEY, kind text);\n", "DROP TABLE events;\n")
        mdir.add(2, "kind_index", "CREATE INDEX events_kind_idx ON events (kind);\n", "DROP INDEX events_kind_idx;\n")
        assert cli("--dir", str(mdir), "up", "--to", "1", url=live).returncode == 0
        query(live, f"INSERT INTO events SELECT g, 'k' || (g %% 10) FROM generate_series(1, {rows}) g")
        query(live, "VACUUM ANALYZE events")
        proc, findings, summary = check(cli, mdir, db_url, "--against", live)
        (hit,) = [f for f in findings if f["rule"] == "index-without-concurrently"]
        assert (hit["severity"], hit["version"], hit["table"]) == (severity, 2, "public.events")
        assert f"(live table: {rows:,} rows, " in hit["message"]
        assert proc.returncode == (1 if severity == "error" else 0)
        assert summary["live_version"] == 1
        assert tracked(live).keys() == {1}  # the live database is only read
        assert query(live, "SELECT count(*) FROM pg_indexes WHERE tablename = 'events'") == [(1,)]
    finally:
        pg_server.drop_db(live.rsplit("/", 1)[1])


def test_hazards_of_applied_migrations_are_info_with_a_live_database(cli, mdir, db_url, pg_server):
    live = pg_server.url(pg_server.create_db())
    try:
        mdir.add(1, "t", "CREATE TABLE t (a int);\n", "DROP TABLE t;\n")
        mdir.add(2, "i", "CREATE INDEX t_a ON t (a);\n", "DROP INDEX t_a;\n")
        assert cli("--dir", str(mdir), "up", url=live).returncode == 0
        _, findings, _ = check(cli, mdir, db_url, "--against", live)
        assert [(f["rule"], f["severity"]) for f in findings] == [("index-without-concurrently", "info")]
        assert "already applied on the live database" in findings[0]["message"]
    finally:
        pg_server.drop_db(live.rsplit("/", 1)[1])


# --- the project's own migrations, servers, interruptions ---


def test_the_echo_migrations_pass(cli, db_url, pg_server):
    proc = cli("check", "--format", "json", url=db_url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert data["summary"]["errors"] == 0
    assert data["summary"]["checked"] == data["summary"]["migrations"] == len(ECHO_UPS)
    assert not database_exists(pg_server, shadow_name(proc.stderr))
    untouched(db_url)


def test_shadow_server_named_by_url_and_the_configured_one_never_contacted(cli, mdir, pg_server):
    mdir.add(1, "t", "CREATE TABLE t (a int);\n", "DROP TABLE t;\n")
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/app"
    proc, findings, summary = check(cli, mdir, nowhere, "--shadow", pg_server.url("postgres"))
    assert proc.returncode == 0 and findings == []
    assert summary["shadow"] == f"host {pg_server.host}, port {pg_server.port}"
    assert not database_exists(pg_server, shadow_name(proc.stderr))


def test_embedded_server_not_running(cli, mdir):
    mdir.add(1, "t", "CREATE TABLE t (a int);\n", "DROP TABLE t;\n")
    proc = cli("--dir", str(mdir), "check", url=None, env={"LOCAL_PG_PORT": str(free_port())})
    assert proc.returncode == 3
    assert proc.stderr.startswith("error: the embedded PostgreSQL is not running") and "make db-up" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_check_drops_its_shadow_database(mdir, db_url, pg_server, signum):
    mdir.add(1, "t", "CREATE TABLE pause (seconds int);\nINSERT INTO pause VALUES (60);\n", "DROP TABLE pause;\n")
    mdir.add(2, "slow", PAUSE, "SELECT 1;\n")
    proc = start_runner("--dir", str(mdir), "check", url=db_url)
    name = None

    def sleeping() -> bool:
        nonlocal name
        rows = query(pg_server.url("postgres"), "SELECT datname FROM pg_stat_activity WHERE datname LIKE "
                     "'pgm\\_check\\_%%' AND query LIKE 'DO $$%%' AND state = 'active'")
        name = next((r[0] for r in rows if r[0] not in seen), None)
        return name is not None

    seen = {r[0] for r in query(pg_server.url("postgres"), "SELECT datname FROM pg_database")}
    wait_until(sleeping, 30, "the check to run the slow migration", proc)
    proc.send_signal(signum)
    done = finish(proc, timeout=30)
    assert done.returncode == 130, done.stderr
    assert "error: interrupted; the throwaway database was dropped, nothing was changed" in done.stderr
    assert not database_exists(pg_server, name)
    untouched(db_url)


def test_bad_files_are_refused_before_anything_runs(cli, mdir, db_url):
    mdir.add(1, "t", "CREATE TABLE t (a int);\n", "DROP TABLE t;\n")
    mdir.add(2, "bad", "BEGIN;\nCREATE TABLE u (a int);\nCOMMIT;\n", "DROP TABLE u;\n")
    proc = cli("--dir", str(mdir), "check", url=db_url)
    assert proc.returncode == 2
    assert "0002_bad.up.sql:1: BEGIN would end the transaction" in proc.stderr
    assert "shadow database" not in proc.stderr
    untouched(db_url)


def test_check_across_a_fleet_reports_drift_per_target(cli, pg_server, echo_template, tmp_path, db_url):
    names = [pg_server.create_db(template=echo_template) for _ in range(2)]
    try:
        query(pg_server.url(names[1]), "ALTER TABLE auth.users ADD COLUMN nickname text")
        listing = tmp_path / "targets.txt"
        listing.write_text("".join(f"t{i} {pg_server.url(n)}\n" for i, n in enumerate(names)))
        proc = cli("check", "--targets", str(listing), "--format", "json", url=db_url)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        report = {t["name"]: t for t in json.loads(proc.stdout)["targets"]}
        assert report["t0"]["state"] == "ok" and report["t1"]["state"] == "failed"
        assert "drift" in report["t1"]["error"] and "nickname" in report["t1"]["error"]
        assert "nickname" not in {r[0] for r in query(pg_server.url(names[0]),
                                                      "SELECT column_name FROM information_schema.columns "
                                                      "WHERE table_name = 'users'")}
    finally:
        for n in names:
            pg_server.drop_db(n)
