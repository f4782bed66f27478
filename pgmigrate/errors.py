"""The small set of exceptions the runner raises.

Every message is one line that says what is wrong and what to do about it; the CLI prints it
after ``error:`` and exits with the exception's ``exit_code``.
"""

from __future__ import annotations

# Exit codes, documented in ``--help`` and README.md.
EXIT_OK = 0
EXIT_FAILED = 1  # a migration or seed failed, a check found problems, the database state refuses
EXIT_USAGE = 2  # bad arguments, invalid migration files, bad configuration
EXIT_CONNECT = 3  # cannot connect: server down, wrong credentials, database missing
EXIT_LOCKED = 4  # another runner held the migration lock for longer than --lock-wait
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)


class MigrateError(Exception):
    """Base class: a one-line message and the exit code that goes with it."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []

    def __str__(self) -> str:
        return self.message


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
    ) -> None:
        super().__init__(message, details=details)
        self.path = path
        self.line = line
        self.sqlstate = sqlstate
        self.dirty = dirty
