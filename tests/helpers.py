"""Helpers for tests: look at a database, write migration files, run the CLI as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent


class MigrationsDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    def add(self, version: int | str, name: str, up: str, down: str | None = None, *, digits: int = 4) -> Path:
        label = f"{int(version):0{digits}d}_{name}" if isinstance(version, int) else f"{version}_{name}"
        up_path = self.path / f"{label}.up.sql"
        up_path.write_text(up, encoding="utf-8")
        if down is not None:
            (self.path / f"{label}.down.sql").write_text(down, encoding="utf-8")
        return up_path

    def __str__(self) -> str:
        return str(self.path)


def query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    """Rows of one query on a database (a fresh connection each time)."""
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


def tables(url: str, schema: str = "public") -> set[str]:
    rows = query(url, "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,))
    return {r[0] for r in rows}


def tracked(url: str) -> dict[int, tuple]:
    """version -> (description, checksum, dirty) of the tracking table (empty if it does not exist)."""
    if not query(url, "SELECT to_regclass('public.schema_migrations')")[0][0]:
        return {}
    rows = query(url, "SELECT version, description, checksum, dirty FROM public.schema_migrations")
    return {r[0]: r[1:] for r in rows}


def run_cli(*args: str, url: str | None = None, cwd: Path | None = None, env: dict | None = None,
            input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python scripts/migrate.py ARGS`` as a user runs it; DATABASE_URL set to ``url``."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "POSTGRES_", "DATABASE_URL"))}
    full_env["NO_COLOR"] = "1"
    if url:
        full_env["DATABASE_URL"] = url
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "migrate.py"), *args],
        cwd=cwd or ROOT, env=full_env, input=input, capture_output=True, text=True, timeout=timeout,
    )


