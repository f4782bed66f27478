"""The Python API, for applications that migrate on start.

    from pgmigrate import run_migrations, status
    applied = run_migrations("postgresql://app@db/app", dir="migrations/postgres")

Each function opens its own connections, returns plain data (dicts and lists), prints nothing and
raises the package's exceptions (``pgmigrate.errors``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import DEFAULT_MIGRATIONS_DIR, Settings, Target
from .engine import Runner


def _settings(url: str, dir: str | Path | None, **options: Any) -> Settings:
    settings = Settings(
        target=Target(url, "--database-url"),
        migrations_dir=Path(dir or DEFAULT_MIGRATIONS_DIR),
        seeds_dir=Path(options.pop("seeds_dir", "seeds")),
    )
    for key, value in options.items():
        if not hasattr(settings, key):
            raise TypeError(f"unknown option {key!r}")
        setattr(settings, key, value)
    return settings


def run_migrations(url: str, dir: str | Path | None = None, *, to: int | None = None,
                   allow_out_of_order: bool = False, **options: Any) -> list[dict]:
    """Apply pending migrations; return one dict per applied migration (version, label, ms)."""
    with Runner(_settings(url, dir, **options)) as runner:
        return [r._asdict() for r in runner.up(to=to, allow_out_of_order=allow_out_of_order)]


def rollback(url: str, steps: int = 1, dir: str | Path | None = None, **options: Any) -> list[dict]:
    """Roll back the newest ``steps`` migrations; return one dict per migration rolled back."""
    with Runner(_settings(url, dir, **options)) as runner:
        return [r._asdict() for r in runner.down(steps)]


def status(url: str, dir: str | Path | None = None) -> list[dict]:
    """Every migration, files and recorded rows together: version, name, state, applied_at..."""
    with Runner(_settings(url, dir)) as runner:
        return [r._asdict() for r in runner.status().rows]


def current_version(url: str) -> int:
    """The highest applied version, 0 when none."""
    with Runner(_settings(url, None)) as runner:
        return runner.version()[0]


def history(url: str) -> list[dict]:
    """The tracking table's rows, oldest first."""
    with Runner(_settings(url, None)) as runner:
        return [r._asdict() for r in runner.history()]
