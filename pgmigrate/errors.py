"""The small set of exceptions the runner raises.

Each carries data: a one-line ``message`` (what is wrong), ``details``, and where it applies a
``remedy``, what to do, as data (``Remedy``). The core never words a remedy as a command: the CLI
words it for a shell (``make db-migrate-force V=3``), and ``str(exc)`` words it for an application
(``pgmigrate.force(url, 3)``). The CLI exits with the exception's ``exit_code``.
"""

from __future__ import annotations

from collections import namedtuple

# Exit codes, documented in ``--help`` and README.md.
EXIT_OK = 0
EXIT_FAILED = 1  # a migration or seed failed, a check found problems, the database state refuses
EXIT_USAGE = 2  # bad arguments, invalid migration files, bad configuration
EXIT_CONNECT = 3  # cannot connect: server down, wrong credentials, database missing
EXIT_LOCKED = 4  # another runner held the migration lock for longer than --lock-wait
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)


class Remedy(namedtuple("Remedy", "action version name", defaults=(None, None))):
    """What to do about an error. ``action`` is one of the keys of ``API_WORDS``; ``version`` and
    ``name`` (a tool, a variable, a setting) fill it in."""

    __slots__ = ()

    def words(self, table: dict[str, str]) -> str:
        return table[self.action].format(v=self.version, name=self.name)


# The remedies in an application's terms (the CLI has its own table, in cli.py).
API_WORDS = {
    "force": "fix the file, then re-run it with pgmigrate.force(url, {v}), or roll it back with "
             "pgmigrate.rollback(url)",
    "changed": "revert the edit, or pass ignore_changed=True",
    "out-of-order": "pass allow_out_of_order=True, after checking it does not depend on the newer ones",
    "create-database": "create the database first",
    "start-embedded": "start the embedded server first",
    "lock-wait": "let that runner finish, or pass a larger lock_wait",
    "adopt": "take its history over first with the pgmigrate command 'adopt --from {name}'",
    "set-variable": "give it a value in variables={{'{name}': ...}}",
    "migrations-dir": "create it, or pass the right migrations_dir",
    "write-down": "write the down file first",
    "no-transaction": "mark the file '-- migrate:no-transaction' (its first line), or move the statement to "
                      "such a file",
}


class MigrateError(Exception):
    """Base class: a one-line message, details, a remedy, and the exit code that goes with them."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, details: list[str] | None = None, remedy: Remedy | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.remedy = remedy

    def worded(self, table: dict[str, str]) -> str:
        """The message and, if there is one, the remedy in the words of ``table``."""
        return self.message + (f"; {self.remedy.words(table)}" if self.remedy else "")

    def __str__(self) -> str:
        return self.worded(API_WORDS)


class UsageError(MigrateError):
    """The command line or the configuration is wrong."""

    exit_code = EXIT_USAGE


class FileError(MigrateError):
    """A migration or seed file is invalid (name, encoding, duplicate, directive...)."""

    exit_code = EXIT_USAGE


class ConnectError(MigrateError):
    """The database cannot be reached or refuses the connection."""

    exit_code = EXIT_CONNECT


class ServerError(MigrateError):
    """The embedded PostgreSQL server cannot be set up, started or stopped."""

    exit_code = EXIT_USAGE


class StateError(MigrateError):
    """The database's migration state forbids the command (dirty, changed, out of order...)."""

    exit_code = EXIT_FAILED


class LockTimeout(MigrateError):
    """Another runner held the migration lock for longer than we were willing to wait."""

    exit_code = EXIT_LOCKED


class MigrationFailed(MigrateError):
    """A migration or seed failed; nothing of it remains unless ``dirty`` says otherwise."""

    exit_code = EXIT_FAILED

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        sqlstate: str | None = None,
        details: list[str] | None = None,
        dirty: bool = False,
        remedy: Remedy | None = None,
    ) -> None:
        super().__init__(message, details=details, remedy=remedy)
        self.path = path
        self.line = line
        self.sqlstate = sqlstate
        self.dirty = dirty
        self.version: int | None = None  # set by the runner for migrations
