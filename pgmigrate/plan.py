"""Exact SQL previews: the script ``up --sql`` and ``down --sql`` print.

It holds what the runner would send, file contents and tracking statements included, one
``BEGIN``/``COMMIT`` per transactional migration, built from the same statements the runner uses.
``psql -v ON_ERROR_STOP=1 -f plan.sql`` applies it with the same result as the runner.
"""

from __future__ import annotations

from datetime import UTC, datetime

from . import tracking
from .config import Limits
from .discovery import Migration, display_path
from .psql import set_variable, transaction_script


def render_plan(direction: str, migrations: list[Migration], *, limits: Limits, variables: dict[str, str],
                target_description: str, steps_for) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    verb = "apply" if direction == "up" else "roll back"
    out = [
        f"-- pgmigrate plan: {verb} {len(migrations)} migration(s) on {target_description}",
        f"-- generated {stamp}; run it with: psql -X -v ON_ERROR_STOP=1 -f plan.sql",
        "\\set ON_ERROR_STOP 1",
        "SET standard_conforming_strings = on;",
    ]
    out += [set_variable(k, v) for k, v in variables.items()]
    out += [tracking.CREATE_SQL + ";", ""]
    for m in migrations:
        file = m.file(direction)
        body = file.text
        last = file.scan.statements[-1] if file.scan.statements else None
        if last is not None and not last.text.rstrip().endswith(";") and not file.scan.copy_stdin_lines:
            body = body.rstrip() + "\n;"  # psql sends an unterminated last statement at end of file
        head, tail = transaction_script(
            body, steps_for(m, direction, file.transactional), limits, transactional=file.transactional
        )
        mode = "" if file.transactional else " (no transaction)"
        out.append(f"-- {direction} {m.label}: {display_path(file)}{mode}")
        out.append(head.rstrip("\n"))
        if tail:
            out.append(tail.rstrip("\n"))
        out.append("")
    if not migrations:
        out.append("-- nothing to " + verb)
    return "\n".join(out) + "\n"
