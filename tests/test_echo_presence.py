"""The Echo database serving its presence service (migrations 000003-000006) on a real PostgreSQL:
the gateway's statements as the design guide writes them, timeouts and revivals, the sweep under
concurrent traffic, HOT updates, roles, subscriptions, partitions, constraints, and every new
migration's down (by the runner and by plain psql)."""

from __future__ import annotations

import time
import uuid

import presence_load
import psycopg
import pytest
from helpers import query
from test_echo_schema import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    ERIN,
    GROUP,
    MIGRATIONS,
    SELF_RECORDING,
    catalog_snapshot,
    data_digest,
    logical,
    psql_file,
)

DIRECT = "10000000-0000-0000-0000-000000000001"

# The design guide's gateway statements, as it writes them ($n placeholders as psycopg's %s).
TRACK_CONNECTION = """
INSERT INTO presence.connections (connection_id, user_id, device_id, device_type, ip_address, user_agent, server_id)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (connection_id) DO UPDATE SET last_heartbeat_at = NOW()"""
SET_TYPING = """
INSERT INTO presence.typing_indicators (conversation_id, user_id, device_id, started_at, last_updated_at, expires_at)
VALUES (%s, %s, %s, NOW(), NOW(), NOW() + INTERVAL '10 seconds')
ON CONFLICT (conversation_id, user_id)
DO UPDATE SET device_id = EXCLUDED.device_id, last_updated_at = NOW(), expires_at = NOW() + INTERVAL '10 seconds'"""
HEARTBEAT = "UPDATE presence.connections SET last_heartbeat_at = NOW() WHERE connection_id = %s"
DISCONNECT = """UPDATE presence.connections SET disconnected_at = NOW(), disconnect_reason = 'client_closed'
                WHERE connection_id = %s AND disconnected_at IS NULL"""
ALICE_PHONE = "gw-1:conn-alice-0001"


@pytest.fixture
def seeded(echo_url, cli) -> str:
    result = cli("seed", url=echo_url)
    assert result.returncode == 0, result.stderr
    return echo_url


def track(url: str, conn_id: str, user: str, device: str = "device-123") -> None:
    query(url, TRACK_CONNECTION, (conn_id, user, device, "ios", "203.0.113.10", "Echo/3.2.0", "gw-1"))


def presence(url: str, user: str) -> tuple:
    return query(url, "SELECT status, device_count FROM presence.user_presence WHERE user_id = %s", (user,))[0]


def history(url: str, user: str) -> list[tuple]:
    return query(url, """SELECT old_status, new_status, device_id, source FROM presence.status_history
                         WHERE user_id = %s ORDER BY id""", (user,))


def age_status(url: str, user: str) -> None:
    """Make the user's status a minute old (the updated_at trigger would set it to now())."""
    with psycopg.connect(url) as conn:
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute("UPDATE presence.user_status SET updated_at = now() - interval '1 minute' WHERE user_id = %s",
                     (user,))


def backdate(url: str, conn_id: str, seconds: int) -> None:
    query(url, "UPDATE presence.connections SET last_heartbeat_at = now() - make_interval(secs => %s) "
               "WHERE connection_id = %s", (seconds, conn_id))


# --- the guide's statements ---


def test_the_guides_statements_run_as_written(seeded):
    track(seeded, "gw-1:conn-erin-0001", ERIN)
    track(seeded, "gw-1:conn-erin-0001", ERIN)  # the same connection again: a heartbeat
    assert query(seeded, "SELECT count(*), bool_and(disconnected_at IS NULL) FROM presence.connections "
                         "WHERE user_id = %s", (ERIN,)) == [(1, True)]
    query(seeded, SET_TYPING, (GROUP, CAROL, "device-carol-android"))
    query(seeded, SET_TYPING, (GROUP, CAROL, "device-carol-tablet"))
    rows = query(seeded, """SELECT device_id, expires_at - last_updated_at FROM presence.typing_indicators
                            WHERE conversation_id = %s AND user_id = %s""", (GROUP, CAROL))
    assert [(d, gap.total_seconds()) for d, gap in rows] == [("device-carol-tablet", 10.0)]
    returned = query(seeded, "SELECT (presence.set_typing(%s, %s, 'device-dave-desktop')).device_id", (GROUP, DAVE))
    assert returned == [("device-dave-desktop",)]


# --- timeouts, revivals, the end of presence ---


def test_a_late_heartbeat_brings_a_timed_out_connection_back(seeded):
    backdate(seeded, ALICE_PHONE, 31)
    assert query(seeded, "SELECT presence.cleanup_stale_connections()") == [(1,)]
    assert presence(seeded, ALICE) == ("offline", 0)
    assert history(seeded, ALICE)[-1] == ("online", "offline", "device-alice-iphone", "heartbeat_timeout")

    track(seeded, ALICE_PHONE, ALICE, "device-alice-iphone")  # the guide's upsert: a heartbeat, late
    assert query(seeded, "SELECT disconnected_at, disconnect_reason FROM presence.connections "
                         "WHERE connection_id = %s", (ALICE_PHONE,)) == [(None, None)]
    assert presence(seeded, ALICE) == ("online", 1)
    assert history(seeded, ALICE)[-1] == ("offline", "online", "device-alice-iphone", "system")

    query(seeded, HEARTBEAT, (ALICE_PHONE,))  # an ordinary heartbeat changes nothing more
    assert len(history(seeded, ALICE)) == 3
    query(seeded, DISCONNECT, (ALICE_PHONE,))
    query(seeded, HEARTBEAT, (ALICE_PHONE,))  # a connection closed by its client stays closed
    assert query(seeded, "SELECT disconnect_reason FROM presence.connections WHERE connection_id = %s",
                 (ALICE_PHONE,)) == [("client_closed",)]


def test_presence_ends_after_a_clean_disconnect_once_the_grace_period_is_over(seeded):
    query(seeded, DISCONNECT, ("gw-2:conn-bob-0001",))
    assert query(seeded, "SELECT presence.cleanup_stale_connections()") == [(0,)]
    assert presence(seeded, BOB) == ("away", 0)  # closed just now: within the grace period

    query(seeded, "UPDATE presence.connections SET disconnected_at = now() - interval '31 seconds', "
                  "connected_at = now() - interval '1 hour' WHERE connection_id = 'gw-2:conn-bob-0001'")
    query(seeded, "SELECT presence.cleanup_stale_connections()")
    assert presence(seeded, BOB) == ("offline", 0)
    assert history(seeded, BOB)[-1] == ("away", "offline", "device-bob-laptop", "system")
    assert presence(seeded, ALICE) == ("online", 1)  # her phone is live


def test_a_status_set_before_the_first_connection_survives_the_grace_period_only(seeded):
    query(seeded, "SELECT presence.update_user_status(%s, 'online', 'device-erin')", (ERIN,))
    query(seeded, "SELECT presence.cleanup_stale_connections()")
    assert presence(seeded, ERIN) == ("online", 0)
    track(seeded, "gw-1:conn-erin-0001", ERIN)
    age_status(seeded, ERIN)
    query(seeded, "SELECT presence.cleanup_stale_connections()")
    assert presence(seeded, ERIN) == ("online", 1)  # connected: stays

    query(seeded, DISCONNECT, ("gw-1:conn-erin-0001",))
    query(seeded, "UPDATE presence.connections SET disconnected_at = now() - interval '31 seconds', "
                  "connected_at = now() - interval '1 hour' WHERE user_id = %s", (ERIN,))
    age_status(seeded, ERIN)
    query(seeded, "SELECT presence.cleanup_stale_connections()")
    assert presence(seeded, ERIN) == ("offline", 0)


# --- concurrency ---


def test_status_then_connection_in_both_user_orders_does_not_deadlock(seeded):
    """The mirror image the old statement triggers deadlocked on: A's status then B's connection,
    against B's status then A's connection, interleaved step by step."""
    one, two = psycopg.connect(seeded), psycopg.connect(seeded)
    try:
        for conn in (one, two):
            conn.execute("SET lock_timeout = '5s'")
        one.execute("SELECT presence.update_user_status(%s, 'busy')", (ALICE,))
        two.execute("SELECT presence.update_user_status(%s, 'busy')", (BOB,))
        one.execute(TRACK_CONNECTION, ("gw-9:bob", BOB, "d-b", "web", None, None, "gw-9"))
        two.execute(TRACK_CONNECTION, ("gw-9:alice", ALICE, "d-a", "web", None, None, "gw-9"))
        one.commit()
        two.commit()
    finally:
        one.close()
        two.close()
    assert presence(seeded, ALICE) == ("busy", 2) and presence(seeded, BOB) == ("busy", 2)


def test_the_sweep_skips_what_others_hold_instead_of_waiting(seeded):
    backdate(seeded, ALICE_PHONE, 31)
    backdate(seeded, "gw-2:conn-bob-0001", 31)
    with psycopg.connect(seeded) as holder:
        holder.execute("SELECT presence.update_user_status(%s, 'online')", (ALICE,))  # holds alice's status
        holder.execute(HEARTBEAT.replace("NOW()", "last_heartbeat_at"), ("gw-2:conn-bob-0001",))  # bob's socket
        with psycopg.connect(seeded, autocommit=True) as sweeper:
            sweeper.execute("SET statement_timeout = '3s'")
            assert sweeper.execute("SELECT presence.cleanup_stale_connections()").fetchone() == (1,)
        holder.rollback()
    assert query(seeded, "SELECT connection_id, disconnect_reason FROM presence.connections ORDER BY 1") == [
        (ALICE_PHONE, "heartbeat_timeout"), ("gw-2:conn-bob-0001", None)]
    assert presence(seeded, ALICE) == ("online", 0)  # her status row was held: the next sweep ends it
    query(seeded, "SELECT presence.cleanup_stale_connections()")
    assert presence(seeded, ALICE) == ("offline", 0)


def test_a_first_status_and_a_connection_arriving_together_count_right(seeded):
    user = presence_load.make_users(seeded, 1)[0]
    with psycopg.connect(seeded) as first, psycopg.connect(seeded) as second:
        first.execute(TRACK_CONNECTION, ("gw-9:new", user, "d-1", "web", None, None, "gw-9"))
        second.execute("SELECT presence.update_user_status(%s, 'online')", (user,))
        second.commit()
        first.commit()
    assert presence(seeded, user) == ("online", 1)


@pytest.mark.slow
def test_gateways_and_sweeps_at_once_never_deadlock_or_fail(seeded):
    outcome = presence_load.run(seeded, clients=8, ops=60, users=6, seed=7)
    assert outcome.ops == 480
    assert outcome.kinds["sweep"] > 20 and outcome.kinds["crossed"] > 20 and outcome.kinds["flow"] > 10
    assert (outcome.deadlocks, outcome.errors) == (0, 0), outcome.messages
    drift = query(seeded, """SELECT count(*) FROM presence.user_presence p WHERE p.device_count <>
                             (SELECT count(*) FROM presence.connections c
                              WHERE c.user_id = p.user_id AND c.disconnected_at IS NULL)""")
    assert drift == [(0,)]
    # Every connection the sweep ended was silent; every revived one was given back its liveness.
    assert query(seeded, """SELECT count(*) FROM presence.connections WHERE disconnect_reason = 'heartbeat_timeout'
                            AND last_heartbeat_at >= disconnected_at - interval '30 seconds'""") == [(0,)]


# --- HOT updates ---


def hot_counts(url: str, table: str, statement: str, params: tuple, times: int) -> tuple[int, int]:
    """(updates, HOT updates) of ``table`` caused by running ``statement`` ``times`` times, one
    transaction each, as pg_stat_user_tables counts them."""
    def read() -> tuple[int, int]:
        with psycopg.connect(url, autocommit=True) as conn:
            return conn.execute("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relid = %s::regclass",
                                (table,)).fetchone()

    before = read()
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(times):
            conn.execute(statement, params)
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("SELECT 1")
    deadline = time.monotonic() + 5
    while (after := read())[0] - before[0] < times and time.monotonic() < deadline:
        time.sleep(0.05)
    return after[0] - before[0], after[1] - before[1]


def test_heartbeats_and_typing_refreshes_are_hot_updates(seeded):
    query(seeded, SET_TYPING, (GROUP, CAROL, "device-carol-android"))
    heartbeats = hot_counts(seeded, "presence.connections", HEARTBEAT, (ALICE_PHONE,), 1000)
    refreshes = hot_counts(seeded, "presence.typing_indicators", SET_TYPING, (GROUP, CAROL, "device-carol-android"),
                           1000)
    print(f"HOT: heartbeats {heartbeats[1]}/{heartbeats[0]}, typing refreshes {refreshes[1]}/{refreshes[0]}")
    assert heartbeats[0] == 1000 and heartbeats[1] >= 950
    assert refreshes[0] == 1000 and refreshes[1] >= 950


# --- roles ---


def as_role(url: str, role: str, sql: str, params: tuple = ()) -> list[tuple]:
    """Run one statement as ``role`` (SET ROLE in a transaction that is rolled back)."""
    with psycopg.connect(url) as conn:
        conn.execute(f"SET ROLE {role}")
        cur = conn.execute(sql, params)
        rows = cur.fetchall() if cur.description else []
        conn.rollback()
        return rows


def refused(url: str, role: str, sql: str, params: tuple = ()) -> str:
    with pytest.raises(psycopg.Error) as failure:
        as_role(url, role, sql, params)
    return failure.value.sqlstate


def test_the_roles_can_do_their_job_and_no_more(seeded):
    assert query(seeded, "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'echo\\_%%' ORDER BY 1") == [
        ("echo_app", False), ("echo_readonly", False)]
    assert as_role(seeded, "echo_app", "SELECT (presence.update_user_status(%s, 'busy')).status", (ALICE,)) == [
        ("busy",)]
    as_role(seeded, "echo_app", TRACK_CONNECTION, ("gw-3:x", BOB, "d", "web", None, None, "gw-3"))
    as_role(seeded, "echo_app", SET_TYPING, (GROUP, CAROL, "d"))
    assert as_role(seeded, "echo_app", "SELECT presence.cleanup_stale_connections()") == [(0,)]
    as_role(seeded, "echo_app", "INSERT INTO analytics.events (name, occurred_at) VALUES ('app.opened', now())")
    assert refused(seeded, "echo_app", "DELETE FROM presence.status_history") == "42501"
    assert refused(seeded, "echo_app", "CREATE TABLE presence.t (id int)") == "42501"
    assert refused(seeded, "echo_app", "SELECT analytics.create_monthly_partitions('analytics.events')") == "42501"

    assert as_role(seeded, "echo_readonly", "SELECT count(*) FROM presence.user_presence") == [(4,)]
    assert as_role(seeded, "echo_readonly", "SELECT email FROM auth.users WHERE id = %s", (ALICE,)) == [
        ("alice@echo.test",)]
    assert refused(seeded, "echo_readonly", "SELECT password_hash FROM auth.users") == "42501"
    assert refused(seeded, "echo_readonly", "UPDATE users.profiles SET bio = 'x'") == "42501"
    assert refused(seeded, "echo_readonly", "SELECT presence.cleanup_stale_connections()") == "42501"

    public = query(seeded, """SELECT p.oid::regprocedure::text FROM pg_proc p, aclexplode(p.proacl) a
                              WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'
                                AND p.proname IN ('cleanup_stale_connections', 'cleanup_expired_typing',
                                                  'create_monthly_partitions')""")
    assert public == []
    assert query(seeded, "SELECT proacl IS NULL FROM pg_proc WHERE proname = 'cleanup_stale_connections'") == [(False,)]


def test_a_non_superuser_owner_can_apply_every_migration(pg_server, cli):
    """The roles exist (the template made them): an owner without CREATEROLE only grants."""
    owner = f"pgm_owner_{uuid.uuid4().hex[:8]}"
    with pg_server.admin() as admin:
        admin.execute(f"CREATE ROLE {owner} LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB")
    name = pg_server.create_db()
    try:
        with pg_server.admin() as admin:
            admin.execute(f'ALTER DATABASE "{name}" OWNER TO {owner}')
        url = pg_server.url(name, user=owner)
        up = cli("up", url=url)
        assert up.returncode == 0, up.stderr
        assert query(url, "SELECT has_function_privilege('echo_app', 'presence.set_typing(uuid, uuid, text)', "
                          "'EXECUTE'), current_user") == [(True, owner)]
        down = cli("down", "--all", url=url)
        assert down.returncode == 0, down.stderr
        assert query(url, """SELECT count(*) FROM pg_shdepend d JOIN pg_database b ON b.oid = d.dbid
                             WHERE b.datname = current_database()
                               AND d.refobjid IN (SELECT oid FROM pg_roles WHERE rolname LIKE 'echo\\_%%')""") == [(0,)]
        assert query(url, "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'echo\\_%%'") == [(2,)]  # not its to drop
    finally:
        pg_server.drop_db(name)
        with pg_server.admin() as admin:
            admin.execute(f"DROP ROLE IF EXISTS {owner}")


def test_missing_roles_are_named_for_a_superuser_and_dropped_again_by_the_down(pg_server, cli, tmp_path):
    """000006 with role names no database uses yet (the real ones exist cluster-wide while tests run)."""
    tag = uuid.uuid4().hex[:8]
    names = {"echo_app": f"pgm_app_{tag}", "echo_readonly": f"pgm_ro_{tag}"}
    files = {}
    for direction in ("up", "down"):
        text = (MIGRATIONS / f"000006_roles_and_grants.{direction}.sql").read_text()
        for real, other in names.items():
            text = text.replace(f"'{real}'", f"'{other}'").replace(f" {real}", f" {other}")
        assert "echo_app" not in text and "echo_readonly" not in text
        files[direction] = tmp_path / f"{direction}.sql"
        files[direction].write_text(text)
    owner = f"pgm_owner_{tag}"
    with pg_server.admin() as admin:
        admin.execute(f"CREATE ROLE {owner} LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB")
    name = pg_server.create_db()
    try:
        with pg_server.admin() as admin:
            admin.execute(f'ALTER DATABASE "{name}" OWNER TO {owner}')
        as_owner, as_super = pg_server.url(name, user=owner), pg_server.url(name)
        assert cli("up", "--to", "5", url=as_owner).returncode == 0
        refused_run = psql_file(as_owner, files["up"], "-1")
        assert refused_run.returncode != 0
        assert f"roles {names['echo_app']}, {names['echo_readonly']} are missing and {owner} may not create them" \
            in refused_run.stderr
        assert f"CREATE ROLE {names['echo_app']} NOLOGIN; CREATE ROLE {names['echo_readonly']} NOLOGIN;" \
            in refused_run.stderr
        roles = "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE %s ORDER BY 1"
        assert query(as_super, roles, (f"pgm\\_%\\_{tag}",)) == [(owner, True)]  # nothing was created

        created = psql_file(as_super, files["up"], "-1")
        assert created.returncode == 0, created.stderr
        assert query(as_super, roles, (f"pgm\\_%\\_{tag}",)) == [
            (names["echo_app"], False), (owner, True), (names["echo_readonly"], False)]
        dropped = psql_file(as_super, files["down"], "-1")
        assert dropped.returncode == 0, dropped.stderr
        assert query(as_super, roles, (f"pgm\\_%\\_{tag}",)) == [(owner, True)]
    finally:
        pg_server.drop_db(name)
        with pg_server.admin() as admin:
            for role in (*names.values(), owner):
                admin.execute(f"DROP ROLE IF EXISTS {role}")


# --- subscriptions, partitions, constraints ---


def test_subscriptions_upsert_on_their_natural_key(seeded):
    upsert = """INSERT INTO presence.subscriptions (subscriber_id, target_user_id, subscription_type, conversation_id,
                                                    expires_at)
                VALUES (%s, %s, 'temporary', NULL, now() + make_interval(mins => %s))
                ON CONFLICT (subscriber_id, target_user_id, subscription_type, conversation_id)
                DO UPDATE SET expires_at = EXCLUDED.expires_at RETURNING xmax = 0"""
    assert query(seeded, upsert, (DAVE, ALICE, 5)) == [(True,)]
    assert query(seeded, upsert, (DAVE, ALICE, 10)) == [(False,)]  # NULL conversations conflict: updated
    assert query(seeded, """SELECT count(*), max(expires_at) > now() + interval '9 minutes'
                            FROM presence.subscriptions WHERE subscriber_id = %s""", (DAVE,)) == [(1, True)]


def test_logs_are_routed_to_monthly_partitions(seeded):
    query(seeded, """INSERT INTO analytics.events (name, occurred_at, received_at)
                     VALUES ('app.opened', now(), now()), ('app.opened', now(), now() + interval '10 years')""")
    month = query(seeded, "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY_MM'), "
                          "to_char(now() AT TIME ZONE 'UTC' + interval '10 years', 'YYYY_MM')")[0]
    placed = "SELECT tableoid::regclass::text FROM analytics.events ORDER BY received_at"
    assert query(seeded, placed) == [(f"analytics.events_{month[0]}",), ("analytics.events_default",)]
    history_in = "SELECT DISTINCT tableoid::regclass::text FROM presence.status_history"
    assert query(seeded, history_in) == [("presence.status_history_default",)]  # seeded after the migration
    assert query(seeded, "SELECT analytics.create_monthly_partitions('presence.status_history')") == [
        ("presence.status_history_2024_05",)]
    assert query(seeded, history_in) == [("presence.status_history_2024_05",)]
    query(seeded, "SELECT presence.update_user_status(%s, 'busy')", (ALICE,))
    assert query(seeded, "SELECT tableoid::regclass::text FROM presence.status_history ORDER BY id DESC LIMIT 1") == [
        (f"presence.status_history_{month[0]}",)]

    made = query(seeded, "SELECT analytics.create_monthly_partitions('analytics.events', 3)")
    assert made == [(f"analytics.events_{month[1]}",)]  # the month waiting in the default partition
    assert query(seeded, placed) == [(f"analytics.events_{month[0]}",), (f"analytics.events_{month[1]}",)]
    assert query(seeded, "SELECT analytics.create_monthly_partitions('analytics.events', 3)") == []
    assert len(query(seeded, "SELECT analytics.create_monthly_partitions('analytics.events', 5)")) == 2
    with pytest.raises(psycopg.Error) as plain:
        query(seeded, "SELECT analytics.create_monthly_partitions('presence.connections')")
    assert plain.value.sqlstate == "42809"


def test_client_text_has_length_limits(seeded):
    with pytest.raises(psycopg.Error) as long_key:
        query(seeded, """INSERT INTO messages.messages (conversation_id, sender_id, body, client_message_id)
                         VALUES (%s, %s, 'hi', repeat('x', 3200))""", (DIRECT, ALICE))
    assert long_key.value.sqlstate == "23514"
    assert long_key.value.diag.constraint_name == "messages_client_message_id_length_check"
    with pytest.raises(psycopg.Error) as long_device:
        query(seeded, SET_TYPING, (GROUP, CAROL, "d" * 129))
    assert long_device.value.diag.constraint_name == "typing_indicators_device_id_length_check"
    query(seeded, """INSERT INTO messages.messages (conversation_id, sender_id, body, client_message_id)
                     VALUES (%s, %s, 'hi', repeat('x', 128))""", (DIRECT, ALICE))


def test_unread_receipts_have_their_own_index(seeded):
    with psycopg.connect(seeded) as conn:
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN SELECT message_id FROM messages.message_status WHERE user_id = %s AND read_at IS NULL "
            "ORDER BY created_at", (CAROL,)).fetchall())
    assert "message_status_unread_idx" in plan


def test_circular_foreign_keys_can_be_deferred(seeded):
    assert query(seeded, """SELECT conname, condeferrable, condeferred FROM pg_constraint
                            WHERE conname IN ('conversations_last_message_id_fkey', 'messages_conversation_id_fkey',
                                              'messages_thread_fkey', 'threads_root_message_fkey')
                            ORDER BY 1""") == [
        ("conversations_last_message_id_fkey", True, False), ("messages_conversation_id_fkey", True, False),
        ("messages_thread_fkey", True, False), ("threads_root_message_fkey", True, False)]
    conv, msg = str(uuid.uuid4()), str(uuid.uuid4())
    with psycopg.connect(seeded) as conn:  # the message first, its conversation after: one transaction
        conn.execute("SET CONSTRAINTS ALL DEFERRED")
        conn.execute("INSERT INTO messages.messages (id, conversation_id, sender_id, body) VALUES (%s, %s, %s, 'x')",
                     (msg, conv, ALICE))
        conn.execute("INSERT INTO messages.conversations (id, type, title, last_message_id) "
                     "VALUES (%s, 'group', 'g', %s)", (conv, msg))
    assert query(seeded, "SELECT last_message_id::text FROM messages.conversations WHERE id = %s", (conv,)) == [
        (msg,)]


# --- every new migration's down, by the runner and by psql ---


def test_up_down_up_restores_each_state_with_the_data(pg_server, db_url, cli):
    assert cli("up", "--to", "2", url=db_url).returncode == 0
    at_two = logical(catalog_snapshot(db_url))
    assert cli("up", url=db_url).returncode == 0
    assert cli("seed", url=db_url).returncode == 0
    query(db_url, "INSERT INTO analytics.events (name, occurred_at, received_at) "
                  "VALUES ('app.opened', now(), now()), ('app.opened', '2024-01-02', '2024-01-02')")
    query(db_url, "UPDATE presence.typing_indicators SET device_id = NULL")  # the one column a down drops
    for table in ("analytics.events", "presence.status_history"):  # the months of the rows, as 000004 makes them
        query(db_url, "SELECT analytics.create_monthly_partitions(%s)", (table,))
    at_head = logical(catalog_snapshot(db_url))
    data = data_digest(db_url)

    down = cli("down", "--to", "2", url=db_url)
    assert down.returncode == 0, down.stderr
    assert logical(catalog_snapshot(db_url)) == at_two
    device_counts = query(db_url, "SELECT user_id::text, device_count FROM presence.user_status ORDER BY 1")
    assert device_counts == [(ALICE, 1), (BOB, 1), (CAROL, 0), (DAVE, 0)]
    assert query(db_url, "SELECT max(id) FROM presence.status_history") == [(4,)]
    assert query(db_url, "SELECT count(*) FROM analytics.events") == [(2,)]

    assert cli("up", url=db_url).returncode == 0
    assert logical(catalog_snapshot(db_url)) == at_head
    assert data_digest(db_url) == data
    query(db_url, "SELECT presence.update_user_status(%s, 'busy')", (ALICE,))
    assert query(db_url, "SELECT max(id) FROM presence.status_history") == [(5,)]  # the sequence went on


def test_the_new_migrations_go_down_and_up_again_through_psql(pg_server, db_url, cli):
    """After init, the whole chain with psql -1 -f, down to 000002 by hand, and up again."""
    assert cli("init", url=db_url).returncode == 0
    ups = sorted(MIGRATIONS.glob("*.up.sql"))
    for up_file in ups:
        result = psql_file(db_url, up_file, "-1")
        assert result.returncode == 0, f"{up_file.name}: {result.stderr}"
    at_head = logical(catalog_snapshot(db_url))
    for up_file in reversed(ups[2:]):
        result = psql_file(db_url, up_file.with_name(up_file.name.replace(".up.", ".down.")), "-1")
        assert result.returncode == 0, f"{up_file.name} down: {result.stderr}"
    assert query(db_url, "SELECT version FROM public.schema_migrations ORDER BY 1") == [(1,), (2,)]
    assert query(db_url, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'presence.user_status'::regclass "
                         "AND attname = 'device_count' AND NOT attisdropped") == [(1,)]
    for up_file in ups[2:]:
        result = psql_file(db_url, up_file, "-1")
        assert result.returncode == 0, f"{up_file.name} again: {result.stderr}"
    assert logical(catalog_snapshot(db_url)) == at_head
    recorded = query(db_url, "SELECT version FROM public.schema_migrations ORDER BY 1")
    assert recorded == [(v,) for v in sorted(SELF_RECORDING)]
    if len(SELF_RECORDING) == len(ups):  # a file that does not record itself stays pending, as it should
        status = cli("status", "--check", url=db_url)
        assert status.returncode == 0, status.stdout + status.stderr


# --- plpgsql_check ---


def test_plpgsql_check_finds_nothing_in_any_function(echo_url):
    if not query(echo_url, "SELECT 1 FROM pg_available_extensions WHERE name = 'plpgsql_check'"):
        pytest.skip("plpgsql_check is not installed on this server (.ci/run installs the distribution's "
                    "postgresql-NN-plpgsql-check where it can)")
    query(echo_url, "CREATE EXTENSION plpgsql_check")
    functions = query(echo_url, """
        SELECT p.oid::regprocedure::text,
               (SELECT t.tgrelid::regclass::text FROM pg_trigger t WHERE t.tgfoid = p.oid ORDER BY t.tgname LIMIT 1)
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
         WHERE l.lanname = 'plpgsql' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND p.proname NOT LIKE 'plpgsql_check%%' ORDER BY 1""")
    assert len(functions) >= 8
    found = {}
    for signature, relation in functions:
        if relation is None and "trigger" in query(echo_url, "SELECT prorettype::regtype::text FROM pg_proc "
                                                            "WHERE oid = %s::regprocedure", (signature,))[0][0]:
            continue  # a trigger function no trigger uses
        rows = query(echo_url, "SELECT level, message, lineno FROM plpgsql_check_function_tb(%s::regprocedure, "
                               "coalesce(%s::regclass, 0), fatal_errors => false, extra_warnings => true, "
                               "security_warnings => true)", (signature, relation))
        if rows:
            found[signature] = rows
    assert found == {}


# --- seeds ---


def test_seeds_fill_every_presence_table(seeded):
    tables = query(seeded, """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                              WHERE n.nspname = 'presence' AND c.relkind IN ('r', 'p') AND NOT c.relispartition""")
    counts = {t: query(seeded, f"SELECT count(*) FROM presence.{t}")[0][0] for (t,) in tables}
    assert counts == {"user_status": 4, "connections": 2, "activity_log": 3, "typing_indicators": 1,
                      "subscriptions": 2, "status_history": 4}

