#!/usr/bin/env python3
"""Benchmark the runner against the psql floor, on throwaway databases.

For each workload it generates (in a temporary folder), every run measures on fresh databases:

* the floor: ONE ``psql -X -q -v ON_ERROR_STOP=1 -f floor.sql`` doing, per migration,
  ``BEGIN; <the file>; <the runner's tracking statement>; COMMIT;`` (and the same for the down
  files, newest first, with the tracking row's DELETE);
* the runner, each command started from the shell as a user would (``python scripts/migrate.py``,
  interpreter start-up included): ``up``, ``status``, ``version``, ``down --all``; for the COPY
  seed, ``seed``.

Wall time of every command, the peak memory (max RSS) of the runner's own process and of any psql
it starts, medians and min-max over the runs, the ratio to the floor and a pass/miss against the
targets. The table is printed and written to benchmarks/results.md. See benchmarks/README.md.

The server is resolved like the runner resolves it (``--database-url``, ``DATABASE_URL``, ...,
the embedded server); the databases are created through the ``postgres`` maintenance database and
always dropped, on failure and Ctrl-C too.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

try:
    import psycopg
    from psycopg import sql
except ImportError:
    sys.exit("error: psycopg is not installed for this Python; run 'make bench', or 'make venv' and use "
             ".venv/bin/python")

from pgmigrate import tracking  # noqa: E402
from pgmigrate.config import Target, build_settings  # noqa: E402
from pgmigrate.psql import find_psql, psql_command  # noqa: E402

MIGRATE = ROOT / "scripts" / "migrate.py"
TABLE = tracking.Table()  # the default tracking table, as the runner writes it
RESULTS = ROOT / "benchmarks" / "results.md"
DB_PREFIX = "pgmigrate_bench_"
MIB = 1024 * 1024

WORKLOADS = ("small", "realistic", "own", "bridge", "seed", "fleet")

# Targets: ratios of the runner's median to the floor's median (same run), seconds, MiB.
# Per-migration overhead is what is judged: the workloads of many migrations. Where a run is a few
# hundred milliseconds (own, realistic down), the fixed start-up of Python and psycopg (about 0.1 s)
# dominates the ratio; it is shown, with no target.
UP_RATIO = {"small": 1.05, "realistic": 1.15, "bridge": 1.5}
DOWN_RATIO = {"small": 1.10, "bridge": 1.5}
STATUS_SECONDS = 0.30
VERSION_SECONDS = 0.25
CHECK_SECONDS = {"realistic": 60.0, "own": 10.0}  # 'check' (up, down, up again on a shadow database)
MAX_RSS_MIB = 80.0
FLEET_RATIO = 0.5  # the fleet run against the same work done by sequential invocations
FLEET_MAX_RSS_MIB = 150.0


@dataclass(frozen=True)
class Sizes:
    small: int = 1000
    realistic: int = 100
    realistic_rows: int = 2000
    bridge: int = 1000
    seed_mib: int = 200
    fleet_databases: int = 50
    fleet_migrations: int = 20
    fleet_parallel: int = 8


FULL = Sizes()
QUICK = Sizes(small=100, realistic=20, realistic_rows=500, bridge=100, seed_mib=20, fleet_databases=10)


# --- measuring one command ---


@dataclass
class Sample:
    seconds: float
    rss_kib: int  # the command's own peak RSS (the runner's, without its psql)
    child_rss_kib: int = 0  # the peak RSS of the psql the runner started, if any
    cpu: float = 0.0  # user + system seconds of the command and the children it waited for


# The command is started by a small launcher rather than by this process: Linux carries a process's
# peak RSS across fork and exec, so a child forked from this big interpreter would report at least
# this interpreter's size. The launcher (python -I -S, a few MiB) forks the command, waits for it
# with wait4, and writes the wall time from fork to exit and the child's ru_maxrss to a file.
LAUNCHER = """
import os, signal, sys, time
out, argv = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
def forward(signum, frame):
    os.kill(pid, signum)
signal.signal(signal.SIGTERM, forward)
signal.signal(signal.SIGINT, forward)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
with open(out, "w") as fh:
    cpu = usage.ru_utime + usage.ru_stime
    fh.write(f"{seconds!r} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)} {cpu!r}")
"""


class _RssSampler:
    """Polls the VmHWM (peak RSS since exec) of the command and of the processes it starts.

    ``wait4`` gives the exact peak of the command *or* of a child it waited for, whichever is
    larger; these samples say which one it was, and how big psql got."""

    INTERVAL = 0.02

    def __init__(self, launcher: int) -> None:
        self.launcher = launcher
        self.own_kib = 0
        self.children_kib: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def child_kib(self) -> int:
        return max(self.children_kib.values(), default=0)

    def _run(self) -> None:
        while True:
            for command in _children(self.launcher):
                self.own_kib = max(self.own_kib, _hwm_kib(command))
                for child in _children(command):
                    self.children_kib[child] = max(self.children_kib.get(child, 0), _hwm_kib(child))
            if self._stop.wait(self.INTERVAL):
                return


def _hwm_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except (OSError, ValueError):
        return []


class CommandFailed(Exception):
    pass


_running: subprocess.Popen | None = None


def measure(argv: list[str], *, env: dict[str, str], label: str) -> Sample:
    """Run one command to completion: wall time from fork to exit, and peak RSS."""
    global _running
    with tempfile.TemporaryDirectory(prefix="pgmigrate-bench-cmd-") as tmp:
        result, errors_path = Path(tmp) / "result", Path(tmp) / "stderr"
        with open(errors_path, "wb") as errors:
            proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", LAUNCHER, str(result), *argv],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors,
                                    env=env, cwd=ROOT)
            _running = proc
            sampler = _RssSampler(proc.pid)
            sampler.start()
            try:
                proc.wait()
            finally:
                sampler.stop()
                if proc.returncode is None:
                    _stop_process(proc)
                _running = None
        try:
            seconds_text, maxrss_text, code_text, cpu_text = result.read_text().split()
        except (OSError, ValueError):
            seconds_text, maxrss_text, code_text, cpu_text = "0", "0", str(proc.returncode or 1), "0"
        code = int(code_text)
        if code != 0 or proc.returncode != 0:
            tail = errors_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-8:]
            raise CommandFailed(f"{label} exited with {code}: " + " | ".join(tail))
    total = int(maxrss_text)  # KiB on Linux: max(the command, the children it waited for)
    child = sampler.child_kib
    own = total if child < 0.9 * total else max(sampler.own_kib, 1)
    return Sample(float(seconds_text), own, child, float(cpu_text))


def _stop_process(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- throwaway databases ---


class Server:
    """The server under test, and the throwaway databases made on it (all dropped by close())."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.maintenance = target.with_dbname("postgres")
        self.created: list[str] = []
        self.counter = 0
        self.admin = self._admin()
        self.version = self.admin.execute("SHOW server_version").fetchone()[0]
        self.num_version = int(self.admin.execute("SHOW server_version_num").fetchone()[0])
        self.can_checkpoint = True

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(self.maintenance.conninfo, autocommit=True, application_name="pgmigrate-bench",
                               connect_timeout=10)

    def create(self) -> Target:
        self.counter += 1
        name = f"{DB_PREFIX}{os.getpid()}_{self.counter}"
        self.created.append(name)
        for attempt in range(10):
            try:
                self.admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                break
            except psycopg.errors.ObjectInUse:  # someone else is connected to template1 just now
                if attempt == 9:
                    raise
                time.sleep(0.5)
        return self.target.with_dbname(name)

    def drop(self, target: Target) -> None:
        name = target.params()["dbname"]
        self._drop(name)
        self.created.remove(name)

    def _drop(self, name: str) -> None:
        if self.admin.closed or self.admin.broken:
            self.admin = self._admin()
        ident = sql.Identifier(name)
        if self.num_version >= 130000:
            self.admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        else:
            self.admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            self.admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(ident))

    def checkpoint(self) -> None:
        """Flush dirty buffers before a timed command, so one command does not pay for the last."""
        if self.can_checkpoint:
            try:
                self.admin.execute("CHECKPOINT")
            except psycopg.errors.InsufficientPrivilege:
                self.can_checkpoint = False

    def query(self, target: Target, text: str) -> list[tuple]:
        with psycopg.connect(target.conninfo, autocommit=True, connect_timeout=10) as conn:
            cur = conn.execute(text)
            return cur.fetchall() if cur.description else []

    def leftovers(self) -> list[str]:
        rows = self.admin.execute("SELECT datname FROM pg_database WHERE datname LIKE %s ORDER BY 1",
                                  (DB_PREFIX.replace("_", r"\_") + "%",)).fetchall()
        return [r[0] for r in rows]

    def close(self) -> None:
        for name in list(self.created):
            for attempt in (1, 2):
                try:
                    if attempt == 2:
                        with contextlib.suppress(psycopg.Error):
                            self.admin.close()
                        self.admin = self._admin()
                    self._drop(name)
                    self.created.remove(name)
                    break
                except psycopg.Error as exc:
                    if attempt == 2:
                        print(f"warning: could not drop database {name}: {exc}; drop it by hand", file=sys.stderr)
        with contextlib.suppress(psycopg.Error):
            self.admin.close()


# --- workloads ---


@dataclass
class Migration:
    version: int
    name: str
    up: Path
    down: Path | None


@dataclass
class Workload:
    key: str
    title: str
    migrations_dir: Path | None = None
    migrations: list[Migration] = field(default_factory=list)
    seed_dir: Path | None = None
    floor_up: Path | None = None
    floor_down: Path | None = None
    seed_rows: int = 0

    @property
    def is_seed(self) -> bool:
        return self.seed_dir is not None


def _write_migrations(folder: Path, items: Iterator[tuple[str, str, str | None]]) -> list[Migration]:
    folder.mkdir(parents=True)
    out = []
    for version, (name, up, down) in enumerate(items, start=1):
        stem = f"{version:06d}_{name}"
        up_path = folder / f"{stem}.up.sql"
        up_path.write_text(up)
        down_path = None
        if down is not None:
            down_path = folder / f"{stem}.down.sql"
            down_path.write_text(down)
        out.append(Migration(version, name, up_path, down_path))
    return out


def small_migrations(count: int) -> Iterator[tuple[str, str, str]]:
    for i in range(1, count + 1):
        t = f"small_{i:06d}"
        up = (f"CREATE TABLE {t} (\n    id bigint PRIMARY KEY,\n    name text NOT NULL,\n"
              f"    created_at timestamptz NOT NULL DEFAULT now()\n);\n"
              f"CREATE INDEX {t}_name_idx ON {t} (name);\n")
        yield f"create_{t}", up, f"DROP TABLE {t};\n"


def realistic_migrations(count: int, rows: int) -> Iterator[tuple[str, str, str]]:
    yield "create_accounts", (
        "CREATE TABLE accounts (\n"
        "    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,\n"
        "    email text NOT NULL UNIQUE,\n"
        "    display_name text,\n"
        "    created_at timestamptz NOT NULL DEFAULT now()\n"
        ");\n"
        "INSERT INTO accounts (email, display_name)\n"
        "SELECT 'user' || g || '@example.test', 'User ' || g FROM generate_series(1, 1000) AS g;\n"
    ), "DROP TABLE accounts;\n"
    for i in range(2, count + 1):
        t = f"orders_{i:04d}"
        parent = f"orders_{i - 1:04d}" if i > 2 else None
        parent_col = (f"    parent_id bigint REFERENCES {parent} (id) ON DELETE SET NULL,\n" if parent else "")
        parent_idx = f"CREATE INDEX {t}_parent_id_idx ON {t} (parent_id);\n" if parent else ""
        up = f"""-- {t}: an orders table with its indexes, a backfill, a function and a view
CREATE TABLE {t} (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
{parent_col}    status text NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'paid', 'shipped', 'cancelled')),
    amount numeric(12, 2) NOT NULL CHECK (amount >= 0),
    note text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz
);
CREATE INDEX {t}_account_id_idx ON {t} (account_id);
{parent_idx}CREATE INDEX {t}_created_at_idx ON {t} (created_at);
CREATE INDEX {t}_open_idx ON {t} (account_id, created_at) WHERE status IN ('new', 'paid');
COMMENT ON TABLE {t} IS 'Orders, generation {i}';

INSERT INTO {t} (account_id, status, amount, note, created_at)
SELECT 1 + (g % 1000),
       (ARRAY['new', 'paid', 'shipped', 'cancelled'])[1 + g % 4],
       (g % 500) + 0.99,
       CASE WHEN g % 7 = 0 THEN 'gift wrap' END,
       now() - g * interval '1 minute'
FROM generate_series(1, {rows}) AS g;

ALTER TABLE {t} ADD COLUMN amount_cents bigint;
UPDATE {t} SET amount_cents = (amount * 100)::bigint, updated_at = now()
WHERE status <> 'cancelled' AND id % 3 <> 0;

CREATE FUNCTION {t}_total(p_account bigint) RETURNS numeric
LANGUAGE plpgsql STABLE AS $$
DECLARE
    total numeric;
BEGIN
    SELECT coalesce(sum(amount), 0) INTO total
    FROM {t}
    WHERE account_id = p_account AND status <> 'cancelled';
    RETURN total;
END
$$;

CREATE VIEW {t}_by_account AS
SELECT a.id AS account_id, a.email, count(o.id) AS orders, coalesce(sum(o.amount), 0) AS total
FROM accounts AS a
LEFT JOIN {t} AS o ON o.account_id = a.id
GROUP BY a.id, a.email;
"""
        down = f"DROP VIEW {t}_by_account;\nDROP FUNCTION {t}_total(bigint);\nDROP TABLE {t};\n"
        yield f"create_{t}", up, down


def bridge_migrations(count: int) -> Iterator[tuple[str, str, str]]:
    for i in range(1, count + 1):
        t = f"bridge_{i:06d}"
        up = f"\\set n 5\nCREATE TABLE {t} (id int DEFAULT :n, label text);\n"
        down = f"\\set tbl {t}\nDROP TABLE :tbl;\n"
        yield f"create_{t}", up, down


def own_migrations() -> list[Migration]:
    folder = ROOT / "migrations" / "postgres"
    out = []
    for up in sorted(folder.glob("*.up.sql")):
        stem = up.name.removesuffix(".up.sql")
        version, name = stem.split("_", 1)
        down = up.with_name(f"{stem}.down.sql")
        out.append(Migration(int(version), name, up, down if down.exists() else None))
    return out


def write_seed(path: Path, mib: int) -> int:
    """A COPY ... FROM stdin seed of about ``mib`` MiB, written in chunks (never whole in memory)."""
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
             "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango"]
    payloads = [" ".join(words[(k * 7 + j * 3) % len(words)] for j in range(8 + k % 9)) for k in range(997)]
    target = mib * MIB
    written, row, chunk = 0, 0, 20_000
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        head = (f"-- seed: about {mib} MiB of COPY data\n"
                "CREATE TABLE IF NOT EXISTS bench_seed (\n"
                "    id bigint NOT NULL,\n    name text NOT NULL,\n    email text NOT NULL,\n"
                "    score integer NOT NULL,\n    payload text NOT NULL\n);\n"
                "COPY bench_seed (id, name, email, score, payload) FROM stdin;\n")
        fh.write(head)
        written += len(head)
        while written < target:
            text = "".join(
                f"{i}\tUser {i}\tuser{i}@example.test\t{i * 37 % 1000}\t{payloads[i % 997]}\n"
                for i in range(row + 1, row + chunk + 1)
            )
            fh.write(text)
            written += len(text)
            row += chunk
        fh.write("\\.\n")
    return row


def floor_scripts(workload: Workload, folder: Path) -> None:
    """floor_up.sql / floor_down.sql: what psql alone runs, one transaction per migration."""
    folder.mkdir(parents=True, exist_ok=True)
    workload.floor_up = folder / f"{workload.key}.floor_up.sql"
    if workload.is_seed:
        seed = next(workload.seed_dir.glob("*.sql"))
        workload.floor_up.write_text(f"BEGIN;\n\\i '{seed}'\nCOMMIT;\n")
        return
    with open(workload.floor_up, "w", encoding="utf-8") as fh:
        for m in workload.migrations:
            text = m.up.read_text(encoding="utf-8-sig")
            record = tracking.render(TABLE.record_sql, (m.version, m.name, _checksum(m.up)))
            fh.write(f"BEGIN;\n{text.rstrip()}\n{record};\nCOMMIT;\n")
    if all(m.down for m in workload.migrations):
        workload.floor_down = folder / f"{workload.key}.floor_down.sql"
        with open(workload.floor_down, "w", encoding="utf-8") as fh:
            for m in reversed(workload.migrations):
                text = m.down.read_text(encoding="utf-8-sig")
                delete = tracking.render(TABLE.delete_sql, (m.version,))
                fh.write(f"BEGIN;\n{text.rstrip()}\n{delete};\nCOMMIT;\n")


def _checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()  # any value will do: the floor only stores it


def build_workloads(keys: list[str], sizes: Sizes, work: Path) -> list[Workload]:
    out = []
    for key in keys:
        if key == "small":
            w = Workload(key, f"{sizes.small} small migrations (CREATE TABLE + CREATE INDEX)")
            w.migrations_dir = work / key
            w.migrations = _write_migrations(w.migrations_dir, small_migrations(sizes.small))
        elif key == "realistic":
            w = Workload(key, f"{sizes.realistic} larger migrations (FKs, indexes, {sizes.realistic_rows}-row "
                              "backfill, plpgsql function, view)")
            w.migrations_dir = work / key
            w.migrations = _write_migrations(w.migrations_dir, realistic_migrations(sizes.realistic,
                                                                                    sizes.realistic_rows))
        elif key == "own":
            w = Workload(key, "the repository's migrations/postgres")
            w.migrations_dir = ROOT / "migrations" / "postgres"
            w.migrations = own_migrations()
            w.title = f"the repository's migrations/postgres ({len(w.migrations)} migrations)"
        elif key == "fleet":
            w = Workload(key, f"{sizes.fleet_databases} databases x {sizes.fleet_migrations} small migrations "
                              f"(CREATE TABLE + CREATE INDEX), fleet up with --parallel {sizes.fleet_parallel}")
            w.migrations_dir = work / key
            w.migrations = _write_migrations(w.migrations_dir, small_migrations(sizes.fleet_migrations))
        elif key == "bridge":
            w = Workload(key, f"{sizes.bridge} psql-bridge migrations (\\set, then :n in CREATE TABLE)")
            w.migrations_dir = work / key
            w.migrations = _write_migrations(w.migrations_dir, bridge_migrations(sizes.bridge))
        else:
            w = Workload(key, f"a {sizes.seed_mib} MiB COPY ... FROM stdin seed file")
            w.seed_dir = work / key
            w.seed_dir.mkdir(parents=True)
            w.seed_rows = write_seed(w.seed_dir / "001_copy.sql", sizes.seed_mib)
        floor_scripts(w, work / "floor")
        out.append(w)
    return out


# --- running a workload ---


@dataclass
class Case:
    workload: Workload
    command: str
    floor: list[Sample] = field(default_factory=list)
    ours: list[Sample] = field(default_factory=list)
    error: str | None = None

    def ratio(self) -> float | None:
        if not self.floor or not self.ours:
            return None
        return median(self.ours) / median(self.floor)

    def time_target(self) -> tuple[str, bool | None]:
        """The target as text and whether the medians meet it (None: no time target)."""
        key = self.workload.key
        if self.command == "up" and key in UP_RATIO:
            ratio = self.ratio()
            return f"≤ {UP_RATIO[key]:.2f}x floor", None if ratio is None else ratio <= UP_RATIO[key]
        if self.command == "down --all" and key in DOWN_RATIO:
            ratio = self.ratio()
            return f"≤ {DOWN_RATIO[key]:.2f}x floor", None if ratio is None else ratio <= DOWN_RATIO[key]
        if self.command == "status":
            return f"≤ {STATUS_SECONDS:.2f} s", median(self.ours) <= STATUS_SECONDS if self.ours else None
        if self.command == "version":
            return f"≤ {VERSION_SECONDS:.2f} s", median(self.ours) <= VERSION_SECONDS if self.ours else None
        if self.command == "check":
            limit = CHECK_SECONDS[key]
            return f"≤ {limit:.0f} s", median(self.ours) <= limit if self.ours else None
        return "—", None

    def peak_rss_mib(self) -> float | None:
        return max(s.rss_kib for s in self.ours) / 1024 if self.ours else None

    def memory_ok(self) -> bool | None:
        peak = self.peak_rss_mib()
        return None if peak is None else peak <= MAX_RSS_MIB

@dataclass
class FleetCase:
    """The fleet workload: the same databases migrated three ways, once each per run."""

    workload: Workload
    databases: int
    parallel: int
    floor: list[Sample] = field(default_factory=list)  # every database's psql floor, all at once
    sequential: list[Sample] = field(default_factory=list)  # one `up` per database, one after another (summed)
    fleet: list[Sample] = field(default_factory=list)  # one `--targets FILE up --parallel N`
    error: str | None = None

    def ratio(self, other: list[Sample]) -> float | None:
        return median(self.fleet) / median(other) if self.fleet and other else None

    def peak_rss_mib(self) -> float | None:
        return max(s.rss_kib for s in self.fleet) / 1024 if self.fleet else None


def median(samples: list[Sample]) -> float:
    return statistics.median(s.seconds for s in samples)


class Bench:
    def __init__(self, server: Server, runs: int, log: Callable[[str], None], pycache: Path) -> None:
        self.server = server
        self.runs = runs
        self.log = log
        self.psql = find_psql()
        self.pycache = pycache

    # environments: the password travels in the environment, never on a command line

    def runner_env(self, target: Target, workload: Workload) -> dict[str, str]:
        env = dict(os.environ)
        env["DATABASE_URL"] = target.conninfo
        # Byte-code caches as an installed runner has them, even where PYTHONDONTWRITEBYTECODE is
        # set, kept in the benchmark's own folder (nothing is written into the repository).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(self.pycache)
        if workload.is_seed:
            env["SEEDS_DIR"] = str(workload.seed_dir)
        env.setdefault("NO_COLOR", "1")
        return env

    def runner(self, target: Target, workload: Workload, *command: str) -> Sample:
        argv = [sys.executable, str(MIGRATE)]
        if workload.migrations_dir is not None:
            argv += ["--dir", str(workload.migrations_dir)]
        sample = measure(argv + list(command), env=self.runner_env(target, workload),
                         label=f"{workload.key}: migrate.py {' '.join(command)}")
        return sample

    def floor(self, target: Target, script: Path, label: str) -> Sample:
        argv, env = psql_command(target, ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(script)])
        return measure(argv, env=env, label=label)

    def warm_up(self, folder: Path) -> None:
        """Every command once before measuring, on two tiny migrations (one through psql): byte-code
        caches written, the runner's files in the page cache."""
        items = [("warm_up", "CREATE TABLE warm_up (id int);\n", "DROP TABLE warm_up;\n"),
                 ("warm_up_psql", "\\set n 1\nCREATE TABLE warm_up_psql (id int DEFAULT :n);\n",
                  "\\set n 1\nDROP TABLE warm_up_psql;\n")]
        w = Workload("warm-up", "warm-up", migrations_dir=folder)
        _write_migrations(folder, iter(items))
        target = self.server.create()
        listing = folder.parent / "warm-up-targets.txt"
        listing.touch(mode=0o600)
        listing.write_text(target.conninfo + "\n")
        try:
            for command in (["up"], ["status"], ["version"], ["down", "--all"], ["check"],
                            ["--targets", str(listing), "up"]):
                self.runner(target, w, *command)
        finally:
            self.server.drop(target)

    def run(self, workload: Workload) -> list[Case]:
        commands = ["seed"] if workload.is_seed else ["up", "status", "version", "down --all"]
        if workload.key in CHECK_SECONDS:
            commands.append("check")
        cases = {c: Case(workload, c) for c in commands}
        try:
            for run in range(1, self.runs + 1):
                steps = [self._floor_run, self._our_run]
                if run % 2 == 0:
                    steps.reverse()  # alternate the order, so drift does not favour one side
                for step in steps:
                    step(workload, cases, run)
        except CommandFailed as exc:
            self.log(f"  FAILED: {exc}")
            for case in cases.values():
                case.error = str(exc)
        return list(cases.values())

    def _floor_run(self, workload: Workload, cases: dict[str, Case], run: int) -> None:
        target = self.server.create()
        try:
            if not workload.is_seed:
                self.server.query(target, TABLE.create_sql())
            self.server.checkpoint()
            up = self.floor(target, workload.floor_up, f"{workload.key}: psql floor (up)")
            cases["seed" if workload.is_seed else "up"].floor.append(up)
            self.log(f"  run {run}: floor up {up.seconds:.3f} s")
            if workload.is_seed:
                self._check_seeded(target, workload)
            if workload.floor_down is not None:
                self.server.checkpoint()
                down = self.floor(target, workload.floor_down, f"{workload.key}: psql floor (down)")
                cases["down --all"].floor.append(down)
                self.log(f"  run {run}: floor down {down.seconds:.3f} s")
        finally:
            self.server.drop(target)

    def _our_run(self, workload: Workload, cases: dict[str, Case], run: int) -> None:
        target = self.server.create()
        try:
            if workload.is_seed:
                self.server.checkpoint()
                s = self.runner(target, workload, "seed")
                cases["seed"].ours.append(s)
                self.log(f"  run {run}: seed {s.seconds:.3f} s, {s.rss_kib / 1024:.1f} MiB")
                self._check_seeded(target, workload)
                return
            self.server.checkpoint()
            for command in ("up", "status", "version"):
                s = self.runner(target, workload, command)
                cases[command].ours.append(s)
                self.log(f"  run {run}: {command} {s.seconds:.3f} s, {s.rss_kib / 1024:.1f} MiB")
            self._check_applied(target, workload, len(workload.migrations))
            if workload.floor_down is not None:
                self.server.checkpoint()
                s = self.runner(target, workload, "down", "--all")
                cases["down --all"].ours.append(s)
                self.log(f"  run {run}: down --all {s.seconds:.3f} s, {s.rss_kib / 1024:.1f} MiB")
                self._check_applied(target, workload, 0)
            if "check" in cases:  # on a shadow database of its own; the target only names the server
                self.server.checkpoint()
                s = self.runner(target, workload, "check")
                cases["check"].ours.append(s)
                self.log(f"  run {run}: check {s.seconds:.3f} s, {s.rss_kib / 1024:.1f} MiB")
                self._check_applied(target, workload, 0 if workload.floor_down else len(workload.migrations))
        finally:
            self.server.drop(target)

    # --- the fleet workload ---

    def run_fleet(self, workload: Workload, databases: int, parallel: int, work: Path) -> FleetCase:
        """Per run, on the same databases emptied before each step (dropping and creating 50 databases
        costs a checkpoint each): every database's psql floor started at once, one `up` per database
        one after another, and one fleet `up`; in a rotating order."""
        case = FleetCase(workload, databases, parallel)
        targets = [self.server.create() for _ in range(databases)]
        listing = work / "fleet-targets.txt"
        listing.touch(mode=0o600)  # the connection strings may hold the password
        listing.write_text("".join(f"{t.conninfo}\n" for t in targets))
        steps = [self._fleet_floor, self._fleet_sequential, self._fleet_run]
        try:
            for run in range(1, self.runs + 1):
                for step in steps[(run - 1) % 3:] + steps[: (run - 1) % 3]:
                    self._fleet_empty(targets, tracking_table=step == self._fleet_floor)
                    self.server.checkpoint()
                    step(case, targets, listing, work, run)
                    self._fleet_check(targets, len(workload.migrations))
        except CommandFailed as exc:
            self.log(f"  FAILED: {exc}")
            case.error = str(exc)
        finally:
            for target in targets:
                self.server.drop(target)
        return case

    def _fleet_empty(self, targets: list[Target], *, tracking_table: bool) -> None:
        for target in targets:
            self.server.query(target, "DROP SCHEMA public CASCADE; CREATE SCHEMA public"
                                      + (f"; {TABLE.create_sql()}" if tracking_table else ""))

    def _fleet_check(self, targets: list[Target], expected: int) -> None:
        for target in targets:
            count = self.server.query(target, f"SELECT count(*) FROM {TABLE.sql}")[0][0]
            if count != expected:
                raise CommandFailed(f"fleet: {count} tracking rows where {expected} were expected")

    def _fleet_floor(self, case: FleetCase, targets: list[Target], listing: Path, work: Path, run: int) -> None:
        script = work / "fleet-floor.sh"
        lines = ["pids=''"]
        for target in targets:  # every database has the same credentials: only the database differs
            argv, env = psql_command(target, ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(case.workload.floor_up)])
            database = f"PGDATABASE={shlex.quote(env['PGDATABASE'])} "
            lines.append(database + " ".join(shlex.quote(a) for a in argv) + ' & pids="$pids $!"')
        lines += ["status=0", 'for pid in $pids; do wait "$pid" || status=1; done', "exit $status"]
        script.write_text("\n".join(lines) + "\n")
        sample = measure(["/bin/sh", str(script)], env=env, label=f"fleet: {len(targets)} parallel psql floors")
        case.floor.append(sample)
        self.log(f"  run {run}: floor, {len(targets)} psql at once {sample.seconds:.3f} s")

    def _fleet_sequential(self, case: FleetCase, targets: list[Target], listing: Path, work: Path,
                          run: int) -> None:
        samples = [self.runner(target, case.workload, "up") for target in targets]
        total = Sample(sum(s.seconds for s in samples), max(s.rss_kib for s in samples), 0,
                       sum(s.cpu for s in samples))
        case.sequential.append(total)
        self.log(f"  run {run}: {len(targets)} sequential up {total.seconds:.3f} s")

    def _fleet_run(self, case: FleetCase, targets: list[Target], listing: Path, work: Path, run: int) -> None:
        env = self.runner_env(targets[0], case.workload)
        del env["DATABASE_URL"]
        p = str(case.parallel)
        argv = [sys.executable, str(MIGRATE), "--dir", str(case.workload.migrations_dir), "--targets", str(listing),
                "up", "--parallel", p, "--per-host", p]
        sample = measure(argv, env=env, label=f"fleet: up --parallel {p}")
        case.fleet.append(sample)
        self.log(f"  run {run}: fleet up --parallel {p} {sample.seconds:.3f} s, {sample.rss_kib / 1024:.1f} MiB")

    def _check_seeded(self, target: Target, workload: Workload) -> None:
        count = self.server.query(target, "SELECT count(*) FROM bench_seed")[0][0]
        if count != workload.seed_rows:
            raise CommandFailed(f"seed: {count} rows loaded where {workload.seed_rows} were expected")

    def _check_applied(self, target: Target, workload: Workload, expected: int) -> None:
        count = self.server.query(target, f"SELECT count(*) FROM {TABLE.sql}")[0][0]
        if count != expected:
            raise CommandFailed(f"{workload.key}: {count} tracking rows where {expected} were expected")


# --- the report ---


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cores": str(cores), "memory": memory, "os": f"{platform.system()} {platform.release()}"}


def load_average() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    changed = [line for line in status if not line[3:].startswith("benchmarks/results.md")]
    return head + ("+dirty" if changed else "")


def _commits(start: str, end: str) -> str:
    return start if start == end else f"{start} at the start, {end} at the end (the tree changed during the run)"


def _seconds(samples: list[Sample]) -> str:
    if not samples:
        return "—"
    values = [s.seconds for s in samples]
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def _cpu(samples: list[Sample]) -> str:
    return f"{statistics.median(s.cpu for s in samples):.3f}" if samples else "—"


def _mib(kib: int) -> str:
    return f"{kib / 1024:.1f}" if kib else "—"


def _verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("pass" if ok else "**MISS**")


def table(cases: list[Case]) -> str:
    head = ("| workload | command | floor s (median, min-max) | pgmigrate s (median, min-max) | ratio | target "
            "| time | floor CPU s | pgmigrate CPU s | runner max RSS MiB | its psql MiB | floor psql MiB "
            "| memory ≤ 80 MiB |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for c in cases:
        if c.error and not c.ours:
            lines.append(f"| {c.workload.key} | {c.command} | {_seconds(c.floor)} | failed | — | — | **FAIL** "
                         "| — | — | — | — | — | — |")
            continue
        ratio = c.ratio()
        target, ok = c.time_target()
        child = max((s.child_rss_kib for s in c.ours), default=0)
        floor_rss = max((s.rss_kib for s in c.floor), default=0)
        peak = c.peak_rss_mib()
        lines.append(
            f"| {c.workload.key} | {c.command} | {_seconds(c.floor)} | {_seconds(c.ours)} | "
            f"{f'{ratio:.3f}' if ratio is not None else '—'} | {target} | {_verdict(ok)} | "
            f"{_cpu(c.floor)} | {_cpu(c.ours)} | "
            f"{f'{peak:.1f}' if peak is not None else '—'} | {_mib(child)} | {_mib(floor_rss)} | "
            f"{_verdict(c.memory_ok())} |"
        )
    return "\n".join(lines)

def fleet_table(case: FleetCase) -> str:
    n, p = case.databases, case.parallel
    head = (f"| databases x migrations | floor: {n} psql at once s | {n} sequential `up` s "
            f"| fleet `up --parallel {p}` s | fleet / sequential | target | time | fleet / floor "
            f"| sequential CPU s | fleet CPU s "
            f"| fleet max RSS MiB | memory ≤ {FLEET_MAX_RSS_MIB:.0f} MiB |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    size = f"{n} x {len(case.workload.migrations)}"
    if case.error and not case.fleet:
        lines.append(f"| {size} | {_seconds(case.floor)} | {_seconds(case.sequential)} | failed | — | — | **FAIL** "
                     "| — | — | — | — | — |")
        return "\n".join(lines)
    ratio, floor_ratio, peak = case.ratio(case.sequential), case.ratio(case.floor), case.peak_rss_mib()
    lines.append(
        f"| {size} | {_seconds(case.floor)} | {_seconds(case.sequential)} | {_seconds(case.fleet)} | "
        f"{f'{ratio:.3f}' if ratio is not None else '—'} | ≤ {FLEET_RATIO:.2f}x sequential | "
        f"{_verdict(None if ratio is None else ratio <= FLEET_RATIO)} | "
        f"{f'{floor_ratio:.3f}' if floor_ratio is not None else '—'} | {_cpu(case.sequential)} | {_cpu(case.fleet)} | "
        f"{f'{peak:.1f}' if peak is not None else '—'} | "
        f"{_verdict(None if peak is None else peak <= FLEET_MAX_RSS_MIB)} |"
    )
    return "\n".join(lines)


def report(cases: list[Case], workloads: list[Workload], info: dict[str, str],
           fleet: FleetCase | None = None) -> str:
    out = [
        "# Benchmark results",
        "",
        f"- date: {info['date']}",
        f"- commit: {info['commit']}",
        f"- machine: {info['cpu']}, {info['cores']} cores, {info['memory']} memory ({info['os']})",
        f"- PostgreSQL: {info['server']} (server {info['where']}); psql: {info['psql']}",
        f"- runner: Python {platform.python_version()} ({info['python']}), psycopg {psycopg.__version__}",
        f"- runs: {info['runs']} per case, each on fresh databases{' (--quick sizes)' if info['quick'] else ''}",
        f"- load average (1/5/15 min) at the start: {info['load_start']}; at the end: {info['load_end']}",
        "",
        "Workloads:",
        "",
    ]
    out += [f"- **{w.key}**: {w.title}" for w in workloads]
    if cases:
        out += ["", table(cases)]
    if fleet is not None:
        out += ["", fleet_table(fleet), "",
                f"Fleet: the same {fleet.databases} databases, emptied before each of the three; the sequential "
                f"time is the sum of {fleet.databases} `up` commands, each with its own start-up; the fleet runs with "
                f"`--per-host {fleet.parallel}` (all the databases are on one server); its memory is the peak of its "
                "one process."]
    out += [
        "",
        "Seconds are wall time of the whole command (process start-up included), median and min-max over the "
        "runs; ratio is the runner's median over the floor's median; CPU is the median user + system time of the "
        "command and the processes it waited for (the runner's psql included); MiB are peak resident set sizes. "
        "See benchmarks/README.md.",
    ]
    errors = {c.workload.key: c.error for c in cases if c.error}
    if fleet is not None and fleet.error:
        errors["fleet"] = fleet.error
    if errors:
        out += ["", "Failures (the workload's remaining runs were skipped):", ""]
        out += [f"- {key}: {error}" for key, error in errors.items()]
    return "\n".join(out) + "\n"


# --- main ---


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench.py",
        description="Benchmark scripts/migrate.py against psql alone (the floor) on throwaway databases, "
                    "and write benchmarks/results.md.",
    )
    p.add_argument("--database-url", metavar="URL",
                   help="server to use (default: as the runner resolves it: DATABASE_URL, POSTGRES_*, PG*, "
                        "else the embedded server); only its host, port and credentials matter")
    p.add_argument("--runs", type=int, default=5, metavar="N", help="runs of every case (default 5)")
    p.add_argument("--quick", action="store_true",
                   help=f"smaller sizes for a fast check ({QUICK.small} small, {QUICK.realistic} larger, "
                        f"{QUICK.bridge} bridge migrations, a {QUICK.seed_mib} MiB seed)")
    p.add_argument("--only", action="append", metavar="WORKLOAD", default=[],
                   help=f"run only this workload (repeatable or comma-separated): {', '.join(WORKLOADS)}")
    p.add_argument("--output", metavar="FILE", default=str(RESULTS),
                   help="where to write the markdown report (default benchmarks/results.md; '-' for none)")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be 1 or more")
    only = [w.strip() for item in args.only for w in item.split(",") if w.strip()]
    unknown = [w for w in only if w not in WORKLOADS]
    if unknown:
        p.error(f"unknown workload {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
    args.workloads = [w for w in WORKLOADS if not only or w in only]
    return args


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    settings = build_settings(database_url=args.database_url, cwd=ROOT)
    target = settings.target
    started_embedded = False
    server: Server | None = None
    work = Path(tempfile.mkdtemp(prefix="pgmigrate-bench-"))
    try:
        try:
            server = Server(target)
        except psycopg.OperationalError as exc:
            if not target.embedded:
                log(f"error: cannot connect to {target.describe()} ({target.source}): {str(exc).strip()}")
                return 2
            log("starting the embedded PostgreSQL (make db-up) for the benchmark")
            subprocess.run([sys.executable, str(MIGRATE), "server", "start"], cwd=ROOT, check=True)
            started_embedded = True
            server = Server(target)
        stale = server.leftovers()
        if stale:
            log(f"note: databases left by an earlier, killed benchmark: {', '.join(stale)} "
                "(drop them with DROP DATABASE ... WITH (FORCE))")
        sizes = QUICK if args.quick else FULL
        load_start = load_average()
        commit_start = commit()
        with contextlib.suppress(OSError):
            if os.getloadavg()[0] > (os.cpu_count() or 1) / 2:
                log(f"note: the machine is busy (load average {load_start}); timings will be noisy")
        log(f"server: {target.describe()} ({target.source}), PostgreSQL {server.version}")
        log(f"generating workloads in {work} ...")
        workloads = build_workloads(args.workloads, sizes, work)
        bench = Bench(server, args.runs, log, work / "pycache")
        bench.warm_up(work / "warm-up")
        cases: list[Case] = []
        fleet: FleetCase | None = None
        for w in workloads:
            log(f"{w.key}: {w.title}")
            if w.key == "fleet":
                fleet = bench.run_fleet(w, sizes.fleet_databases, sizes.fleet_parallel, work)
            else:
                cases += bench.run(w)
        psql_version = subprocess.run([bench.psql, "--version"], capture_output=True, text=True).stdout.strip()
        params = target.params()
        info = {
            **machine(),
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": _commits(commit_start, commit()),
            "server": server.version,
            "where": f"{params.get('host', 'local socket')}:{params.get('port', '5432')}, {target.source}",
            "psql": psql_version,
            "python": sys.executable,
            "runs": str(args.runs),
            "quick": args.quick,
            "load_start": load_start,
            "load_end": load_average(),
        }
        text = report(cases, workloads, info, fleet)
        print(text)
        if args.output != "-":
            Path(args.output).write_text(text)
            log(f"wrote {args.output}")
        failed = any(c.error for c in cases) or bool(fleet and fleet.error)
        return 1 if failed else 0
    except KeyboardInterrupt:
        log("interrupted; dropping the benchmark databases")
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if _running is not None and _running.returncode is None:
            _stop_process(_running)
        if server is not None:
            server.close()
        shutil.rmtree(work, ignore_errors=True)
        if started_embedded:
            subprocess.run([sys.executable, str(MIGRATE), "server", "stop"], cwd=ROOT, check=False)


if __name__ == "__main__":
    sys.exit(main())
