"""The fleet's command-line options (argparse only: this is imported on every start)."""

from __future__ import annotations

import argparse

DEFAULT_PARALLEL = 4
DEFAULT_PER_HOST = 2  # one server's share: its CPU and disk serve every database on it
COMMANDS = ("up", "down", "status", "version", "verify", "check")
RUN_OPTIONS = ("parallel", "per_host", "canary", "max_failures")


def _whole(minimum: int):
    def parse(text: str) -> int:
        if not (text.isascii() and text.isdigit()) or int(text) < minimum:  # int() takes any script's digits
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number of {minimum} or more")
        return int(text)

    return parse


def add_target_options(parser: argparse.ArgumentParser, **flag: object) -> None:
    """``--targets`` / ``--targets-query``: global options, before or after the command."""
    parser.add_argument("--targets", metavar="FILE", help="run on every database of FILE: one '[NAME ]URL' a line "
                        "(up, down, status, version, verify, check)", **flag)
    parser.add_argument("--targets-query", metavar="SQL", help="run on the databases SQL returns, run on the "
                        "configured database: each row's first column a database name on that server, or a URL",
                        **flag)


def run_options(*, with_format: bool) -> argparse.ArgumentParser:
    """The options of a fleet run, for the commands that take --targets."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("many databases (with --targets or --targets-query)")
    g.add_argument("--parallel", type=_whole(1), metavar="N",
                   help=f"run on at most N databases at once (default {DEFAULT_PARALLEL})")
    g.add_argument("--per-host", type=_whole(1), metavar="M",
                   help=f"at most M of them on one server (default {DEFAULT_PER_HOST})")
    g.add_argument("--canary", type=_whole(0), metavar="K",
                   help="run the first K databases one at a time first; a failure among them skips the rest")
    g.add_argument("--max-failures", type=_whole(1), metavar="F",
                   help="start no database after F have failed; the rest are skipped")
    if with_format:
        g.add_argument("--format", choices=["text", "json"], help="text lines (default) or one JSON report")
    return p


def fleet_requested(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "targets", None) or getattr(args, "targets_query", None))


def misplaced(args: argparse.Namespace) -> str | None:
    """What is wrong with fleet options given without a fleet run, if anything."""
    given = [f"--{name.replace('_', '-')}" for name in RUN_OPTIONS if getattr(args, name, None) is not None]
    if getattr(args, "format", None) == "json" and args.command not in ("status", "check"):
        given.append("--format json")
    if given:
        return f"{', '.join(given)} needs --targets FILE or --targets-query SQL (a run on many databases)"
    return None
