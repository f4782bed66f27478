"""Everything the CLI prints: one line per migration, the status table, errors on stderr.

Colour only on a terminal, and never when ``NO_COLOR`` is set.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from typing import TextIO

    from .results import Result, Status

_COLOURS = {"green": "32", "yellow": "33", "red": "31", "dim": "2", "bold": "1"}
_STATE_COLOUR = {"applied": "green", "pending": "yellow", "changed": "red", "missing": "red", "dirty": "red"}


def use_colour(stream: TextIO) -> bool:
    return "NO_COLOR" not in os.environ and hasattr(stream, "isatty") and stream.isatty()


class Printer:
    def __init__(self, *, quiet: bool = False, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.quiet = quiet
        self.colour_out = use_colour(self.out)
        self.colour_err = use_colour(self.err)

    def paint(self, text: str, colour: str, *, stream: str = "out") -> str:
        enabled = self.colour_out if stream == "out" else self.colour_err
        return f"\033[{_COLOURS[colour]}m{text}\033[0m" if enabled else text

    def line(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def info(self, text: str) -> None:
        if not self.quiet:
            self.line(text)

    def note(self, text: str) -> None:
        """Waits, retries and warnings: stderr, so stdout stays clean for pipes."""
        prefix = "" if text.startswith(("warning:", "waiting")) else "note: "
        print(self.paint(prefix + text, "yellow", stream="err"), file=self.err, flush=True)

    def warning(self, text: str) -> None:
        print(self.paint(f"warning: {text}", "yellow", stream="err"), file=self.err, flush=True)

    def error(self, message: str, details: list[str] | None = None) -> None:
        print(self.paint("error:", "red", stream="err") + " " + message, file=self.err, flush=True)
        for detail in details or []:
            print(f"  {detail}", file=self.err, flush=True)

    def result(self, result: Result) -> None:
        if self.quiet:
            return
        colour = "green" if result.action in ("applied", "seeded", "recorded") else "yellow"
        action = self.paint(f"{result.action:<11}", colour)
        timing = f"  {result.ms:8.1f} ms" if result.ms else ""
        self.line(f"{action} {result.label:<34}{timing}")

    def status_table(self, status: Status) -> None:
        from tabulate import tabulate

        rows = []
        for r in status.rows:
            state = self.paint(r.state, _STATE_COLOUR.get(r.state, "dim"))
            rows.append([r.version, r.name, state, _when(r.applied_at), _ms(r.execution_ms)])
        if rows:
            self.line(tabulate(rows, headers=["version", "name", "state", "applied_at", "time"],
                               tablefmt="simple", disable_numparse=True))
        repeatables = [[r.label, self.paint(r.state, _STATE_COLOUR.get(r.state, "dim")), _when(r.applied_at),
                        _ms(r.execution_ms)] for r in status.repeatables]
        if repeatables:
            if rows:
                self.line()
            self.line(tabulate(repeatables, headers=["repeatable", "state", "applied_at", "time"],
                               tablefmt="simple", disable_numparse=True))
        self.line(summary(status))
        for problem in status.problems:  # stderr: stdout stays the table
            print(self.paint("problem:", "red", stream="err") + " " + problem, file=self.err, flush=True)

    def status_json(self, status: Status) -> None:
        data = {
            "current_version": status.current_version,
            "clean": status.clean,
            "summary": {s: status.count(s) for s in ("applied", "pending", "changed", "missing", "dirty")},
            "repeatables_summary": {s: status.count_repeatables(s) for s in ("applied", "pending", "missing")},
            "out_of_order": status.out_of_order,
            "problems": status.problems,
            "migrations": [
                {
                    "version": r.version,
                    "name": r.name,
                    "state": r.state,
                    "applied_at": r.applied_at.isoformat() if r.applied_at else None,
                    "execution_ms": r.execution_ms,
                    "applied_by": r.applied_by,
                }
                for r in status.rows
            ],
            "repeatables": [
                {
                    "name": r.name,
                    "file": f"{r.label}.sql",
                    "state": r.state,
                    "applied_at": r.applied_at.isoformat() if r.applied_at else None,
                    "execution_ms": r.execution_ms,
                    "applied_by": r.applied_by,
                }
                for r in status.repeatables
            ],
        }
        import json

        self.line(json.dumps(data, indent=2))


def _when(moment: object) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def _ms(ms: int | None) -> str:
    return f"{ms} ms" if ms is not None else ""


def summary(status: Status) -> str:
    counts = [(s, status.count(s)) for s in ("applied", "pending", "changed", "missing", "dirty")]
    parts = [f"{n} {s}" for s, n in counts if n or s in ("applied", "pending")]
    text = ", ".join(parts) + f"; current version {status.current_version}"
    if status.repeatables:
        counts = [(s, status.count_repeatables(s)) for s in ("applied", "pending", "missing")]
        text += "; repeatable: " + ", ".join(f"{n} {s}" for s, n in counts if n or s != "missing")
    if status.out_of_order:
        text += f"; {len(status.out_of_order)} pending older than the newest applied (out of order)"
    if not status.table_exists:
        text += "; no tracking table yet (run 'init' or 'up')"
    if status.problems:
        text += f"; {len(status.problems)} problem(s) with the migration files, which 'up' and 'down' refuse"
    return text
