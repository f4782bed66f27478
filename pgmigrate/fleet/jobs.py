"""What a fleet command does on one target, through the engine's ``Runner``, as an ``Outcome``.

Each job opens its own Runner on its own connections, so the target gets everything a single run
gives: the migration lock, one transaction per migration, dirty marks, checksum and order checks.
Errors become the target's outcome (one line); the run goes on with the other targets.
"""

from __future__ import annotations

import copy
import time
import traceback
from collections.abc import Callable

from ..config import Settings, Target
from ..engine import Result, Runner
from ..errors import ConnectError, FileError, MigrateError
from ..output import summary
from .scheduler import Outcome
from .targets import FleetTarget


class Job:
    """Runs ``command`` (with the CLI's options in ``args``) on one target; see the module docstring."""

    def __init__(self, command: str, args: object, base: Settings, tags: dict[str, str], *,
                 on_note: Callable[[str], None], verbose: bool = False) -> None:
        self.command = command
        self.args = args
        self.base = base
        self.tags = tags
        self.on_note = on_note
        self.verbose = verbose

    def settings(self, target: FleetTarget, conninfo: str) -> Settings:
        """The run's settings (folders, timeouts, psql variables) pointed at ``target``."""
        settings = copy.copy(self.base)
        settings.target = Target(conninfo, f"target {target.name}")
        return settings

    def __call__(self, target: FleetTarget) -> Outcome:
        start = time.perf_counter()
        results: list[Result] = []

        def on_result(result: Result) -> None:
            results.append(result)
            if self.verbose:
                self.on_note(f"{target.name}: {result.action} {result.label} ({result.ms:.1f} ms)")

        def on_note(text: str) -> None:
            if text.startswith("warning: "):
                self.on_note(f"warning: {target.name}: {text.removeprefix('warning: ')}")
            else:
                self.on_note(f"{target.name}: {text}")

        settings = self.settings(target, target.tagged(self.tags[target.name]))
        output = on_note if self.verbose else None
        try:
            with Runner(settings, on_result=on_result, on_note=on_note, on_output=output) as runner:
                outcome = getattr(self, f"_{self.command}")(runner, target.name)
        except MigrateError as exc:
            for detail in exc.details if self.verbose else []:  # hint, context: the line has the message
                on_note(detail)
            version = None if isinstance(exc, ConnectError) else self._reached(target)
            from ..cli import CLI_WORDS

            outcome = Outcome(target.name, "failed", version=version, error=exc.worded(CLI_WORDS),
                              fatal=isinstance(exc, FileError))  # the same files for every target
        except Exception as exc:  # a bug, or a connection ended under it (Ctrl-C ends waiting sessions)
            if self.verbose:
                self.on_note(f"{target.name}: {traceback.format_exc().rstrip()}")
            outcome = Outcome(target.name, "failed", version=self._reached(target),
                              error=f"unexpected {type(exc).__name__}: {_first_line(exc)}; rerun with --verbose "
                                    "and report it")
        if self.command in ("up", "down"):
            outcome.applied = [r.label for r in results]
            if outcome.state == "failed" and results:  # what committed before the failure
                outcome.detail = _did("applied" if self.command == "up" else "rolled back", results, "")
        outcome.seconds = time.perf_counter() - start
        return outcome

    def _reached(self, target: FleetTarget) -> int | None:
        """The target's version after a failure, read afresh (None if that fails too)."""
        try:
            with Runner(self.settings(target, target.conninfo)) as runner:
                return runner.version()[0]
        except Exception:
            return None

    # --- the commands: each returns the outcome of a target that did not raise ---

    def _up(self, runner: Runner, name: str) -> Outcome:
        a = self.args
        results = runner.up(to=a.to, steps=a.steps, dry_run=a.dry_run, allow_out_of_order=a.allow_out_of_order,
                            ignore_changed=a.ignore_changed, single_transaction=a.single_transaction)
        verb = "would apply" if a.dry_run else "applied"
        return Outcome(name, "ok", version=runner.version()[0], detail=_did(verb, results, "up to date"))

    def _down(self, runner: Runner, name: str) -> Outcome:
        a = self.args
        results = runner.down(a.count, to=a.to, all_=a.all, dry_run=a.dry_run)
        verb = "would roll back" if a.dry_run else "rolled back"
        return Outcome(name, "ok", version=runner.version()[0], detail=_did(verb, results, "nothing to roll back"))

    def _status(self, runner: Runner, name: str) -> Outcome:
        status = runner.status()
        outcome = Outcome(name, "ok", version=status.current_version, detail=summary(status))
        if self.args.check and (not status.clean or status.out_of_order):
            outcome.state = "failed"
            problems = [f"{status.count(s)} {s}" for s in ("pending", "changed", "missing", "dirty") if status.count(s)]
            problems += [f"{status.count_repeatables(s)} repeatable {s}" for s in ("pending", "missing")
                         if status.count_repeatables(s)]
            if status.out_of_order:
                problems.append(f"{len(status.out_of_order)} out of order")
            if status.problems:
                problems.append(f"{len(status.problems)} problem(s) with the migration files")
            outcome.error = "not up to date: " + ", ".join(problems)
        return outcome

    def _version(self, runner: Runner, name: str) -> Outcome:
        version, dirty = runner.version()
        return Outcome(name, "ok", version=version, detail=f"version {version}" + (" (dirty)" if dirty else ""))

    def _verify(self, runner: Runner, name: str) -> Outcome:
        problems = runner.verify()
        version = runner.version()[0]
        if not problems:
            return Outcome(name, "ok", version=version, detail="no problems")
        return Outcome(name, "failed", version=version, detail=f"{len(problems)} problem(s)",
                       error="; ".join(problems))


    def _check(self, runner: Runner, name: str) -> Outcome:
        """``check --against`` the target: its drift, and the hazards of what is pending there judged
        by its table sizes (the throwaway database on the configured server, or --shadow's)."""
        from ..check import run_check
        from ..target import Target as Shadow

        shadow = Shadow(self.args.shadow, "--shadow") if self.args.shadow else None
        report = run_check(self.base, against=runner.settings.target, shadow=shadow, on_note=self.on_note)
        detail = ", ".join(f"{report.count(s)} {s}(s)" for s in ("error", "warning", "info"))
        if report.failed:
            first = next(f for f in report.findings if f.severity == "error")
            return Outcome(name, "failed", version=runner.version()[0], detail=detail,
                           error=f"{first.file}:{first.line or ''}: {first.rule}: {first.message}")
        return Outcome(name, "ok", version=runner.version()[0], detail=detail)


def _did(verb: str, results: list[Result], nothing: str) -> str:
    if not results:
        return nothing
    if len(results) == 1:
        return f"{verb} {results[0].label}"
    return f"{verb} {len(results)}: {results[0].label} .. {results[-1].label}"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no message"
