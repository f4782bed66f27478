"""The Echo database: the repository's migrations, seeds and presence functions on a real PostgreSQL."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from helpers import ROOT, query, tracked

from pgmigrate.config import Settings, Target
from pgmigrate.engine import Runner
from pgmigrate.psql import psql_command

MIGRATIONS = ROOT / "migrations" / "postgres"
UP_FILES = sorted(MIGRATIONS.glob("*.up.sql"))
TABLE_COUNTS = {"auth": 6, "users": 4, "messages": 20, "media": 2, "notifications": 2, "analytics": 6,
                "location": 2, "presence": 6}
PROJECT = tuple(TABLE_COUNTS)
MIGRATION_NAMES = {int(p.name[:6]): p.name[7:].removesuffix(".up.sql") for p in UP_FILES}
# The versions whose files record themselves when run by hand (every shipped one; the guide makes the
# INSERT optional for a team's own files).
SELF_RECORDING = {int(p.name[:6]) for p in UP_FILES if "schema_migrations" in p.read_text()}
OUTSIDE_SYSTEM = "n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg\\_%%'"

ALICE = "a1111111-1111-1111-1111-111111111111"
BOB = "b2222222-2222-2222-2222-222222222222"
CAROL = "c3333333-3333-3333-3333-333333333333"
DAVE = "d4444444-4444-4444-4444-444444444444"
ERIN = "e5555555-5555-5555-5555-555555555555"
GROUP = "10000000-0000-0000-0000-000000000002"


# --- helpers ---


def psql_file(url: str, path: Path, *extra: str) -> subprocess.CompletedProcess:
    """``psql -X -v ON_ERROR_STOP=1 [extra] -f path`` on the database, as a user would run it (and as
    MIGRATION_GUIDE says: a file marked ``-- migrate:no-transaction`` without ``-1``)."""
    if path.read_text().lstrip("\ufeff").startswith("-- migrate:no-transaction"):
        extra = tuple(e for e in extra if e != "-1")
    argv, env = psql_command(Target(url, "test"), ["-X", "-q", "-v", "ON_ERROR_STOP=1", *extra, "-f", str(path)])
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


def table_counts(url: str) -> dict[str, int]:
    """Tables per schema; a partitioned table counts once, its partitions not at all."""
    rows = query(url, """SELECT n.nspname, count(*)::int FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                         WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname <> ALL(%s)
                         GROUP BY 1""", (["pg_catalog", "information_schema", "public", "pg_toast"],))
    return dict(rows)


# Each query lists one kind of object outside the system schemas, in a fixed order, with what defines it.
SNAPSHOT = {
    "schemas": "SELECT n.nspname, obj_description(n.oid, 'pg_namespace') FROM pg_namespace n WHERE {w} ORDER BY 1",
    "relations": """SELECT n.nspname, c.relname, c.relkind, obj_description(c.oid, 'pg_class'){oid}
                    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {w} ORDER BY 1, 2""",
    "columns": """SELECT n.nspname, c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod),
                         a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
                         col_description(c.oid, a.attnum)
                  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                  JOIN pg_namespace n ON n.oid = c.relnamespace
                  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                  WHERE a.attnum > 0 AND NOT a.attisdropped AND {w} ORDER BY 1, 2, 3""",
    "constraints": """SELECT n.nspname, c.relname, k.conname, pg_get_constraintdef(k.oid){koid}
                      FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
                      JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {w} ORDER BY 1, 2, 3""",
    "indexes": """SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes n
                  WHERE {w2} ORDER BY 1, 2, 3""",
    "functions": """SELECT n.nspname, p.proname, pg_get_function_identity_arguments(p.oid),
                           pg_get_functiondef(p.oid), obj_description(p.oid, 'pg_proc'){poid}
                    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                    WHERE p.prokind IN ('f', 'p') AND {w} ORDER BY 1, 2, 3""",
    "triggers": """SELECT n.nspname, c.relname, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled{toid}
                   FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE NOT t.tgisinternal AND {w} ORDER BY 1, 2, 3""",
    "types": """SELECT n.nspname, t.typname, t.typtype FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                WHERE {w} ORDER BY 1, 2""",
}


def catalog_snapshot(url: str, *, oids: bool = False, public: bool = True) -> dict[str, list[tuple]]:
    """Everything the migrations define, as rows per kind; with ``oids``, also the objects' OIDs, so
    an object dropped and created again shows up as a difference."""
    where = OUTSIDE_SYSTEM + ("" if public else " AND n.nspname <> 'public'")
    fill = {"w": where, "w2": where.replace("n.nspname", "n.schemaname")}
    for key, alias in (("oid", "c"), ("koid", "k"), ("poid", "p"), ("toid", "t")):
        fill[key] = f", {alias}.oid" if oids else ""
    return {kind: query(url, sql.format(**fill)) for kind, sql in SNAPSHOT.items()}


def logical(snapshot: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    """A catalog snapshot with column numbers replaced by positions among the live columns (a column
    dropped and added again takes a new attnum; SELECT * and the row type only see the order)."""
    positions: dict[tuple, int] = {}
    columns = []
    for row in snapshot["columns"]:
        key = row[:2]
        positions[key] = positions.get(key, 0) + 1
        columns.append((*row[:2], positions[key], *row[3:]))
    return {**snapshot, "columns": columns}


def data_digest(url: str) -> dict[str, tuple[int, str]]:
    """Row count and md5 of the full contents of every table of the project schemas."""
    names = query(url, """SELECT format('%%I.%%I', table_schema, table_name) FROM information_schema.tables
                          WHERE table_type = 'BASE TABLE' AND table_schema = ANY(%s) ORDER BY 1""", (list(PROJECT),))
    return {name: tuple(query(url, f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"
                                   f" FROM {name} t")[0]) for (name,) in names}


# --- fixtures: the migrated database with the seeds loaded, as a template made once ---


@pytest.fixture(scope="module")
def seeded_template(pg_server, echo_template) -> Iterator[str]:
    name = pg_server.create_db(template=echo_template)
    settings = Settings(Target(pg_server.url(name), "test"), MIGRATIONS, ROOT / "seeds")
    with Runner(settings) as runner:
        runner.seed()
    yield name
    pg_server.drop_db(name)


@pytest.fixture
def seeded_url(pg_server, seeded_template) -> Iterator[str]:
    name = pg_server.create_db(template=seeded_template)
    yield pg_server.url(name)
    pg_server.drop_db(name)


# --- migrations ---


def test_up_down_all_up_on_a_fresh_database(db_url, cli):
    first = cli("up", url=db_url)
    assert first.returncode == 0, first.stderr
    assert table_counts(db_url) == TABLE_COUNTS
    assert {v: row[0] for v, row in tracked(db_url).items()} == MIGRATION_NAMES

    down = cli("down", "--all", url=db_url)
    assert down.returncode == 0, down.stderr
    assert query(db_url, f"SELECT nspname FROM pg_namespace n WHERE {OUTSIDE_SYSTEM}") == [("public",)]
    assert query(db_url, f"""SELECT p.oid::regprocedure::text FROM pg_proc p
                             JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {OUTSIDE_SYSTEM}""") == []
    assert query(db_url, f"""SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {OUTSIDE_SYSTEM}""") == []
    assert sorted(query(db_url, f"""SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                                    WHERE {OUTSIDE_SYSTEM}""")) == [("_schema_migrations",), ("schema_migrations",)]
    assert sorted(query(db_url, """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                                   WHERE n.nspname = 'public'""")) == [("schema_migrations",),
                                                                       ("schema_migrations_pkey",)]
    assert tracked(db_url) == {}

    again = cli("up", url=db_url)
    assert again.returncode == 0, again.stderr
    assert table_counts(db_url) == TABLE_COUNTS
    assert set(tracked(db_url)) == set(MIGRATION_NAMES)


@pytest.mark.parametrize("up_file", UP_FILES, ids=lambda p: p.name.split("_")[0])
def test_running_an_up_file_again_changes_nothing(db_url, cli, up_file):
    """On the database that file left (its version the newest applied), running it again is a no-op."""
    assert cli("up", "--to", up_file.name[:6], url=db_url).returncode == 0
    before = catalog_snapshot(db_url, oids=True)
    rows_before = query(db_url, "SELECT * FROM public.schema_migrations ORDER BY version")
    result = psql_file(db_url, up_file, "-1")
    assert result.returncode == 0, result.stderr
    assert catalog_snapshot(db_url, oids=True) == before
    assert query(db_url, "SELECT * FROM public.schema_migrations ORDER BY version") == rows_before


def test_psql_and_runner_build_the_same_database(pg_server, db_url, cli):
    by_psql = db_url
    assert cli("init", url=by_psql).returncode == 0
    for up_file in UP_FILES:
        result = psql_file(by_psql, up_file)
        assert result.returncode == 0, f"{up_file.name}: {result.stderr}"
    name = pg_server.create_db()
    try:
        by_runner = pg_server.url(name)
        assert cli("up", url=by_runner).returncode == 0
        assert catalog_snapshot(by_psql) == catalog_snapshot(by_runner)
        rows = "SELECT version, description FROM public.schema_migrations ORDER BY version"
        assert query(by_runner, rows) == sorted(MIGRATION_NAMES.items())
        assert query(by_psql, rows) == [(v, n) for v, n in sorted(MIGRATION_NAMES.items()) if v in SELF_RECORDING]
    finally:
        pg_server.drop_db(name)


# --- seeds ---


def test_seeding_twice_leaves_the_same_rows(echo_url, cli):
    first = cli("seed", url=echo_url)
    assert first.returncode == 0, first.stderr
    once = data_digest(echo_url)
    assert once["auth.users"][0] == 5 and once["messages.messages"][0] == 7 and once["presence.connections"][0] == 2
    assert sum(1 for count, _ in once.values() if count) >= 15
    second = cli("seed", url=echo_url)
    assert second.returncode == 0, second.stderr
    assert data_digest(echo_url) == once


# --- presence functions ---


def history(url: str, user: str) -> list[tuple]:
    return query(url, """SELECT old_status, new_status, device_id, source FROM presence.status_history
                         WHERE user_id = %s ORDER BY id""", (user,))


def test_update_user_status_writes_history_only_on_a_change(seeded_url):
    seeded = history(seeded_url, ALICE)
    assert seeded == [(None, "online", "device-alice-iphone", "client")]
    row = query(seeded_url, "SELECT presence.update_user_status("
                            "'a1111111-1111-1111-1111-111111111111', 'online', 'device-123');")
    assert row[0][0].startswith(f"({ALICE},online,")
    assert history(seeded_url, ALICE) == seeded
    status = query(seeded_url, "SELECT status, device_count, last_seen_at > '2024-06-01' FROM presence.user_presence "
                               "WHERE user_id = %s", (ALICE,))
    assert status == [("online", 1, True)]

    query(seeded_url, "SELECT presence.update_user_status(%s, 'away', 'device-123')", (ALICE,))
    query(seeded_url, "SELECT presence.update_user_status(%s, 'away', 'device-456')", (ALICE,))
    assert history(seeded_url, ALICE) == [*seeded, ("online", "away", "device-123", "client")]

    first = query(seeded_url, "SELECT * FROM presence.update_user_status(%s, 'busy')", (ERIN,))
    assert (str(first[0][0]), first[0][1]) == (ERIN, "busy")
    assert history(seeded_url, ERIN) == [(None, "busy", None, "client")]


def test_update_user_status_rejects_an_unknown_status_or_user(seeded_url):
    with psycopg.connect(seeded_url, autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as bad_status:
            conn.execute("SELECT presence.update_user_status(%s, 'invisible')", (ALICE,))
        with pytest.raises(psycopg.Error) as bad_user:
            conn.execute("SELECT presence.update_user_status('f0000000-0000-0000-0000-000000000000', 'online')")
    assert bad_status.value.sqlstate == "22023"
    assert bad_status.value.diag.message_hint == "Valid statuses are: online, away, busy, offline."
    assert bad_user.value.sqlstate == "23503"
    assert query(seeded_url, "SELECT status FROM presence.user_status WHERE user_id = %s", (ALICE,)) == [("online",)]
    assert len(history(seeded_url, ALICE)) == 1


def test_typing_indicator_expires_ten_seconds_after_the_last_update(seeded_url):
    assert query(seeded_url, "SELECT presence.cleanup_expired_typing()") == [(1,)]  # the seeded, long expired one
    query(seeded_url, "SELECT presence.set_typing(%s, %s)", (GROUP, CAROL))
    ttl = "SELECT expires_at - last_updated_at, started_at FROM presence.typing_indicators WHERE user_id = %s"
    (gap, started), = query(seeded_url, ttl, (CAROL,))
    assert gap.total_seconds() == 10
    query(seeded_url, "SELECT presence.set_typing(%s, %s)", (GROUP, CAROL))  # a refresh, in a later transaction
    assert query(seeded_url, ttl, (CAROL,))[0] == (gap, started)  # same burst: started_at kept
    assert query(seeded_url, "SELECT last_updated_at > %s FROM presence.typing_indicators WHERE user_id = %s",
                 (started, CAROL)) == [(True,)]

    query(seeded_url, "SELECT presence.set_typing(%s, %s)", (GROUP, DAVE))
    query(seeded_url, "UPDATE presence.typing_indicators SET expires_at = now() - interval '1 millisecond' "
                      "WHERE user_id = %s", (DAVE,))
    assert query(seeded_url, "SELECT presence.cleanup_expired_typing()") == [(1,)]
    assert query(seeded_url, "SELECT user_id::text FROM presence.typing_indicators") == [(CAROL,)]
    assert query(seeded_url, "SELECT presence.cleanup_expired_typing()") == [(0,)]

    assert query(seeded_url, "SELECT presence.clear_typing(%s, %s)", (GROUP, CAROL)) == [(True,)]
    assert query(seeded_url, "SELECT presence.clear_typing(%s, %s)", (GROUP, CAROL)) == [(False,)]
    with pytest.raises(psycopg.Error) as outsider:
        query(seeded_url, "SELECT presence.set_typing(%s, %s)", (GROUP, ERIN))
    assert outsider.value.sqlstate == "22023"


def test_cleanup_stale_connections_times_out_after_30_seconds(seeded_url):
    """alice: her only connection silent 31 s -> marked, offline with a history row. bob: his web
    connection silent 31 s is marked, but his phone (29 s) is live, so he stays away. dave: a
    connection silent 29 s is left alone. One transaction, so now() is the same throughout."""
    with psycopg.connect(seeded_url) as conn:
        conn.execute("UPDATE presence.connections SET last_heartbeat_at = now() - interval '31 seconds'")
        conn.execute("""INSERT INTO presence.connections (connection_id, user_id, device_id, device_type, server_id,
                                                          connected_at, last_heartbeat_at)
                        VALUES ('gw-1:bob-phone', %s, 'device-bob-phone', 'android', 'gw-1',
                                now() - interval '1 minute', now() - interval '29 seconds'),
                               ('gw-1:dave-desk', %s, 'device-dave-desktop', 'desktop', 'gw-1',
                                now() - interval '1 minute', now() - interval '29 seconds')""", (BOB, DAVE))
        marked = conn.execute("SELECT presence.cleanup_stale_connections()").fetchone()[0]
        statuses = conn.execute("""SELECT user_id::text, status, device_count, last_seen_at = now() - interval '31 s'
                                   FROM presence.user_presence WHERE user_id = ANY(%s) ORDER BY 1""",
                                ([ALICE, BOB, DAVE],)).fetchall()
        closed = conn.execute("""SELECT device_id, disconnect_reason, disconnected_at = now()
                                 FROM presence.connections WHERE disconnected_at IS NOT NULL ORDER BY 1""").fetchall()
        again = conn.execute("SELECT presence.cleanup_stale_connections()").fetchone()[0]
    assert marked == 2 and again == 0
    assert statuses == [(ALICE, "offline", 0, True), (BOB, "away", 1, False), (DAVE, "offline", 1, False)]
    assert closed == [("device-alice-iphone", "heartbeat_timeout", True),
                      ("device-bob-laptop", "heartbeat_timeout", True)]
    assert history(seeded_url, ALICE)[-1] == ("online", "offline", "device-alice-iphone", "heartbeat_timeout")
    assert len(history(seeded_url, BOB)) == 1 and len(history(seeded_url, DAVE)) == 1
