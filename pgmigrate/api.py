"""The Python API, for applications that migrate on start.

    import logging, pgmigrate

    logging.basicConfig(level=logging.INFO)          # progress goes to the logger "pgmigrate"
    applied = pgmigrate.run_migrations(os.environ["DATABASE_URL"], migrations_dir="migrations/postgres")
    for result in applied:                           # pgmigrate.Result(action, version, label, ms)
        ...

Every function opens its own connections and closes them, takes the same migration lock as the
command line (so several instances of an application starting at once apply each migration once),
returns documented objects (``Result``, ``Status``, ``TrackedRow``), never prints, logs through the
standard ``logging`` module (logger ``pgmigrate``: each migration at INFO, lock waits, retries and
warnings at WARNING), and raises the package's exceptions (``pgmigrate.MigrateError`` and its
subclasses), whose messages speak in this API's terms.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .config import DEFAULT_MIGRATIONS_DIR, Settings
from .engine import Runner
from .results import Result, Status
from .target import Target
from .tracking import Row as TrackedRow
from .tracking import parse_table

log = logging.getLogger("pgmigrate")

__all__ = ["Result", "Status", "TrackedRow", "current_version", "force", "history", "rollback", "run_migrations",
           "status"]


def _log_result(result: Result) -> None:
    log.info("%s %s (%.1f ms)", result.action, result.label, result.ms)


def _runner(url: str, migrations_dir: str | Path | None, lock_wait: float | None = None, table: str | None = None,
            **options: object) -> Runner:
    settings = Settings(Target(url, "the database URL"), Path(migrations_dir or DEFAULT_MIGRATIONS_DIR),
                        table=parse_table(table, "table") if table is not None else None)
    if lock_wait is not None:
        settings.lock_wait = float(lock_wait)
    for key, value in options.items():
        if value is not None:
            setattr(settings, key, value)
    return Runner(settings, on_result=_log_result, on_note=log.warning,
                  on_output=log.debug if log.isEnabledFor(logging.DEBUG) else None)


def run_migrations(url: str, *, migrations_dir: str | Path | None = None, to: int | None = None,
                   steps: int | None = None, allow_out_of_order: bool = False, ignore_changed: bool = False,
                   single_transaction: bool = False, lock_wait: float | None = None,
                   lock_timeout: float | None = None, statement_timeout: float | None = None,
                   variables: dict[str, str] | None = None, table: str | None = None) -> list[Result]:
    """Apply the pending migrations in version order (up to version ``to``, at most ``steps`` of
    them), each in its own transaction with its tracking row, or all in one with
    ``single_transaction``, then, when none is left pending, the repeatable migrations (``R__*.sql``)
    that changed. Returns one ``Result`` per file applied (an empty list when there was nothing to
    apply). ``lock_wait``: seconds to wait for another runner's lock (default 60); ``lock_timeout`` /
    ``statement_timeout``: seconds, per migration; ``variables``: psql variables; ``table``: the
    tracking table, ``SCHEMA.NAME`` (default public.schema_migrations), as for every function here."""
    with _runner(url, migrations_dir, lock_wait, table, lock_timeout=lock_timeout,
                 statement_timeout=statement_timeout, variables=variables) as runner:
        return runner.up(to=to, steps=steps, allow_out_of_order=allow_out_of_order, ignore_changed=ignore_changed,
                         single_transaction=single_transaction)


def rollback(url: str, steps: int = 1, *, migrations_dir: str | Path | None = None, to: int | None = None,
             lock_wait: float | None = None, variables: dict[str, str] | None = None,
             table: str | None = None) -> list[Result]:
    """Roll back the newest ``steps`` migrations (or everything above version ``to``), newest first;
    one ``Result`` per migration rolled back. Repeatable migrations are not rolled back: they are
    marked to be applied again by the next ``run_migrations``."""
    with _runner(url, migrations_dir, lock_wait, table, variables=variables) as runner:
        if to is not None:
            return runner.down(to=to)
        return runner.down(steps)


def force(url: str, version: int, *, migrations_dir: str | Path | None = None,
          lock_wait: float | None = None, table: str | None = None) -> Result:
    """Run version ``version``'s up file again, record it and clear its dirty mark."""
    with _runner(url, migrations_dir, lock_wait, table) as runner:
        return runner.force(version)


def status(url: str, *, migrations_dir: str | Path | None = None, table: str | None = None) -> Status:
    """Every migration, files and recorded rows together: ``Status.rows`` (``StatusRow``: version,
    name, state, applied_at...), ``Status.repeatables`` (``RepeatableStatus``: name, state...),
    ``Status.clean``, ``Status.out_of_order``."""
    with _runner(url, migrations_dir, table=table) as runner:
        return runner.status()


def current_version(url: str, *, table: str | None = None) -> int:
    """The highest applied version, 0 when none."""
    with _runner(url, None, table=table) as runner:
        return runner.version()[0]


def history(url: str, *, table: str | None = None) -> list[TrackedRow]:
    """The tracking table's rows, oldest first (``TrackedRow``: version, description, checksum,
    applied_at, execution_ms, applied_by, dirty)."""
    with _runner(url, None, table=table) as runner:
        return runner.history()
