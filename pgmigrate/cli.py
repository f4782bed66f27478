"""Command line: ``build_parser()`` and ``main(argv) -> exit code``.

Each command is a small function taking the parsed arguments and a Printer; the work is done by
the engine, which returns data. Exceptions of the package become one ``error:`` line and their exit
code; anything else is a bug and shows a traceback only with ``--verbose``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import (
    EXIT_CONNECT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_USAGE,
    MigrateError,
    StateError,
    UsageError,
)
from .fleet import options as fleet_options

EPILOG = f"""exit codes:
  {EXIT_OK}  success (also: nothing to apply)
  {EXIT_FAILED}  a migration or seed failed, a check found problems, or the database state refuses the command
  {EXIT_USAGE}  bad arguments, invalid migration files or configuration
  {EXIT_CONNECT}  cannot connect: server down, wrong credentials, database missing
  {EXIT_LOCKED}  another runner held the migration lock longer than --lock-wait
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C): the running statement was cancelled, its migration rolled back

database: --database-url, else DATABASE_URL, else POSTGRES_HOST/PORT/DB/USER/PASSWORD, else PG*
variables, else the embedded server (make db-up); a .env file in the working directory fills in
variables the environment does not set. Likewise --dir / MIGRATIONS_DIR and --table / MIGRATIONS_TABLE."""


def whole_number(text: str) -> int | None:
    """The value of a whole number written with the digits 0-9 only, else None (``int()`` would also
    take other scripts' digits, '+3', ' 3' and '1_000')."""
    return int(text) if text.isascii() and text.isdigit() else None


def _version_arg(text: str) -> int:
    value = whole_number(text)
    if value is None or value > 2**63 - 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a migration version (a whole number, digits 0-9)")
    return value


def _count_arg(text: str) -> int:
    value = whole_number(text)
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a count (a whole number of 1 or more, digits 0-9)")
    return value


def _retries_arg(text: str) -> int:
    value = whole_number(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of retries (a whole number, digits 0-9)")
    return value


def _seconds_arg(text: str) -> float:
    number = text.removesuffix("s")
    if number.startswith("-"):
        raise argparse.ArgumentTypeError("seconds cannot be negative")
    whole, _, fraction = number.partition(".")
    if not (whole or fraction) or any(part and whole_number(part) is None for part in (whole, fraction)):
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds (such as 5 or 0.5)")
    return float(number)


def _variable_arg(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.replace("_", "a").isalnum() or name[0].isdigit():
        raise argparse.ArgumentTypeError(f"'{text}' is not name=value (a psql variable name, then '=')")
    return name, value


def _run_options() -> argparse.ArgumentParser:
    """Options of the commands that change the database."""
    p = argparse.ArgumentParser(add_help=False, formatter_class=_Formatter)
    g = p.add_argument_group("locks and timeouts")
    g.add_argument("--lock-wait", type=_seconds_arg, default=60.0, metavar="S",
                   help="give up after waiting S seconds for another runner's lock (default 60)")
    g.add_argument("--lock-timeout", type=_seconds_arg, default=5.0, metavar="S",
                   help="SET LOCAL lock_timeout for each migration; 0 disables (default 5)")
    g.add_argument("--lock-retries", type=_retries_arg, default=3, metavar="N",
                   help="retries of a migration that hit the lock timeout (default 3)")
    g.add_argument("--statement-timeout", type=_seconds_arg, default=0.0, metavar="S",
                   help="SET LOCAL statement_timeout for each migration; 0 means none (default)")
    p.add_argument("--set", dest="variables", action="append", type=_variable_arg, default=[], metavar="NAME=VALUE",
                   help="psql variable for files that use :'NAME' (repeatable)")
    return p


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse's formatter with the terminal width found without importing shutil, which argparse
    would otherwise load (with zlib, bz2 and lzma) on every start, help or not."""

    def __init__(self, prog: str, **options: object) -> None:
        options.setdefault("width", _columns() - 2)
        super().__init__(prog, **options)


def _columns() -> int:
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 80


class _Unused:
    """Stands in for the parsers of the commands not being run (``build_parser(only=...)``)."""

    def add_argument(self, *args: object, **options: object) -> None:
        return None


def _global_options(parser: argparse.ArgumentParser, default: object) -> None:
    flag = {} if default is None else {"default": default}
    parser.add_argument("--database-url", metavar="URL", help="connection URL or 'key=value' string", **flag)
    parser.add_argument("--dir", metavar="DIR",
                        help="migrations folder (env MIGRATIONS_DIR; default migrations/postgres)", **flag)
    parser.add_argument("--table", metavar="SCHEMA.NAME",
                        help="our tracking table (env MIGRATIONS_TABLE; default public.schema_migrations); the "
                        "repeatable migrations' table is NAME_repeatables beside it", **flag)
    parser.add_argument("--verbose", "-v", action="store_true", help="show notices, psql output and tracebacks",
                        **flag)
    parser.add_argument("--quiet", "-q", action="store_true", help="print only errors and requested data", **flag)
    fleet_options.add_target_options(parser, **flag)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command; with ``only``, the other commands are left out (a faster start
    when the command line names the one that runs)."""
    parser = argparse.ArgumentParser(
        prog="migrate.py",
        description="Apply, roll back, inspect and seed PostgreSQL migrations (NNNN_name.up.sql / .down.sql).",
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    _global_options(parser, None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = _run_options()
    fleet, fleet_fmt = fleet_options.run_options(with_format=False), fleet_options.run_options(with_format=True)
    # The global options are taken after the command too ('up -q'); there they override only when given.
    again = argparse.ArgumentParser(add_help=False, formatter_class=_Formatter)
    _global_options(again.add_argument_group("global options (also before the command)"), argparse.SUPPRESS)

    def add(name: str, help_text: str, *, parents: list | None = None) -> argparse.ArgumentParser:
        if only is not None and name != only:
            return _Unused()
        return sub.add_parser(name, help=help_text, description=help_text, parents=[*(parents or []), again],
                              epilog=EPILOG, formatter_class=_Formatter)

    add("init", "create the database if missing (via the postgres database) and the tracking table", parents=[run])

    p = add("up", "apply pending migrations in version order, each in its own transaction", parents=[run, fleet_fmt])
    p.add_argument("--to", type=_version_arg, metavar="V", help="stop after version V")
    p.add_argument("--steps", type=_count_arg, metavar="N", help="apply at most N migrations")
    p.add_argument("--dry-run", action="store_true", help="list what would be applied; change nothing")
    p.add_argument("--sql", action="store_true", help="print the exact SQL script that would run; change nothing")
    p.add_argument("--allow-out-of-order", action="store_true",
                   help="apply pending migrations older than the newest applied one")
    p.add_argument("--ignore-changed", action="store_true", help="apply even if applied files have been edited")
    p.add_argument("--single-transaction", action="store_true",
                   help="apply every pending migration and its tracking row in ONE transaction: all or nothing")

    p = add("down", "roll back applied migrations, newest first (default 1)", parents=[run, fleet_fmt])
    p.add_argument("count", nargs="?", type=_count_arg, default=None, metavar="N", help="how many (default 1)")
    p.add_argument("--to", type=_version_arg, metavar="V", help="roll back everything above V (V stays applied)")
    p.add_argument("--all", action="store_true", help="roll back everything")
    p.add_argument("--dry-run", action="store_true", help="list what would be rolled back; change nothing")
    p.add_argument("--sql", action="store_true", help="print the exact SQL script that would run; change nothing")

    p = add("redo", "roll back the newest migration and apply it again (both files checked first)", parents=[run])
    p.add_argument("--dry-run", action="store_true", help="list what would run; change nothing")

    p = add("status", "list every migration with its state, then a summary", parents=[fleet])
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--check", action="store_true", help="exit 1 unless everything is applied and clean")

    add("version", "print the highest applied version (0 when none)", parents=[fleet_fmt])

    p = add("force", "re-run version V's up file now, record it and clear its dirty mark", parents=[run])
    p.add_argument("version", type=_version_arg, metavar="V")

    p = add("baseline", "record every migration up to V as applied without running it", parents=[run])
    p.add_argument("version", type=_version_arg, metavar="V")

    p = add("rehash", "record the current checksum of version V's file after an intended edit", parents=[run])
    p.add_argument("version", type=_version_arg, metavar="V")

    add("verify", "report duplicate, invalid, changed, missing, dirty and out-of-order migrations", parents=[fleet_fmt])

    p = add("create", "write the next version's .up.sql and .down.sql files")
    p.add_argument("name", help="letters, digits, '_' and '-', e.g. add_users_table")

    p = add("fresh", "drop every schema (public's objects too) and apply everything again", parents=[run])
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--allow-production", action="store_true", help="allow it when APP_ENV/ENVIRONMENT says production")

    p = add("seed", "run the seed files (SEEDS_DIR, default seeds/) in name order, each in a transaction",
            parents=[run])
    p.add_argument("--seeds-dir", metavar="DIR", help="seeds folder (env SEEDS_DIR; default seeds)")

    p = add("wait", "wait until the database accepts connections")
    p.add_argument("--timeout", type=_seconds_arg, default=30.0, metavar="S",
                   help="give up after S seconds (default 30)")

    p = add("server", "manage the embedded PostgreSQL in .pgdata/ (make db-up / db-down)")
    p.add_argument("action", choices=["start", "stop", "status", "url"])
    p.add_argument("--if-unconfigured", action="store_true",
                   help="with start: only when no other database is configured (what 'make demo' uses)")

    p = add("dump-schema", "write database/schemas/<schema>.sql and docs/schema.md from a scratch database "
            "migrated from scratch (make db-schema-dump)")
    p.add_argument("--out", default="database/schemas", metavar="DIR", help="where the .sql files go")
    p.add_argument("--docs", default="docs/schema.md", metavar="FILE", help="the generated data-model page")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if the files differ (drift)")

    p = add("adopt", "take over a database another tool manages: move its history into our tracking table")
    if not isinstance(p, _Unused):
        from . import formats

        p.add_argument("--from", dest="tool", metavar="TOOL", choices=formats.names(adoptable=True),
                       help=f"the tool: {', '.join(formats.names(adoptable=True))} (found from the tables when there "
                       "is only one)")
        p.add_argument("--from-table", metavar="SCHEMA.NAME",
                       help="the other tool's tracking table, when several are found (every schema is searched); "
                       "the history goes into our table (--table)")
        p.add_argument("--dry-run", action="store_true", help="print what would be done; change nothing")
        p.add_argument("--keep", action="store_true", help="leave the old table as it is (default: rename it)")

    p = add("import", "convert another tool's migrations folder into NNNNNN_name.up.sql/.down.sql files")
    if not isinstance(p, _Unused):
        from . import formats

        p.add_argument("--from", dest="tool", required=True, metavar="TOOL", choices=formats.names(importable=True),
                       help=f"the tool: {', '.join(formats.names(importable=True))}")
        p.add_argument("source", metavar="SRC", help="the other tool's migrations folder")

    p = add("check", "run every migration on a throwaway database and report what it would do to a live one: "
            "down files that do not revert, locks, rewrites, validating scans, and drift (with --against)",
            parents=[fleet])
    p.add_argument("--format", choices=["text", "json"], default="text",
                   help="text: FILE:LINE: severity: rule: message, one line each (default); json: for machines")
    p.add_argument("--against", metavar="URL",
                   help="a live database, only read: judge pending migrations by its table sizes, report drift")
    p.add_argument("--shadow", metavar="URL", help="the server to make the throwaway database on (default: the "
                   "configured one; CREATE DATABASE through the URL's database, else 'postgres')")
    p.add_argument("--set", dest="variables", action="append", type=_variable_arg, default=[], metavar="NAME=VALUE",
                   help="psql variable for files that use :'NAME' (repeatable)")

    p = add("psql", "open psql on the configured database (extra arguments go to psql)")
    p.add_argument("psql_args", nargs=argparse.REMAINDER, metavar="ARGS")
    return parser


# --- command handlers ---


# The remedies of the core's errors (errors.Remedy), in a shell's terms.
CLI_WORDS = {
    "force": "fix the file and run 'scripts/migrate.py force {v}' (make db-migrate-force V={v}), or undo it with "
             "'scripts/migrate.py down'",
    "changed": "revert the edit, or record it with 'scripts/migrate.py rehash {v}', or pass --ignore-changed",
    "out-of-order": "apply it anyway with 'up --allow-out-of-order', after checking it does not depend on the "
                    "newer ones",
    "create-database": "create it with 'scripts/migrate.py init' (make db-init)",
    "start-embedded": "start it with 'make db-up'",
    "lock-wait": "let that runner finish, or raise --lock-wait",
    "adopt": "move its history over with 'scripts/migrate.py adopt --from {name}' (try --dry-run first)",
    "set-variable": "pass it with --set {name}=VALUE",
    "migrations-dir": "create it, or point --dir / MIGRATIONS_DIR at the right one",
    "write-down": "write one to roll it back",
    "no-transaction": "add '-- migrate:no-transaction' as the file's first line, or move the statement to such "
                      "a file",
}


def _settings(args: argparse.Namespace):
    from .config import build_settings

    settings = build_settings(database_url=args.database_url, migrations_dir=args.dir,
                              seeds_dir=getattr(args, "seeds_dir", None), migrations_table=args.table)
    settings.verbose, settings.quiet = args.verbose, args.quiet
    for name in ("lock_wait", "lock_timeout", "lock_retries", "statement_timeout"):
        if hasattr(args, name):
            setattr(settings, name, getattr(args, name))
    settings.variables = dict(getattr(args, "variables", []) or [])
    return settings


def _runner(args: argparse.Namespace, printer):
    from .engine import Runner

    output = (lambda line: print(line, file=sys.stderr)) if args.verbose else None
    return Runner(_settings(args), on_result=printer.result, on_note=printer.note, on_output=output)


def cmd_init(args, printer) -> int:
    with _runner(args, printer) as runner:
        done = runner.init()
        target = runner.settings.target.describe()
    printer.info(("created database; " if done["created_database"] else "") + f"ready: {target}")
    return EXIT_OK


def cmd_up(args, printer) -> int:
    if args.sql:
        return _print_plan(args, printer, "up")
    with _runner(args, printer) as runner:
        results = runner.up(to=args.to, steps=args.steps, dry_run=args.dry_run,
                            allow_out_of_order=args.allow_out_of_order, ignore_changed=args.ignore_changed,
                            single_transaction=args.single_transaction)
        version, _ = runner.version()
    if not results:
        printer.info(f"nothing to apply; current version {version}")
    elif not args.dry_run:
        printer.info(f"{_applied(results)} in {sum(r.ms for r in results) / 1000:.2f} s; current version {version}")
    return EXIT_OK


def _applied(results: list) -> str:
    """``2 migration(s) applied`` or ``2 migration(s) and 1 repeatable migration(s) applied``."""
    versioned = sum(1 for r in results if r.version is not None)
    repeatable = sum(1 for r in results if r.version is None and r.action == "applied")
    forgot = sum(1 for r in results if r.action == "forgot")
    parts = [f"{versioned} migration(s)"] if versioned or not repeatable else []
    parts += [f"{repeatable} repeatable migration(s)"] if repeatable else []
    return " and ".join(parts) + " applied" + (f", {forgot} repeatable migration(s) forgotten" if forgot else "")


def cmd_down(args, printer) -> int:
    if args.sql:
        return _print_plan(args, printer, "down")
    with _runner(args, printer) as runner:
        results = runner.down(args.count, to=args.to, all_=args.all, dry_run=args.dry_run)
        version, _ = runner.version()
    if not results:
        printer.info(f"nothing to roll back; current version {version}")
    elif not args.dry_run:
        printer.info(f"{len(results)} migration(s) rolled back; current version {version}")
    return EXIT_OK


def _print_plan(args, printer, direction: str) -> int:
    """``--sql``: the script of the plan ``up`` or ``down`` would run, refused exactly as they would be."""
    from .config import Limits
    from .preview import render_plan

    with _runner(args, printer) as runner:
        if direction == "up":
            plan = runner.plan("up", to=args.to, steps=args.steps, allow_out_of_order=args.allow_out_of_order,
                               ignore_changed=args.ignore_changed, single=args.single_transaction)
        else:
            plan = runner.plan("down", count=args.count, to=args.to, all_=args.all)
        settings = runner.settings
        limits = Limits(settings.lock_timeout, settings.statement_timeout, settings.lock_retries)
        text = render_plan(plan, limits=limits, variables=settings.variables,
                           target_description=settings.target.describe(), direction=direction, table=settings.table)
    sys.stdout.write(text)
    return EXIT_OK


def cmd_redo(args, printer) -> int:
    with _runner(args, printer) as runner:
        runner.redo(dry_run=args.dry_run)
    return EXIT_OK


def cmd_status(args, printer) -> int:
    with _runner(args, printer) as runner:
        status = runner.status()
    if args.format == "json":
        printer.status_json(status)
    else:
        printer.status_table(status)
    return EXIT_FAILED if args.check and (not status.clean or status.out_of_order) else EXIT_OK


def cmd_version(args, printer) -> int:
    with _runner(args, printer) as runner:
        version, dirty = runner.version()
    printer.line(str(version))
    if dirty:
        printer.warning(f"version {version} is dirty; see 'status'")
    return EXIT_OK


def cmd_force(args, printer) -> int:
    with _runner(args, printer) as runner:
        runner.force(args.version)
    return EXIT_OK


def cmd_baseline(args, printer) -> int:
    with _runner(args, printer) as runner:
        results = runner.baseline(args.version)
    printer.info(f"recorded {len(results)} migration(s) as applied, up to version {args.version}")
    return EXIT_OK


def cmd_rehash(args, printer) -> int:
    with _runner(args, printer) as runner:
        old, new = runner.rehash(args.version)
    printer.info(f"version {args.version}: checksum {(old or 'none')[:8]} -> {new[:8]}")
    return EXIT_OK


def cmd_verify(args, printer) -> int:
    with _runner(args, printer) as runner:
        problems = runner.verify()
    for problem in problems:
        printer.line(f"problem: {problem}")
    printer.info(f"{len(problems)} problem(s) found" if problems else "ok: no problems found")
    return EXIT_FAILED if problems else EXIT_OK


def cmd_create(args, printer) -> int:
    from .creation import create_migration

    settings = _settings(args)
    from datetime import UTC, datetime

    up, down = create_migration(settings.migrations_dir, args.name, datetime.now(UTC))
    printer.line(str(up))
    printer.line(str(down))
    return EXIT_OK


def cmd_fresh(args, printer) -> int:
    with _runner(args, printer) as runner:
        from .admin import refuse_production

        refuse_production(runner.settings.environment, args.allow_production)
        if not args.yes:
            _confirm(runner.settings.target)
        results = runner.fresh(allow_production=args.allow_production)
    printer.info(f"dropped everything; {_applied(results)}")
    return EXIT_OK


def _confirm(target) -> None:
    dbname = target.dbname or "?"
    if not sys.stdin.isatty():
        raise StateError(f"refusing to drop every schema of database \"{dbname}\" without --yes")
    answer = input(f"This drops every schema and object in database \"{dbname}\" ({target.describe()}).\n"
                   f"Type the database name to confirm: ")
    if answer.strip() != dbname:
        raise StateError("not confirmed; nothing was dropped")


def cmd_seed(args, printer) -> int:
    with _runner(args, printer) as runner:
        results = runner.seed()
    printer.info(f"ran {len(results)} seed file(s)")
    return EXIT_OK


def cmd_wait(args, printer) -> int:
    from .db import wait_for

    settings = _settings(args)
    waited = wait_for(settings.target, args.timeout)
    printer.info(f"database ready after {waited:.1f} s: {settings.target.describe()}")
    return EXIT_OK


def cmd_server(args, printer) -> int:
    from .config import load_environment
    from .embedded import from_environment

    env = load_environment()
    server = from_environment(_project_root(), env)
    if args.action == "start" and args.if_unconfigured and not _settings(args).target.embedded:
        printer.info(f"using the configured database ({_settings(args).target.source}); not starting the embedded one")
        return EXIT_OK
    if args.action == "start":
        url = server.start()
        printer.info(f"embedded PostgreSQL running: {url} (data in {server.datadir})")
    elif args.action == "stop":
        was = server.stop()
        printer.info("embedded PostgreSQL stopped" if was else "embedded PostgreSQL was not running")
    elif args.action == "url":
        printer.line(server.url)
    else:
        for key, value in server.status().items():
            printer.line(f"{key}: {value}")
    return EXIT_OK


def cmd_dump_schema(args, printer) -> int:
    from .schemadump import dump_schemas

    settings = _settings(args)
    changed = dump_schemas(settings, Path(args.out), Path(args.docs), check=args.check, on_note=printer.note)
    if args.check:
        for path in changed:
            printer.line(f"differs: {path}")
        printer.info("schema files are up to date" if not changed else "schema files differ from the migrations; "
                     "run 'make db-schema-dump' and commit the result")
        return EXIT_FAILED if changed else EXIT_OK
    for path in changed:
        printer.info(f"wrote {path}")
    return EXIT_OK


def cmd_adopt(args, printer) -> int:
    from .adopt import adopt

    for line in adopt(_settings(args), tool=args.tool, table=args.from_table, dry_run=args.dry_run, keep=args.keep,
                      on_note=printer.note):
        printer.line(line)
    return EXIT_OK


def cmd_import(args, printer) -> int:
    from .importer import import_folder

    for path in import_folder(args.tool, Path(args.source), _settings(args).migrations_dir, printer.note):
        printer.line(str(path))
    return EXIT_OK


def cmd_psql(args, printer) -> int:
    from .psql import exec_psql

    exec_psql(_settings(args).target, args.psql_args)
    return EXIT_OK  # not reached: psql replaces this process


def cmd_check(args, printer) -> int:
    from .check import run_check
    from .check.report import as_json, summary_line, text_lines
    from .config import Target

    settings = _settings(args)
    against = Target(args.against, "--against") if args.against else None
    shadow = Target(args.shadow, "--shadow") if args.shadow else None
    try:
        report = run_check(settings, against=against, shadow=shadow, on_note=printer.note)
    except KeyboardInterrupt:
        printer.error("interrupted; the throwaway database was dropped, nothing was changed")
        return EXIT_INTERRUPTED
    if args.format == "json":
        printer.line(as_json(report))
    else:
        for line in text_lines(report, lambda text, colour: printer.paint(text, colour)):
            printer.line(line)
        printer.info(summary_line(report))
    return EXIT_FAILED if report.failed else EXIT_OK


def _project_root() -> Path:
    """The folder with the Makefile, found from the working directory upwards."""
    here = Path.cwd()
    for candidate in (here, *here.parents):
        if (candidate / "Makefile").is_file() and (candidate / "pyproject.toml").is_file():
            return candidate
    return here


HANDLERS = {
    "init": cmd_init, "up": cmd_up, "down": cmd_down, "redo": cmd_redo, "status": cmd_status,
    "version": cmd_version, "force": cmd_force, "baseline": cmd_baseline, "rehash": cmd_rehash,
    "verify": cmd_verify, "create": cmd_create, "fresh": cmd_fresh, "seed": cmd_seed,
    "wait": cmd_wait, "server": cmd_server, "psql": cmd_psql, "dump-schema": cmd_dump_schema,
    "adopt": cmd_adopt, "import": cmd_import, "check": cmd_check,
}


def main(argv: list[str] | None = None) -> int:
    from .output import Printer

    argv = sys.argv[1:] if argv is None else list(argv)
    head, psql_args = _split_psql(argv)
    command = _command(head)
    wants_help = "-h" in head or "--help" in head
    parser = build_parser(only=None if wants_help or command not in HANDLERS else command)
    args = parser.parse_args(head)
    if args.command == "psql":
        args.psql_args = psql_args
    printer = Printer(quiet=args.quiet)
    try:
        if fleet_options.fleet_requested(args):
            from .fleet.command import run as run_fleet

            return run_fleet(args, printer, _settings(args))
        if fleet_options.misplaced(args):
            raise UsageError(fleet_options.misplaced(args))
        return HANDLERS[args.command](args, printer)
    except MigrateError as exc:
        printer.error(exc.worded(CLI_WORDS), exc.details)
        if args.verbose:
            _traceback(printer)
        return exc.exit_code
    except KeyboardInterrupt:
        printer.error("interrupted; the migration in progress was rolled back")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: say so in one line, the traceback only on request
        printer.error(f"unexpected {type(exc).__name__}: {exc}; rerun with --verbose and report it")
        if args.verbose:
            _traceback(printer)
        return EXIT_FAILED


_TAKES_VALUE = ("--database-url", "--dir", "--table", "--targets", "--targets-query")


def _command(argv: list[str]) -> str | None:
    """The command named on the command line (the first word that is not an option or its value)."""
    for i, arg in enumerate(argv):
        if not arg.startswith("-") and (i == 0 or argv[i - 1] not in _TAKES_VALUE):
            return arg
    return None


def _split_psql(argv: list[str]) -> tuple[list[str], list[str]]:
    """For the ``psql`` command, everything after it is psql's own (options too; a leading ``--`` is
    dropped), so it is kept away from our parser."""
    if _command(argv) != "psql":
        return argv, []
    i = next(i for i, arg in enumerate(argv) if arg == "psql" and (i == 0 or argv[i - 1] not in _TAKES_VALUE))
    rest = argv[i + 1:]
    return argv[: i + 1], rest[1:] if rest[:1] == ["--"] else rest


def _traceback(printer) -> None:
    import traceback

    print(traceback.format_exc(), file=printer.err)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

__all__ = ["EXIT_CONNECT", "EXIT_LOCKED", "build_parser", "main"]
