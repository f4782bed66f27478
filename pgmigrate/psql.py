"""The psql bridge: files that only psql understands, run atomically with their tracking rows.

One ``psql -X -q -v ON_ERROR_STOP=1`` process serves a whole run. For each file it is sent::

    BEGIN; SET LOCAL ...;  \\i 'file.sql'  <tracking statement>  \\echo <token> ready

and only after ``ready`` comes back, ``COMMIT; \\echo <token> done``. If the runner dies before
that, psql reads end-of-file (and is killed with its parent on Linux), the server rolls the open
transaction back, and neither the file's work nor its tracking row remains.

Where util-linux's ``setpriv --pdeathsig`` exists (Linux), psql dies with the runner, so the COMMIT
goes in the same write, and consecutive transactional files are queued: the next one waits in psql's
input while the current one runs, so psql never idles for a round trip. psql stops at the first
error (ON_ERROR_STOP), so nothing queued after a failed file runs.

The connection reaches psql through its environment (libpq's own variables), never its command line.
Files are included where they are (``\\i`` of the file itself), so ``\\ir`` in them resolves against
their own folder: psql skips a UTF-8 BOM on a file's first line when the client encoding is UTF8, which
the runner sets (``PGCLIENTENCODING``) and the session reset after every file restores.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from . import locate
from .config import Limits
from .db import CHECK_CLIENT_SQL, SESSION_RESET, SESSION_RESET_COLUMNS
from .discovery import SqlFile, display_path
from .errors import MigrationFailed, UsageError
from .sqltext import line_of
from .target import Target
from .tracking import Step, render

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

# psql names file and line for what it read from a file (\\i); for what the runner sent on its
# standard input, it prints the bare level.
_ERROR_LINE = re.compile(r"^(psql:(?P<file>.*?):(?P<line>\d+): )?(?P<level>ERROR|FATAL|PANIC):\s+(?P<rest>.*)$")
_SQLSTATE = re.compile(r"^(?P<state>[0-9A-Z]{5}): (?P<msg>.*)$")
_STATEMENT_LINE = re.compile(r"^LINE (\d+): ")
_BARE_FATAL = re.compile(r"^psql: (?:error: )?(?P<rest>.*)$")


def find_psql() -> str:
    found = shutil.which("psql")
    if found:
        return found
    try:
        from .embedded import find_pg_binary

        return find_pg_binary("psql")
    except Exception:
        raise UsageError(
            "psql not found; install the PostgreSQL client (Debian/Ubuntu: apt-get install postgresql-client) "
            "or put it on PATH"
        ) from None


def psql_command(target: Target, extra: list[str]) -> tuple[list[str], dict[str, str]]:
    """psql's command line (no connection settings on it but those libpq has no variable for) and
    the environment that carries the connection, password included."""
    env, rest = target.child_environment()
    return [find_psql(), *(["-d", rest] if rest else []), *extra], env


def exec_psql(target: Target, extra: list[str]) -> None:
    """Replace this process with an interactive psql on the target."""
    argv, env = psql_command(target, extra)
    os.execvpe(argv[0], argv, env)


def quote_meta_arg(path: str) -> str:
    """A file name as a psql meta-command argument (psql reads backslash escapes in it too)."""
    return "'" + path.replace("\\", "\\\\").replace("'", "''") + "'"


def set_variable(name: str, value: str) -> str:
    """``\\set name 'value'`` with psql's own quoting."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return f"\\set {name} '{escaped}'"


ESCAPED = "PM001"  # the SQLSTATE of the guard's error: a file ended the transaction holding its tracking row
_ESCAPED_RAISE = ("DO $pgmigrate$BEGIN RAISE EXCEPTION USING ERRCODE = '" + ESCAPED + "', MESSAGE = "
                  "'the file ended the transaction that holds its tracking row (a COMMIT or ROLLBACK in an included "
                  "file, or one made by \\gexec); what ran before that is committed'; END$pgmigrate$;")


# psql's record of the last failed query, cleared before a file runs: an error the file's own
# psql settings let pass (ON_ERROR_STOP turned off in a file it includes, ON_ERROR_ROLLBACK) still
# stops the migration before it is recorded.
_CLEAR_ERROR = "\\set LAST_ERROR_SQLSTATE 00000"
_PASSED_OVER = ("DO $pgmigrate$BEGIN RAISE EXCEPTION USING ERRCODE = 'PM002', MESSAGE = 'an error in the file was "
                "passed over (ON_ERROR_STOP turned off in a file it includes?); the migration is not recorded as "
                "applied'; END$pgmigrate$;")


def chain(statements: Sequence[str], end: str = "\\g /dev/null") -> str:
    """Statements sent to the server as ONE query (psql's ``\\;``): one round trip, and one implicit
    transaction where no BEGIN is among them; what they return goes nowhere (or to ``end``: ``\\gset``)."""
    return " \\;\n".join(s.strip().rstrip(";") for s in statements) + f" {end}"


_SAME = "txid_current() = :pgmigrate_xid AS pgmigrate_same"
_OK = ":'LAST_ERROR_SQLSTATE' = '00000' AS pgmigrate_ok"


def _checked(then: Sequence[str], *, escape: Sequence[str] | None) -> list[str]:
    """psql lines that run ``then`` only if no query of the file failed since ``_CLEAR_ERROR`` (else
    PM002) and, with ``escape`` (the lines run when it did), if the transaction is still the one
    opened (else PM001): both asked in one query."""
    asked = [_SAME, _OK] if escape is not None else [_OK]
    unless_passed_over = ["\\if :pgmigrate_ok", *then, "\\else", _PASSED_OVER, "\\endif"]
    lines = ["\\unset pgmigrate_same", "\\unset pgmigrate_ok", f"SELECT {', '.join(asked)} \\gset"]
    if escape is None:
        return [*lines, *unless_passed_over]
    return [*lines, "\\if :pgmigrate_same", *unless_passed_over, "\\else", *escape, "\\endif"]


def group_member(body: str, escape: Step | None) -> list[str]:
    """One file of a single-transaction group (``body``: its ``\\i`` or its content), then the proof
    that it left the transaction open (else ROLLBACK, ``escape`` marking its version dirty, PM001) and
    let no error pass (else PM002). The group's ``BEGIN`` is followed by ``pgmigrate_xid``'s ``\\gset``."""
    dirty = [render(*escape) + ";"] if escape else []
    return [_CLEAR_ERROR, body.rstrip("\n"), "\\set ON_ERROR_STOP 1",
            *_checked([], escape=["ROLLBACK;", *dirty, _ESCAPED_RAISE])]


def session_reset() -> list[str]:
    """The session reset (db.SESSION_RESET) as psql lines: one query; what it returns goes nowhere."""
    return [chain(SESSION_RESET)]


def variable_cleanup(file: SqlFile, variables: dict[str, str]) -> list[str]:
    """psql lines that undo the file's own ``\\set``s, so that the next file starts with only the
    runner's variables (``--set``)."""
    if file.large:  # a data load: not read for this (nor for variables), as with variables_problem
        return []
    names = {m.args[0] for m in file.scan.meta_commands if m.name == "\\set" and m.args}
    return [set_variable(n, variables[n]) if n in variables else f"\\unset {n}" for n in sorted(names)]


def transaction_script(body: str, steps: Sequence[Step], limits: Limits, *, transactional: bool,
                       guard: bool = False, cleanup: Sequence[str] = (), ready: str | None = None) -> tuple[str, str]:
    """The two halves of one migration as psql runs it: up to and after the point of no return.

    ``body`` is the file's content or an ``\\i`` of it. Not transactional: dirty mark, the file,
    the session reset, clean mark / nothing. Transactional: ``BEGIN`` ... reset, tracking /
    ``COMMIT``. With ``guard`` (psql-run files, whose includes and ``\\gexec`` cannot be read
    beforehand), the tracking row is written dirty first and made clean only if the transaction is
    still the one that was opened; else the file's escape is an error (SQLSTATE PM001) and the row
    stays dirty; and in both modes a query of the file that failed without stopping psql is an error
    (PM002) before the clean mark. ``ready``: a line run once the file has run and its row is
    written, before COMMIT."""
    raw = [render(sql, params) for sql, params in steps]
    done_line = [ready] if ready else []
    if not transactional:
        first = [chain(raw[:1])] if raw else []
        done = [chain([*SESSION_RESET, *raw[1:]]), *cleanup, *done_line]  # one query: together
        lines = [*first, *([_CLEAR_ERROR] if guard else []), body.rstrip("\n"), "\\set ON_ERROR_STOP 1",
                 *(_checked(done, escape=None) if guard else done)]
        return "\n".join(lines) + "\n", ""
    opening = ["BEGIN", *limits.set_local_statements()]
    tail = "\n".join(["COMMIT;", *cleanup]) + "\n"
    if not guard:
        head = [chain(opening), body.rstrip("\n"), chain([*SESSION_RESET, *opening[1:], *raw]), *done_line]
        return "\n".join(head) + "\n", tail
    # Three queries of the runner's own, as many as the floor's BEGIN, tracking row and COMMIT: the
    # opening (with the dirty row and the transaction's id), the reset with the two checks, and the
    # clean row with COMMIT.
    before, after = (raw[:1], raw[1:]) if len(raw) > 1 else ([], raw)
    escape = ["ROLLBACK;", *([chain(before)] if before else []), _ESCAPED_RAISE]
    head = [chain([*opening, *before, "SELECT txid_current() AS pgmigrate_xid"], end="\\gset"), _CLEAR_ERROR,
            body.rstrip("\n"), "\\set ON_ERROR_STOP 1", "\\unset pgmigrate_same", "\\unset pgmigrate_ok",
            chain([*SESSION_RESET[:-1], *opening[1:], f"SELECT {_SAME}, {_OK}, {SESSION_RESET_COLUMNS}"],
                  end="\\gset"),
            "\\if :pgmigrate_same", "\\if :pgmigrate_ok", *done_line, "\\else", _PASSED_OVER, "\\endif",
            "\\else", *escape, "\\endif"]
    return "\n".join(head) + "\n", "\n".join([chain([*after, "COMMIT"]), *cleanup]) + "\n"


def _death_signal_wrapper() -> list[str]:
    """``setpriv --pdeathsig KILL --``: psql then gets SIGKILL when the runner dies (Linux)."""
    setpriv = shutil.which("setpriv") if sys.platform.startswith("linux") else None
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


_WRAPPER = _death_signal_wrapper()
DIES_WITH_PARENT = bool(_WRAPPER)


class PsqlSession:
    """A psql process fed through a pipe, one migration at a time."""

    def __init__(self, target: Target, variables: dict[str, str], *, verbose: bool = False,
                 on_output: Callable[[str], None] | None = None) -> None:
        self.target = target
        self.variables = variables
        self.verbose = verbose
        self.on_output = on_output or (lambda line: None)
        self.token = "pgmigrate-" + secrets.token_hex(8)
        self.proc: subprocess.Popen[str] | None = None
        self.pid = 0
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.errors: list[str] = []
        self.queued: deque[SqlFile] = deque()  # sent to psql, not yet done

    # --- process ---

    def command(self) -> tuple[list[str], dict[str, str]]:
        argv, env = psql_command(self.target, ["-X", "-q", "-v", "ON_ERROR_STOP=1"])
        env["PGCLIENTENCODING"] = "UTF8"
        return [*_WRAPPER, *argv], env

    def start(self) -> None:
        # A new psql, with a queue and an error list of its own: nothing its predecessor said (or its
        # reader threads, still finishing) can be taken for this one's.
        self.errors, self.lines = [], queue.Queue()
        argv, env = self.command()
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, encoding="utf-8", errors="replace", env=env,
        )
        threading.Thread(target=self._read_stdout, args=(self.proc.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._read_stderr, args=(self.proc.stderr, self.errors), daemon=True).start()
        setup = ["\\set VERBOSITY verbose", "\\set SHOW_CONTEXT errors", "SET standard_conforming_strings = on;",
                 CHECK_CLIENT_SQL + " \\g /dev/null"]
        setup += [set_variable(k, v) for k, v in self.variables.items()]
        setup.append("SELECT pg_backend_pid() AS pgmigrate_backend_pid \\gset")
        self._send("\n".join(setup) + "\n")
        self.pid = int(self._sync("started :pgmigrate_backend_pid", None).split()[-1])

    def backend_pid(self) -> int:
        """The server process that runs this session's migrations (psql started if need be)."""
        if self.proc is None:
            self.start()
        return self.pid

    def _read_stdout(self, stdout: TextIO, lines: queue.Queue[str | None]) -> None:
        for line in stdout:
            line = line.rstrip("\n")
            if line.startswith(self.token):
                lines.put(line)
            else:
                self.on_output(line)
        lines.put(None)

    def _read_stderr(self, stderr: TextIO, errors: list[str]) -> None:
        for line in stderr:
            errors.append(line.rstrip("\n"))
            if self.verbose:
                self.on_output(line.rstrip("\n"))

    def _send(self, text: str) -> None:
        assert self.proc and self.proc.stdin
        try:
            self.proc.stdin.write(text)
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass

    def _sync(self, word: str, file: SqlFile | list[SqlFile] | None, *, dirty: bool = False) -> str:
        """Ask psql to echo a marker and wait for it (returned, psql variables expanded); if psql
        exits instead, raise its error."""
        self._send(f"\\echo {self.token} {word}\n")
        return self._wait(file, dirty=dirty)

    def _wait(self, file: SqlFile | list[SqlFile] | None, *, dirty: bool = False) -> str:
        """The next marker psql echoes; if psql exits instead, raise its error."""
        line = self.lines.get()
        if line is None:
            raise self._failure(file, dirty=dirty)
        return line

    def close(self) -> None:
        if self.queued:  # given up on (an error elsewhere): nothing more of it may commit
            if self.proc is not None:
                self.proc.kill()
            self.forget_queued()
        if self.proc is None:
            return
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.proc = None

    # --- running files ---

    # --- queued files (Linux): see the module docstring ---

    def submit(self, file: SqlFile, steps: Sequence[Step], limits: Limits) -> None:
        """Send a transactional file to psql without waiting for it; ``collect()`` waits."""
        if self.proc is None:
            self.start()
        head, tail = transaction_script(include(file), steps, limits, transactional=True, guard=True,
                                        cleanup=variable_cleanup(file, self.variables))
        self.queued.append(file)
        self._send(f"{head}{tail}\\echo {self.token} done\n")

    def collect(self) -> SqlFile:
        """Wait until the oldest queued file has committed, and return it. If it failed, raise its
        error; psql has then stopped, and the files queued after it never ran: they are forgotten
        here, for the caller to send again. On Ctrl-C the caller calls ``interrupt()``."""
        file = self.queued[0]
        line = self.lines.get()
        if line is None:
            self.forget_queued()
            raise self._failure(file, dirty=False)
        return self.queued.popleft()

    def forget_queued(self) -> None:
        """Forget the files queued but never run (psql stopped); the caller sends them again."""
        self.queued.clear()

    def interrupt(self) -> list[SqlFile]:
        """Ctrl-C: psql cancels the statement it is running (its own SIGINT handling) and, stopping on
        that error, ends; its open transaction goes with its connection. Returns the queued files
        that had committed before that, whose 'done' had not been read yet."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)  # time to send the cancel request and exit
        committed = []
        while self.queued:
            try:
                line = self.lines.get(timeout=0.5)  # the reader thread passes on what psql wrote
            except queue.Empty:
                break
            if line is None:
                break
            committed.append(self.queued.popleft())
        self.close()
        return committed

    def run(self, file: SqlFile, steps: Sequence[Step], limits: Limits, *, transactional: bool) -> None:
        try:
            self._run(file, steps, limits, transactional=transactional)
        except KeyboardInterrupt:
            self.interrupt()
            raise

    def _run(self, file: SqlFile, steps: Sequence[Step], limits: Limits, *, transactional: bool) -> None:
        if transactional and DIES_WITH_PARENT:  # one write, one wait: a queue of one
            self.submit(file, steps, limits)
            self.collect()
            return
        if self.proc is None:
            self.start()
        head, tail = transaction_script(include(file), steps, limits, transactional=transactional,
                                        guard=True, cleanup=variable_cleanup(file, self.variables),
                                        ready=f"\\echo {self.token} ready")
        self._send(head)
        self._wait(file, dirty=not transactional)
        if tail:  # without PDEATHSIG the COMMIT is sent only once psql has run the whole file
            self._send(tail)
            self._sync("done", file)

    def run_group(self, group: Sequence[tuple[SqlFile, Sequence[Step], Step | None]], limits: Limits) -> None:
        """Several files, each with its tracking steps, in ONE transaction (``--single-transaction``),
        the session reset after each, the transaction proved after each file to be the one opened:
        a file that ended it is stopped there, its version marked dirty (what it committed stays)."""
        if self.proc is None:
            self.start()
        script = [chain(["BEGIN", *limits.set_local_statements(), "SELECT txid_current() AS pgmigrate_xid"],
                        end="\\gset")]
        for number, (file, steps, escape) in enumerate(group):
            script += [f"\\echo {self.token} file {number}", *group_member(include(file), escape),
                       chain([*SESSION_RESET, *limits.set_local_statements(),
                              *(render(sql, params) for sql, params in steps)]),
                       *variable_cleanup(file, self.variables)]
        self._send("\n".join([*script, f"\\echo {self.token} ready"]) + "\n")
        running = group[0][0]
        while (line := self.lines.get()) is not None and not line.endswith(" ready"):
            running = group[int(line.split()[-1])][0]  # '<token> file N': the file psql is on
        if line is None:
            raise self._failure(running, dirty=False)
        self._send("COMMIT;\n")
        self._sync("done", [group[-1][0]])

    def _failure(self, file: SqlFile | list[SqlFile] | None, *, dirty: bool) -> MigrationFailed:
        if self.proc:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        time.sleep(0.05)  # let the stderr reader drain
        self.proc = None
        if isinstance(file, list):  # one of a group: the one psql names
            file = _named_in(self.errors, file)
        return parse_psql_error(self.errors, file, dirty=dirty)


def _named_in(lines: list[str], files: list[SqlFile]) -> SqlFile | None:
    """The file among ``files`` that psql's first error line names (or the first of them)."""
    for raw in lines:
        m = _ERROR_LINE.match(raw)
        if m:
            reported = Path(m.group("file") or "<stdin>").name
            return next((f for f in files if f.path.name == reported or reported.startswith(f.path.stem + ".")),
                        files[0])
    return files[0] if files else None


def include(file: SqlFile, *, absolute: bool = False) -> str:
    """``\\i 'FILE'``: the file where it is, so that its ``\\ir`` resolve against its own folder, as in
    ``psql -f FILE``. psql skips a BOM on the first line itself, the client encoding being UTF8 (set
    by the runner, restored by the session reset after each file). ``absolute``: from any folder."""
    return f"\\i {quote_meta_arg(os.path.abspath(file.path) if absolute else str(file.path))}"


def parse_psql_error(lines: list[str], file: SqlFile | None, *, dirty: bool) -> MigrationFailed:
    """Turn psql's stderr (VERBOSITY verbose) into a MigrationFailed naming file and line. psql
    never had the password on its command line or in its input, so it cannot echo it."""
    where = display_path(file) if file else "psql"
    for i, raw in enumerate(lines):
        m = _ERROR_LINE.match(raw)
        if not m:
            continue
        reported = m.group("file") or "<stdin>"
        line = int(m.group("line") or 0)
        rest = m.group("rest")
        state = None
        sm = _SQLSTATE.match(rest)
        if sm:
            state, rest = sm.group("state"), sm.group("msg")
        ours = file is not None and Path(reported).resolve() == file.path.resolve()
        if ours:
            line = error_line(file, line, lines[i + 1:])
            location = f"{where}:{line}"
        elif reported == "<stdin>":
            location = where
        else:
            location = f"{reported}:{line}"
        details = []
        for extra in lines[i + 1:]:
            key = extra.split(":", 1)[0]
            if key in ("DETAIL", "HINT"):
                details.append(f"{key.lower()}: {extra.split(':', 1)[1].strip()}")
            elif key == "CONTEXT":
                details.append(f"context: {extra.split(':', 1)[1].strip()}")
            elif _ERROR_LINE.match(extra):
                break
        if "syntax error at or near \":" in rest and file is not None:
            details.append("hint: a psql variable may be unset")
        if state == ESCAPED:  # the guard found the transaction gone: the row it wrote first stays dirty
            return MigrationFailed(f"{where}: {rest}", path=where, sqlstate=state, dirty=True)
        suffix = f" (SQLSTATE {state})" if state else ""
        return MigrationFailed(f"{location}: {rest}{suffix}", path=location, line=line, sqlstate=state,
                               details=details, dirty=dirty)
    for raw in lines:
        m = _BARE_FATAL.match(raw)
        if m:
            return MigrationFailed(f"{where}: psql: {m.group('rest')}", path=where, dirty=dirty)
    last = next((ln for ln in reversed(lines) if ln.strip()), "psql exited without a message")
    return MigrationFailed(f"{where}: {last}", path=where, dirty=dirty)


def error_line(file: SqlFile, reported: int, following: list[str]) -> int:
    """The line of the error itself. psql reports the input line it had reached (where the failing
    statement's ';' is) and, in ``LINE n:``, the line within the statement it sent; the lexer knows
    where that statement's buffer began. Without ``LINE n:`` (an error at run time), the statement's
    first line, or the line inside a DO block or function of the file that CONTEXT names."""
    m = next((_STATEMENT_LINE.match(ln) for ln in following if _STATEMENT_LINE.match(ln)), None)
    if file.large:
        return reported
    if m is None:
        statement = locate.statement_at_line(file.scan, file.text, reported)
        mapped = locate.context_line(file.text, file.scan, statement, _context(following))
        return mapped or (statement.line if statement else reported)
    for statement in reversed(file.scan.statements):
        if statement.buffer_line <= reported:
            end = statement.line + line_of(statement.text, len(statement.text)) - 1
            return statement.buffer_line + int(m.group(1)) - 1 if end >= reported else reported
    return reported


def _context(following: list[str]) -> str | None:
    """The CONTEXT of an error in psql's verbose output (it may run over several lines)."""
    lines: list[str] = []
    for ln in following:
        if ln.startswith("CONTEXT:"):
            lines.append(ln.split(":", 1)[1].strip())
        elif lines and not re.match(r"^(LOCATION|STATEMENT|DETAIL|HINT|QUERY|psql):?", ln):
            lines.append(ln.strip())
        elif lines or _ERROR_LINE.match(ln):
            break
    return "\n".join(lines) or None


def variables_problem(file: SqlFile, given: dict[str, str]) -> tuple[str, str] | None:
    """``(message, variable)`` if the file uses a quoted psql variable (``:'x'``, ``:\"x\"``) that nobody sets."""
    if file.large:  # data loads are not searched for variables: psql reports an unset one
        return None
    defined = set(given)
    for _line_no, text in enumerate(file.text.splitlines(), start=1):
        stripped = text.strip()
        if stripped.startswith("\\set "):
            parts = stripped.split()
            if len(parts) > 1:
                defined.add(parts[1])
    for line_no, name in file.scan.variables:
        if name not in defined:
            return f"{display_path(file)}:{line_no}: psql variable :'{name}' is not set", name
    return None
