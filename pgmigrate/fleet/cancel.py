"""Ctrl-C in a fleet run: cancel what the targets' runners are doing, from the server side.

Ctrl-C reaches only the main thread, while the targets' runners wait in other threads. Every
session a runner opens for a target carries that target's ``application_name`` tag (see
``FleetTarget.tagged``), so a connection of our own to the same server finds them in
pg_stat_activity: a statement running is cancelled (its migration rolls back, as with Ctrl-C on a
single run, and the runner stops there); a session idle inside a transaction that holds no advisory
lock, a runner still waiting for another's migration lock or between two statements of a migration,
is ended, which rolls that transaction back. A runner's lock session is left alone: the runner
releases it as it stops.
"""

from __future__ import annotations

import contextlib
import logging

from .targets import FleetTarget

log = logging.getLogger("pgmigrate")

CANCEL_SQL = """
SELECT a.pid,
       CASE WHEN a.state = 'active' THEN pg_cancel_backend(a.pid)
            WHEN a.state LIKE 'idle in transaction%%' AND NOT EXISTS (
                 SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'advisory' AND l.granted)
            THEN pg_terminate_backend(a.pid)
       END
FROM pg_stat_activity a
WHERE a.application_name = %s AND a.pid <> pg_backend_pid()
"""


class Canceller:
    """One connection per running target (opened at the first tick), asked on each tick to cancel
    the sessions tagged for that target."""

    def __init__(self, tags: dict[str, str]) -> None:
        self.tags = tags
        self.conns: dict[str, object] = {}

    def tick(self, targets: list[FleetTarget]) -> None:
        import psycopg

        from ..db import connect
        from ..errors import ConnectError
        from ..target import Target

        for target in targets:
            try:
                conn = self.conns.get(target.name)
                if conn is None:
                    conn = connect(Target(target.conninfo, f"target {target.name}"),
                                   application_name="pgmigrate-fleet-cancel", watch_client=False)
                    self.conns[target.name] = conn
                conn.execute(CANCEL_SQL, (self.tags[target.name],))
            except (psycopg.Error, ConnectError) as exc:  # the runner's own error will say what went wrong
                log.debug("cancelling %s: %s", target.name, type(exc).__name__)
                self._drop(target.name)

    def _drop(self, name: str) -> None:
        conn = self.conns.pop(name, None)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def close(self) -> None:
        for name in list(self.conns):
            self._drop(name)
