"""A command run on many databases: ``--targets FILE`` or ``--targets-query SQL`` with up, down,
status, version or verify. Reads the targets, schedules the jobs, prints the report, returns the
exit code: 0 when every target is ok, 130 after Ctrl-C, 2 when the run stopped on an error every
target would give (invalid migration files, bad arguments), 1 otherwise."""

from __future__ import annotations

import argparse
import secrets
from pathlib import Path

from ..config import Settings
from ..errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError
from .options import COMMANDS, DEFAULT_PARALLEL, DEFAULT_PER_HOST
from .targets import FleetTarget, discover, parse_targets_file


def run(args: argparse.Namespace, printer: object, base: Settings) -> int:
    from .cancel import Canceller
    from .jobs import Job
    from .report import Report
    from .scheduler import Limits, Scheduler

    targets = load_targets(args, base)
    limits = Limits(parallel=args.parallel or DEFAULT_PARALLEL, per_host=args.per_host or DEFAULT_PER_HOST,
                    canary=args.canary or 0, max_failures=args.max_failures)
    fmt = "json" if getattr(args, "format", None) == "json" else "text"
    report = Report(args.command, [t.name for t in targets], fmt=fmt, quiet=args.quiet,
                    out=printer.out, err=printer.err)
    capped = capped_by_servers(targets, limits) if args.parallel else None
    if capped and not args.quiet:
        report.note(capped)
    run_id = secrets.token_hex(4)
    tags = {t.name: f"pgmigrate-fleet-{run_id}-{i}" for i, t in enumerate(targets, start=1)}
    job = Job(args.command, args, base, tags, on_note=report.note, verbose=args.verbose)
    scheduler = Scheduler(targets, job, limits, on_start=report.started, on_finish=report.finished,
                          on_tick=report.tick, on_note=report.note, cancel=lambda: Canceller(tags))
    outcomes = scheduler.run()
    report.close(outcomes, interrupted=scheduler.interrupted)
    if scheduler.interrupted:
        return EXIT_INTERRUPTED
    if all(o.state == "ok" for o in outcomes):
        return EXIT_OK
    return EXIT_USAGE if any(o.fatal for o in outcomes) else EXIT_FAILED


def load_targets(args: argparse.Namespace, base: Settings) -> list[FleetTarget]:
    if args.command not in COMMANDS:
        raise UsageError(f"--targets and --targets-query work with {', '.join(COMMANDS)}; "
                         f"run '{args.command}' on one database at a time")
    if args.targets and args.targets_query:
        raise UsageError("give --targets FILE or --targets-query SQL, not both")
    if getattr(args, "sql", False):
        raise UsageError(f"'{args.command} --sql' prints one database's script; run it without --targets")
    if args.targets:
        if args.database_url:
            raise UsageError("--database-url and --targets: the targets file names every database; give one of them")
        return parse_targets_file(Path(args.targets))
    return discover(base.target.conninfo, args.targets_query)


def capped_by_servers(targets: list[FleetTarget], limits: object) -> str | None:
    """A note when --per-host holds the run below --parallel (every target on few servers)."""
    servers = {t.server for t in targets}
    reachable = min(limits.parallel, len(targets), len(servers) * limits.per_host)
    if reachable >= min(limits.parallel, len(targets)):
        return None
    where = "one server" if len(servers) == 1 else f"{len(servers)} servers"
    return (f"at most {reachable} at once: the targets are on {where} and --per-host is {limits.per_host}; "
            f"raise --per-host to run up to --parallel {limits.parallel}")
