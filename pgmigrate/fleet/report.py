"""What a fleet run prints: a line per target as it finishes, a summary, or the JSON report; on a
terminal, a live progress line below the finished lines.

Targets finish in other threads and report notes (lock waits, retries) from there, so every write
goes through one lock, and the progress line is wiped before anything else is written and drawn
again after. The progress line appears only when stdout is a terminal, and never with --quiet.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import Counter

from ..output import use_colour
from .scheduler import Outcome

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

STATES = ("ok", "failed", "skipped")
_COLOUR = {"ok": "32", "failed": "31", "skipped": "33"}
_CLEAR = "\r\033[K"
# Commands whose lines are the data asked for: printed with --quiet too.
DATA_COMMANDS = ("status", "version", "verify")


class Report:
    def __init__(self, command: str, names: list[str], *, fmt: str = "text", quiet: bool = False,
                 out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.command = command
        self.total = len(names)
        self.width = min(max(len(n) for n in names), 40)
        self.json = fmt == "json"
        self.quiet = quiet
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.colour = use_colour(self.out)
        self.live = not quiet and _terminal(self.out)
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.running = 0
        self.start = time.monotonic()
        self.drawn = 0.0  # when the progress line was last drawn (0: not on screen)

    # --- as the run goes ---

    def started(self, _target: object) -> None:
        with self.lock:
            self.running += 1
            self._draw()

    def finished(self, outcome: Outcome) -> None:
        with self.lock:
            if outcome.state != "skipped":
                self.running -= 1
            self.counts[outcome.state] += 1
            if not self.json and (not self.quiet or outcome.state != "ok" or self.command in DATA_COMMANDS):
                self._write(self.out, self.line(outcome))
            self._draw()

    def note(self, text: str) -> None:
        """Notes (waits, retries, --verbose output) on stderr, each line prefixed by the caller."""
        with self.lock:
            self._write(self.err, text if text.startswith(("note:", "warning:")) else f"note: {text}")
            self._draw()

    def tick(self) -> None:
        with self.lock:
            if self.live and time.monotonic() - self.drawn >= 0.5:
                self._draw()

    # --- at the end ---

    def close(self, outcomes: list[Outcome], *, interrupted: bool) -> None:
        with self.lock:
            self._wipe()
            self.live = False
            if self.json:
                self.out.write(json.dumps(as_json(outcomes), indent=2) + "\n")
            elif not self.quiet:
                self.out.write(self.summary(outcomes, interrupted=interrupted) + "\n")
            self.out.flush()
            problem = self.problem(outcomes, interrupted=interrupted)
            if problem:
                paint = "\033[31merror:\033[0m" if use_colour(self.err) else "error:"
                self.err.write(f"{paint} {problem}\n")
                self.err.flush()

    def summary(self, outcomes: list[Outcome], *, interrupted: bool) -> str:
        counts = Counter(o.state for o in outcomes)
        text = f"{len(outcomes)} targets: " + ", ".join(f"{counts[s]} {s}" for s in STATES)
        text += f" in {time.monotonic() - self.start:.2f} s"
        return text + ("; interrupted" if interrupted else "")

    def problem(self, outcomes: list[Outcome], *, interrupted: bool = False) -> str:
        """The closing ``error:`` line when not every target is ok ('' when all are)."""
        failed = [o.name for o in outcomes if o.state == "failed"]
        skipped = [o.name for o in outcomes if o.state == "skipped"]
        if not failed and not skipped:
            return ""
        parts = []
        if failed:
            parts.append(f"{len(failed)} of {len(outcomes)} targets failed ({_names(failed)})")
        if skipped:
            parts.append(f"{len(skipped)} skipped")
        text = ", ".join(parts)
        if interrupted:
            return f"interrupted: {text}; run the same command again to go on"
        if self.command in ("up", "down"):
            text += "; fix the cause and run the same command again: each target does only what is still to do"
        return text

    # --- lines ---

    def line(self, o: Outcome) -> str:
        state = f"{o.state:<7}"
        if self.colour:
            state = f"\033[{_COLOUR[o.state]}m{state}\033[0m"
        parts = [f"{o.name:<{self.width}}", state]
        if o.state != "skipped":
            if self.command not in ("status", "version"):  # their detail already says the version
                parts.append(f"version {'?' if o.version is None else o.version}")
            if o.detail:
                parts.append(o.detail)
            parts.append(f"{o.seconds:.2f} s")
        if o.error:
            parts.append(("error: " if o.state == "failed" else "") + o.error)
        return "  ".join(parts)

    # --- the progress line ---

    def _progress(self) -> str:
        c = self.counts
        done = c["ok"] + c["failed"] + c["skipped"]
        return (f"[{done}/{self.total}] {c['ok']} ok, {c['failed']} failed, {c['skipped']} skipped, "
                f"{self.running} running, {time.monotonic() - self.start:.1f} s")

    def _draw(self) -> None:
        if self.live:
            self.out.write(_CLEAR + self._progress()[: _columns(self.out) - 1])  # a wrapped line cannot be wiped
            self.out.flush()
            self.drawn = time.monotonic()

    def _wipe(self) -> None:
        if self.drawn:
            self.out.write(_CLEAR)
            self.out.flush()
            self.drawn = 0.0

    def _write(self, stream: TextIO, text: str) -> None:
        self._wipe()
        stream.write(text + "\n")
        stream.flush()


def as_json(outcomes: list[Outcome]) -> dict:
    counts = Counter(o.state for o in outcomes)
    return {
        "targets": [{"name": o.name, "state": o.state, "version": o.version, "applied": o.applied,
                     "error": o.error} for o in outcomes],
        "summary": {s: counts[s] for s in STATES},
    }


def _names(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _columns(stream: TextIO) -> int:
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        columns = 0
    return columns if columns >= 20 else 80  # a terminal that gives no size (0) gets the usual one


def _terminal(stream: TextIO) -> bool:
    return hasattr(stream, "isatty") and stream.isatty() and os.environ.get("TERM") != "dumb"
