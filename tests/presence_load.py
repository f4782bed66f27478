"""A presence-service workload for the Echo database: several gateway nodes at once sending the realtime
gateway's statements (connect, heartbeat, disconnect, status, typing, the connect flow and a
status-then-connection transaction in both user orders) while others run the stale-connection
sweep. Used by tests/test_echo_presence.py; runs against the schema of 000002 as well, to compare.

``run(url, clients=8, ops=60, seed=1)`` returns the counts of operations, deadlocks and other
errors (with the first few messages)."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import psycopg

GROUP = "10000000-0000-0000-0000-000000000002"
TYPISTS = ["a1111111-1111-1111-1111-111111111111", "b2222222-2222-2222-2222-222222222222",
           "c3333333-3333-3333-3333-333333333333"]
STATUSES = ["online", "away", "busy", "offline"]

# The gateway's statements: TrackConnection as the design guide writes it (an upsert that refreshes the
# heartbeat of a known connection), a heartbeat, a clean disconnect.
TRACK = """INSERT INTO presence.connections (connection_id, user_id, device_id, device_type, ip_address,
                                  user_agent, server_id)
VALUES (%s, %s, %s, 'web', '198.51.100.7', 'loadtest', 'gw-load')
ON CONFLICT (connection_id) DO UPDATE SET last_heartbeat_at = NOW()"""
HEARTBEAT = "UPDATE presence.connections SET last_heartbeat_at = NOW() WHERE connection_id = %s"
# Not a service statement: it makes a client look silent for a minute, so the sweep has work to do.
SILENCE = """UPDATE presence.connections SET last_heartbeat_at = NOW() - interval '1 minute'
WHERE connection_id = ANY(%s)"""
DISCONNECT = """UPDATE presence.connections SET disconnected_at = NOW(), disconnect_reason = 'client_closed'
WHERE connection_id = %s AND disconnected_at IS NULL"""
STATUS = "SELECT presence.update_user_status(%s, %s, %s)"
TYPING = "SELECT presence.set_typing(%s, %s)"
SWEEP = "SELECT presence.cleanup_stale_connections()"


@dataclass
class Outcome:
    ops: int = 0
    deadlocks: int = 0
    errors: int = 0
    kinds: Counter = field(default_factory=Counter)
    messages: list[str] = field(default_factory=list)


def make_users(url: str, count: int) -> list[str]:
    """``count`` new accounts without any presence row (so first status updates race with connects)."""
    ids = [str(uuid.uuid4()) for _ in range(count)]
    with psycopg.connect(url, autocommit=True) as conn:
        for n, user in enumerate(ids):
            conn.execute("INSERT INTO auth.users (id, email, status) VALUES (%s, %s, 'active')",
                         (user, f"load{n}.{user[:8]}@echo.test"))
    return ids


def client(url: str, gateway: int, users: list[str], ops: int, rng: random.Random, out: Outcome,
           lock: threading.Lock, start: threading.Barrier) -> None:
    """One gateway node: it owns its sockets (two per user here), so no other client writes them; status
    updates go to any user, and the sweep covers every gateway."""
    conns = [f"gw{gateway}:{n}:{d}" for n in range(len(users)) for d in range(2)]
    owner = {c: users[int(c.split(":")[1])] for c in conns}

    def track(cur, conn_id):
        cur.execute(TRACK, (conn_id, owner[conn_id], "dev-" + conn_id.rsplit(":", 1)[1]))

    steps = {
        "connect": lambda cur: track(cur, rng.choice(conns)),
        "heartbeat": lambda cur: cur.execute(HEARTBEAT, (rng.choice(conns),)),
        "silence": lambda cur: cur.execute(SILENCE, (rng.sample(conns, 3),)),
        "disconnect": lambda cur: cur.execute(DISCONNECT, (rng.choice(conns),)),
        "status": lambda cur: cur.execute(STATUS, (rng.choice(users), rng.choice(STATUSES), "dev-0")),
        "typing": lambda cur: cur.execute(TYPING, (GROUP, rng.choice(TYPISTS))),
        "sweep": lambda cur: cur.execute(SWEEP),
    }

    def pause():  # the service's own work between two statements of a transaction
        time.sleep(rng.uniform(0, 0.01))

    def connect_flow(cur):  # a device connects: its connection, then the user's status, one transaction
        conn_id = rng.choice(conns)
        track(cur, conn_id)
        pause()
        cur.execute(STATUS, (owner[conn_id], "online", "dev-0"))

    def crossed(cur):  # status of one user, then a connection of another: run in both orders at once
        a, b = rng.sample(users, 2)
        cur.execute(STATUS, (a, rng.choice(STATUSES), "dev-0"))
        pause()
        track(cur, f"gw{gateway}:{users.index(b)}:{rng.randrange(2)}")

    mix = [*["connect", "heartbeat", "heartbeat", "silence", "disconnect", "status", "typing", "sweep", "sweep"],
           "flow", "crossed", "crossed"]
    with psycopg.connect(url, application_name=f"presence-load-gw{gateway}") as db:
        db.execute("SET lock_timeout = '20s'")
        db.commit()
        start.wait()
        for _ in range(ops):
            kind = rng.choice(mix)
            try:
                with db.transaction(), db.cursor() as cur:
                    {"flow": connect_flow, "crossed": crossed}.get(kind, steps.get(kind))(cur)
                    pause()  # the commit's round trip
                failed = None
            except psycopg.Error as exc:
                failed = exc
            with lock:
                out.ops += 1
                out.kinds[kind] += 1
                if failed is not None and failed.sqlstate == "40P01":
                    out.deadlocks += 1
                elif failed is not None:
                    out.errors += 1
                if failed is not None and len(out.messages) < 5:
                    out.messages.append(f"{kind}: {failed.sqlstate} {str(failed).splitlines()[0]}")


def run(url: str, *, clients: int = 8, ops: int = 60, users: int = 6, seed: int = 1) -> Outcome:
    """Run the workload on a seeded Echo database; ``users`` fresh accounts are created for it."""
    ids = make_users(url, users)
    out, lock, start = Outcome(), threading.Lock(), threading.Barrier(clients)
    threads = [threading.Thread(target=client,
                                args=(url, n, ids, ops, random.Random(seed * 1000 + n), out, lock, start))
               for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out
