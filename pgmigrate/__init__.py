"""pgmigrate: a shell-friendly PostgreSQL migration runner driven by Make and psql.

The Python API (``run_migrations``, ``rollback``, ``force``, ``status``, ``current_version``,
``history``), its result types and the package's exceptions are importable from here; the API
module is loaded on first use, so the command line starts without it.
"""

from __future__ import annotations

from .errors import (
    ConnectError,
    FileError,
    LockTimeout,
    MigrateError,
    MigrationFailed,
    Remedy,
    StateError,
    UsageError,
)

__version__ = "0.1.0"
_API = ("current_version", "force", "history", "rollback", "run_migrations", "status", "Result", "Status",
        "TrackedRow")
__all__ = [*_API, "ConnectError", "FileError", "LockTimeout", "MigrateError", "MigrationFailed", "Remedy",
           "StateError", "UsageError"]


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'pgmigrate' has no attribute {name!r}")
