"""Repeatable migrations in ``check``: run through the runner once the migrations are checked, and,
with a live database, at its version, so that what they made there is not taken for drift.

A repeatable migration is written for the newest schema and runs after the versioned ones, so the
check runs every one of them after the last migration (a failure is an ``up-fails`` finding at its
file). The live database ran some of them at its version: those whose file is still the one it ran
are run on the throwaway database before the drift comparison; one that changed since is noted,
since what it makes may then differ.
"""

from __future__ import annotations

from collections.abc import Callable

from .. import discovery
from ..discovery import Folder
from ..errors import MigrationFailed
from . import rules
from .live import Live
from .report import Report
from .rules import Finding


def ran_live(folder: Folder, live: Live, on_note: Callable[[str], None]) -> list[str]:
    """The repeatable migrations the live database ran as their files are now."""
    same = []
    for r in (r for r in folder.repeatables if r.name in live.repeated):
        if live.repeated[r.name].checksum == r.file.checksum:
            same.append(r.name)
        else:
            on_note(f"warning: {discovery.display_path(r.file)} changed since the live database ran it (or is to "
                    "be run again there): what it makes may show as drift until 'up' runs it")
    return same


def run(runner: object, folder: Folder, names: list[str] | None, report: Report) -> bool:
    """Run the repeatable migrations named (None: those not run yet, after the last migration) through
    ``runner``; a failure is an ``up-fails`` finding at its file. Whether they all ran."""
    try:
        if names is None:
            runner.up()
        else:
            runner.repeat(names)
    except MigrationFailed as exc:
        failed = next((r for r in folder.repeatables if exc.path and exc.path.startswith(
            discovery.display_path(r.file))), folder.repeatables[0])
        message = exc.message.removeprefix(f"{exc.path}: ") if exc.path else exc.message
        report.add(Finding(rules.UP_FAILS, rules.ERROR, None, discovery.display_path(failed.file), exc.line or 1,
                           f"the repeatable migration fails on the schema the migrations build: {message}"))
        return False
    return True
