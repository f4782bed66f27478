"""The shadow database: a throwaway database that ``check`` runs the migrations on.

It is created (``pgm_check_<random>``, from ``template0``) through a maintenance database on the
chosen server and dropped with ``DROP DATABASE ... WITH (FORCE)`` when the check ends: normally,
on an error, on Ctrl-C and on SIGTERM (turned into KeyboardInterrupt while a check runs). A second
Ctrl-C while it is being dropped waits for the drop. Only ``kill -9`` leaves one behind; its name
says what it is.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import signal
import threading
from collections.abc import Callable, Iterator

import psycopg
from psycopg import errors, sql

from .. import db
from ..errors import ConnectError
from ..target import APPLICATION_NAME, Target

log = logging.getLogger("pgmigrate")

PREFIX = "pgm_check_"
MAINTENANCE_DB = "postgres"


def connect(target: Target, *, dbname: str | None = None, read_only: bool = False) -> psycopg.Connection:
    """The runner's connection (``db.connect``), named for ``check``."""
    return db.connect(target, dbname=dbname, application_name=f"{APPLICATION_NAME}-check", watch_client=False,
                      read_only=read_only)


class ShadowServer:
    """Where shadow databases are made: ``target``'s server, through its maintenance database."""

    def __init__(self, target: Target, maintenance: str = MAINTENANCE_DB) -> None:
        self.target = target
        self.maintenance = maintenance

    def describe(self) -> str:
        params = self.target.params()
        return f"host {params.get('host') or params.get('hostaddr') or 'localhost'}, port {params.get('port') or 5432}"

    def _maintenance(self) -> psycopg.Connection:
        try:
            return connect(self.target, dbname=self.maintenance)
        except ConnectError as exc:
            if f'database "{self.maintenance}" does not exist' not in exc.message:
                raise
            raise ConnectError(f'check makes its throwaway database through the database "{self.maintenance}", '
                               f"which does not exist on {self.describe()}; name an existing one with --shadow URL "
                               "(the URL's database is used)") from None

    def create(self) -> Target:
        name = PREFIX + secrets.token_hex(6)
        with self._maintenance() as conn:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
            except errors.InsufficientPrivilege:
                raise ConnectError(
                    f"check needs a user that may create databases (CREATEDB) on {self.describe()}; use such a "
                    "user, or name another server with --shadow URL") from None
        log.debug("created shadow database %s", name)
        return self.target.with_dbname(name)

    def drop(self, target: Target) -> None:
        name = target.params()["dbname"]
        with self._maintenance() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        log.debug("dropped shadow database %s", name)


class ShadowDatabase:
    """The current shadow database; ``renew()`` replaces it with a new, empty one."""

    def __init__(self, server: ShadowServer) -> None:
        self.server = server
        self.target: Target | None = None

    @property
    def name(self) -> str:
        return self.target.params()["dbname"] if self.target else ""

    def open(self) -> Target:
        self.target = self.server.create()
        return self.target

    def renew(self) -> Target:
        self.close()
        return self.open()

    def close(self) -> None:
        if self.target is not None:
            target, self.target = self.target, None
            with signals_deferred():
                self.server.drop(target)


@contextlib.contextmanager
def shadow_database(server: ShadowServer, on_note: Callable[[str], None]) -> Iterator[ShadowDatabase]:
    """A shadow database, dropped on the way out whatever happens (see the module docstring)."""
    shadow = ShadowDatabase(server)
    with sigterm_interrupts():
        shadow.open()
        on_note(f"shadow database {shadow.name} on {server.describe()} (dropped when done)")
        try:
            yield shadow
        finally:
            name = shadow.name
            try:
                shadow.close()
            except (psycopg.Error, ConnectError) as exc:
                on_note(f"warning: could not drop the shadow database {name} ({exc}); drop it with "
                        f"'DROP DATABASE {name} WITH (FORCE)'")


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block is done (then raise KeyboardInterrupt)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _frame: caught.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if caught:
        raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt inside the block, so the cleanup of a Ctrl-C runs for it too."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
