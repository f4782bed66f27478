"""``check``: what the migrations will do to a live database, found before they run.

The migrations run on a throwaway (shadow) database, in the mode the runner would use, and
PostgreSQL itself says what happened: which locks each statement took, which tables it rewrote,
which constraints it validated, which indexes it built without CONCURRENTLY; whether each down file
brings the schema back; and, with ``--against URL``, whether the live schema is what the
migrations build at its version. ``run_check`` returns a Report and prints nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..config import Settings, Target
from .report import Report
from .rules import RULES, Finding

__all__ = ["RULES", "Finding", "Report", "run_check"]


def _ignore(_: str) -> None:
    return None


def run_check(settings: Settings, *, against: Target | None = None, shadow: Target | None = None,
              on_note: Callable[[str], None] = _ignore) -> Report:
    """Check the migrations of ``settings.migrations_dir`` on a shadow database made on ``shadow``'s
    server (default: ``settings.target``'s, through its ``postgres`` database); ``against``: a live
    database, only read. The configured database itself is never connected to."""
    from .. import discovery
    from .checker import Checker
    from .live import read_live
    from .shadow import MAINTENANCE_DB, ShadowServer, shadow_database

    start = time.perf_counter()
    folder = discovery.load_folder(settings.migrations_dir, on_note)
    for m in folder.migrations:  # bad files are refused before anything runs
        for file in (m.up, m.down):
            if file is not None:
                file.check_runnable(no_transaction=False)  # reported as a finding instead
    for r in folder.repeatables:
        r.file.check_runnable()
    report = Report()
    live = read_live(against, settings.table) if against is not None else None
    if live is not None:
        report.against = against.describe()
    server = ShadowServer(shadow or settings.target,
                          (shadow.params().get("dbname") if shadow else None) or MAINTENANCE_DB)
    report.shadow = server.describe()
    with shadow_database(server, on_note) as db:
        if live is not None:
            _compare_versions(live.server_version, db.target, on_note)
        Checker(settings, db, report, live, on_note).run(folder)
    report.seconds = time.perf_counter() - start
    return report


def _compare_versions(live_version: int, shadow: Target, on_note: Callable[[str], None]) -> None:
    from .shadow import connect

    with connect(shadow) as conn:
        version = conn.info.server_version
    if version // 10000 != live_version // 10000:
        on_note(f"warning: the live database runs PostgreSQL {live_version // 10000} and the shadow database "
                f"{version // 10000}: definitions may print differently and show as drift; name a server of "
                "the live one's version with --shadow URL")
