"""Helpers for tests: look at a database, write migration files, run the CLI as a user would."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
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


def cli_env(url: str | None, extra: dict | None = None) -> dict[str, str]:
    """The environment a user's shell would give the runner: no PG*/POSTGRES_* settings of ours,
    DATABASE_URL set to ``url``, no colour."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "POSTGRES_", "DATABASE_URL"))}
    env["NO_COLOR"] = "1"
    if url:
        env["DATABASE_URL"] = url
    env.update(extra or {})
    return env


def run_cli(*args: str, url: str | None = None, cwd: Path | None = None, env: dict | None = None,
            input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python scripts/migrate.py ARGS`` as a user runs it; DATABASE_URL set to ``url``."""
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "migrate.py"), *args],
        cwd=cwd or ROOT, env=cli_env(url, env), input=input, capture_output=True, text=True, timeout=timeout,
    )


def start_runner(*args: str, url: str, stdout: int | None = subprocess.PIPE) -> subprocess.Popen:
    """``scripts/migrate.py ARGS`` in the background, as run_cli runs it."""
    return subprocess.Popen([sys.executable, str(ROOT / "scripts" / "migrate.py"), *args], cwd=ROOT,
                            env=cli_env(url), stdout=stdout, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 120) -> subprocess.CompletedProcess:
    """Wait for a background runner and return what it printed."""
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def wait_until(condition: Callable[[], object], timeout: float, what: str,
               proc: subprocess.Popen | Iterable[subprocess.Popen] | None = None):
    """Poll ``condition`` until it is true (and return it); fail early if a runner exits first."""
    procs = [] if proc is None else [proc] if isinstance(proc, subprocess.Popen) else list(proc)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        for p in procs:
            if p.poll() is not None:
                out, err = p.communicate()
                raise AssertionError(f"runner exited ({p.returncode}) before {what}: {out}{err}")
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dirty_flags(url: str) -> dict[int, bool]:
    """version -> dirty, of the tracking table."""
    return {v: dirty for v, (_, _, dirty) in tracked(url).items()}


# A statement that sleeps while the table ``pause`` says so (re-read every 50 ms, at most a minute),
# so a test can hold a migration open and then let the same, unchanged file run quickly.
PAUSE = ("DO $$ BEGIN WHILE coalesce((SELECT seconds FROM pause), 0) > 0 AND clock_timestamp() < statement_timestamp() "
         "+ interval '60 seconds' LOOP PERFORM pg_sleep(0.05); END LOOP; END $$;\n")
