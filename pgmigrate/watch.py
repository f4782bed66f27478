"""Lock timeouts: naming who blocks a migration, and retrying it with backoff.

Both executors (in-process and psql) use these: a migration that hits ``lock_timeout`` (55P03) is
retried after a pause that doubles each time, and when retries run out its error names the
sessions that held the lock it waited for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg

from .config import Limits
from .db import connect, jitter, rows
from .discovery import SqlFile, display_path
from .errors import MigrateError, MigrationFailed
from .target import Target

LOCK_NOT_AVAILABLE = "55P03"


def retry_on_lock_timeout(attempt: Callable[[], None], limits: Limits, on_retry: Callable[[str], None],
                          file: SqlFile) -> None:
    """Run ``attempt``; while it fails with a lock timeout (55P03), wait with backoff and run it again."""
    tries = 0
    while True:
        try:
            attempt()
            return
        except MigrationFailed as exc:
            tries += 1
            if not wait_before_retry(exc, tries, limits, on_retry, file):
                raise


def wait_before_retry(exc: MigrationFailed, retry: int, limits: Limits, on_retry: Callable[[str], None],
                      file: SqlFile) -> bool:
    """Whether ``exc`` is a lock timeout to retry (as retry number ``retry``); if so, say so and wait
    with backoff first."""
    if exc.sqlstate != LOCK_NOT_AVAILABLE or retry > limits.lock_retries:
        return False
    delay = min(0.5 * 2 ** (retry - 1), 8.0) * jitter()
    blocked = next((d for d in exc.details if d.startswith("blocked by")), "")
    on_retry(f"{display_path(file)}: lock timeout{f' ({blocked})' if blocked else ''}; retry {retry} of "
             f"{limits.lock_retries} in {delay:.1f} s")
    time.sleep(delay)
    return True


class BlockerWatch:
    """Names the sessions that block a migration, for the lock-timeout message.

    One thread for the whole run, started on first use: a migration arms it with the backend pid
    that runs it and disarms it when done (two attribute writes, nothing else per migration). The
    thread wakes every 0.1 s and, once a migration has run for a while, asks ``pg_blocking_pids``
    from a connection of its own."""

    GRACE = 0.3
    TICK = 0.1

    def __init__(self, target: Target) -> None:
        self.target = target
        self.armed: tuple[int, float] | None = None  # (backend pid, since)
        self.found: tuple[tuple[int, float], str] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def arm(self, pid: int) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pgmigrate-watch", daemon=True)
            self._thread.start()
        self.armed = (pid, time.monotonic())

    def disarm(self) -> str:
        """Stop watching; return who blocked the migration just watched ('' if nobody was seen)."""
        armed, self.armed = self.armed, None
        found = self.found
        return found[1] if found and found[0] == armed else ""

    def close(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        conn = None
        try:
            while not self._stop.wait(self.TICK):
                armed = self.armed
                if armed is None or time.monotonic() - armed[1] < self.GRACE:
                    continue
                conn = conn or connect(self.target, application_name="pgmigrate-watch")
                found = rows(conn,
                    """SELECT a.pid, coalesce(nullif(a.application_name, ''), '?'), a.state,
                              left(regexp_replace(a.query, '\\s+', ' ', 'g'), 80)
                       FROM pg_stat_activity a WHERE a.pid = ANY(pg_blocking_pids(%s))""",
                    (armed[0],),
                )
                if found:
                    self.found = (armed, "; ".join(f"pid {p} (application {app}, {state}: {q})"
                                                   for p, app, state, q in found))
        except (psycopg.Error, MigrateError):
            return
        finally:
            if conn is not None:
                conn.close()


@contextmanager
def watching(watch: BlockerWatch | None, pid: int) -> Iterator[None]:
    """Watch ``pid`` while the block runs; a lock timeout inside gets 'blocked by ...' added."""
    if watch is None:
        yield
        return
    watch.arm(pid)
    try:
        yield
    except MigrationFailed as exc:
        note_blockers(exc, watch)
        raise
    finally:
        watch.disarm()


def note_blockers(exc: MigrationFailed, watch: BlockerWatch | None) -> None:
    """After a lock timeout, add who blocked the migration to the error's details."""
    blockers = watch.disarm() if watch and exc.sqlstate == LOCK_NOT_AVAILABLE else ""
    if blockers:
        exc.details.append(f"blocked by {blockers}")
