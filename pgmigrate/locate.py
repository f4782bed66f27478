"""Where in a file an error is: the line of every error, not only of syntax errors.

The server gives a position (in the text sent) for syntax errors and some others; for the rest,
the runner knows which statement failed (in-process: how many statements completed before the
error; psql: the line it had reached), and the error's CONTEXT names a line inside a DO block or a
PL/pgSQL function (``PL/pgSQL function inline_code_block line 4 at RAISE``), which maps to the file
when that block or function is written in it.
"""

from __future__ import annotations

import re

from . import sqltext
from .sqltext import Statement

_PLPGSQL_LINE = re.compile(r"PL/pgSQL function (?P<name>[^\s(]+)(\([^)]*\))? line (?P<line>\d+)")
_CREATE_ROUTINE = re.compile(
    r"^\s*CREATE\s+(OR\s+REPLACE\s+)?(FUNCTION|PROCEDURE)\s+(?P<name>(\"[^\"]+\"|[\w$]+)(\s*\.\s*(\"[^\"]+\"|[\w$]+))?)",
    re.IGNORECASE,
)
_DO = re.compile(r"^\s*DO\b", re.IGNORECASE)
_BODY_START = re.compile(r"\$([^\W\d]\w*)?\$|'")


def statements(scan: sqltext.Scan) -> list[Statement]:
    """The statements as the server counts them (a lone ``;`` is none)."""
    return [s for s in scan.statements if s.text.strip() != ";"]


def statement_at_line(scan: sqltext.Scan, text: str, line: int) -> Statement | None:
    """The statement whose text spans ``line`` (psql reports the line where it sent a statement)."""
    for s in scan.statements:
        end = s.line + sqltext.line_of(s.text, len(s.text)) - 1
        if s.line <= line <= end:
            return s
    return None


def context_line(text: str, scan: sqltext.Scan, statement: Statement | None, context: str | None) -> int | None:
    """The file line of the innermost DO block or function line in ``context`` that the file itself
    writes: the failing DO statement, or a function the file creates (the last such definition)."""
    if not context:
        return None
    for m in _PLPGSQL_LINE.finditer(context):
        name, offset = m.group("name"), int(m.group("line"))
        if name == "inline_code_block":
            owner = statement if statement is not None and _DO.match(statement.text) else None
        else:
            owner = _routine(scan, name.rsplit(".", 1)[-1].strip('"'))
        if owner is not None:
            start = _body_start(owner)
            if start is not None:
                return sqltext.line_of(text, owner.start + start) + offset - 1
    return None


def _routine(scan: sqltext.Scan, name: str) -> Statement | None:
    found = None
    for s in scan.statements:
        m = _CREATE_ROUTINE.match(s.text)
        if m and m.group("name").rsplit(".", 1)[-1].strip().strip('"').lower() == name.lower():
            found = s
    return found


def _body_start(statement: Statement) -> int | None:
    """Offset, in the statement, of the first character of its body (after ``$$``, ``$tag$`` or ``'``)."""
    head = re.search(r"\bAS\b|\bDO\b", statement.text, re.IGNORECASE)
    m = _BODY_START.search(statement.text, head.end() if head else 0)
    return m.end() if m else None
