"""Exact SQL previews: the script ``up --sql`` and ``down --sql`` print, from the same plan the
runner would run.

It holds what the runner would send, file contents and tracking statements included, one
``BEGIN``/``COMMIT`` per transactional migration (or one for the whole plan with
``--single-transaction``). ``scripts/migrate.py psql -X -v ON_ERROR_STOP=1 -f plan.sql`` applies it
on the database the runner uses, with the same result as the runner. A file that includes files
relative to its own folder (``\\ir``) is included by its path, as the runner does, instead of copied:
copied into the plan, its ``\\ir`` would resolve against the plan's folder.
"""

from __future__ import annotations

from datetime import UTC, datetime

from .apply import tracking_for
from .config import Limits
from .discovery import SqlFile, display_path
from .planning import Plan, PlannedRepeatable, escape_mark
from .psql import group_member, include, session_reset, set_variable, transaction_script, variable_cleanup
from .tracking import Table, render

RUN_IT = "scripts/migrate.py psql -X -v ON_ERROR_STOP=1 -f plan.sql"
RELATIVE_INCLUDES = ("\\ir", "\\include_relative")


def render_plan(plan: Plan, *, limits: Limits, variables: dict[str, str], target_description: str,
                direction: str, table: Table) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    verb = "apply" if direction == "up" else "roll back"
    repeatables = sum(1 for step in plan if isinstance(step, PlannedRepeatable))
    count = f"{len(plan) - repeatables} migration(s)" + (f" and {repeatables} repeatable migration(s)"
                                                          if repeatables else "")
    out = [
        f"-- pgmigrate plan: {verb} {count} on {target_description}, tracking table {table.qualified}",
        f"-- generated {stamp}; run it on that database with: {RUN_IT}",
        "-- (scripts/migrate.py psql is psql on the runner's configured database; plain psql needs its connection)",
        "\\set ON_ERROR_STOP 1",
        "SET standard_conforming_strings = on;",
    ]
    out += [set_variable(k, v) for k, v in variables.items()]
    if not table.default:
        out.append(table.schema_sql() + ";")
    out.append(table.create_sql() + ";")
    if any(isinstance(step, PlannedRepeatable) for step in plan) or plan.forget:
        out.append(table.create_repeatables_sql() + ";")
    out.append("")
    guarded = any(f.needs_psql for f in plan.files)  # a group with a psql-run file runs in psql, guarded
    if plan.single and plan.steps:
        out.append("-- --single-transaction: every migration below commits together, or none does")
        prelude = limits.set_local_sql()
        out.append("BEGIN;" + (f"\n{prelude};" if prelude else ""))
        if guarded:
            out.append("SELECT txid_current() AS pgmigrate_xid \\gset")
    for step in plan:
        file = step.file
        steps = step.tracking(table, True) if plan.single else tracking_for(step, table)
        mode = "" if file.transactional else " (no transaction)"
        what = "repeatable" if isinstance(step, PlannedRepeatable) else step.direction
        out.append(f"-- {what} {step.label}: {display_path(file)}{mode}")
        if plan.single:
            prelude = limits.set_local_sql()
            if guarded:
                body = group_member(_body(file), escape_mark(step, table))
            else:
                body = [_body(file).rstrip("\n"), "\\set ON_ERROR_STOP 1"]
            out += [*body, *session_reset(), *([prelude + ";"] if prelude else [])]
            out += [render(sql, params) + ";" for sql, params in steps]
            out += variable_cleanup(file, variables) if guarded else []
        else:
            head, tail = transaction_script(_body(file), steps, limits, transactional=file.transactional,
                                            guard=file.needs_psql, cleanup=variable_cleanup(file, variables))
            out.append(head.rstrip("\n"))
            if tail:
                out.append(tail.rstrip("\n"))
        out.append("")
    if plan.forget:
        out.append(f"-- forget {', '.join(f'R__{n}' for n in plan.forget)}: recorded, but the file is gone (what it "
                   "made stays)")
        forget = [render(table.repeatable_forget_sql, (name,)) + ";" for name in plan.forget]
        out += ["BEGIN;", *forget, "COMMIT;"] if len(forget) > 1 and not plan.single else forget
        out.append("")
    if plan.single and plan.steps:
        out += ["COMMIT;", ""]
    if not plan.steps and not plan.forget:
        out.append("-- nothing to " + verb)
    return "\n".join(out) + "\n"


def _body(file: SqlFile) -> str:
    if any(m.name in RELATIVE_INCLUDES for m in file.scan.meta_commands):
        return include(file, absolute=True)
    body = file.text
    last = file.scan.statements[-1] if file.scan.statements else None
    if last is not None and not last.text.rstrip().endswith(";") and not file.scan.copy_stdin_lines:
        body = body.rstrip() + "\n;"  # psql sends an unterminated last statement at end of file
    return body
