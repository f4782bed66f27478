"""pgmigrate: a shell-friendly PostgreSQL migration runner driven by Make and psql.

The Python API (``run_migrations``, ``rollback``, ``status``, ``current_version``, ``history``) is
imported on first use, so the command line starts without loading it.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["current_version", "history", "rollback", "run_migrations", "status"]


def __getattr__(name: str):
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'pgmigrate' has no attribute {name!r}")
