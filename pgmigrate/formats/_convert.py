"""Helpers the tool modules share to turn another tool's files into this runner's."""

from __future__ import annotations

import re
from itertools import pairwise

from .. import discovery, sqltext
from ..errors import FileError
from ._base import Converted

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

NO_TRANSACTION = "-- migrate:no-transaction"
EMPTY_UP = "-- (the original migration had no statements; this keeps its version)\nSELECT 1;\n"
NOOP_DOWN = "-- (the original down migration had no statements: rolling back changes nothing)\nSELECT 1;\n"

# Statements PostgreSQL refuses inside a transaction block.
_NON_TRANSACTIONAL = re.compile(
    r"^\s*(CREATE\s+(UNIQUE\s+)?INDEX\s+CONCURRENTLY|DROP\s+INDEX\s+CONCURRENTLY|REINDEX\b[^;]*\bCONCURRENTLY"
    r"|VACUUM|CREATE\s+DATABASE|DROP\s+DATABASE|ALTER\s+SYSTEM|CREATE\s+TABLESPACE|DROP\s+TABLESPACE"
    r"|ALTER\s+DATABASE\b[^;]*\bSET\s+TABLESPACE)\b",
    re.IGNORECASE,
)
_BEGIN = re.compile(r"^\s*(BEGIN|START\s+TRANSACTION)(\s+(WORK|TRANSACTION))?\s*;?\s*$", re.IGNORECASE)
_COMMIT = re.compile(r"^\s*(COMMIT|END)(\s+(WORK|TRANSACTION))?\s*;?\s*$", re.IGNORECASE)
# pg_dump (and 'supabase db pull') start with settings for the rest of the session, the search_path
# emptied among them. Run by psql, a file is its own session; here migrations share one, so in a
# file that runs in a transaction they are made transaction-local: only that migration sees them.
_SESSION_SEARCH_PATH = re.compile(
    r"^(\s*SELECT\s+pg_catalog\.set_config\('search_path',\s*'[^']*',\s*)false(\s*\)\s*;)", re.IGNORECASE | re.MULTILINE
)
_PG_DUMP_SET = re.compile(
    r"^SET(\s+(statement_timeout|lock_timeout|idle_in_transaction_session_timeout|transaction_timeout|"
    r"client_encoding|standard_conforming_strings|check_function_bodies|xmloption|client_min_messages|row_security|"
    r"default_tablespace|default_table_access_method|default_with_oids)\s*=)", re.IGNORECASE | re.MULTILINE
)


def _local_settings(text: str) -> str:
    return _PG_DUMP_SET.sub(r"SET LOCAL\1", _SESSION_SEARCH_PATH.sub(r"\1true\2", text))
_LEADING_VERSION = re.compile(r"^(\d+)_(.*)$", re.DOTALL | re.ASCII)  # 0-9 only


def read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FileError(f"{path}: cannot read the file ({exc.strerror})") from None
    try:
        return sqltext.strip_bom(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise FileError(f"{path}:{line}: the file is not valid UTF-8; save it as UTF-8 and import again") from None


def clean_name(name: str) -> str:
    """Letters, digits, ``_`` and ``-``; every other run of characters becomes one ``_``."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "migration"


def parse_version(digits: str, path: Path | str) -> int:
    version = int(digits)
    if version == 0:
        raise FileError(f"{path}: version 0 is reserved here (it means 'nothing applied'); renumber it first")
    if version > discovery.MAX_VERSION:
        raise FileError(f"{path}: version {digits} is larger than bigint allows; renumber it before importing")
    return version


def split_leading_version(name: str) -> tuple[str, str] | None:
    """``('20240101120000', 'init')`` for ``20240101120000_init``; None without leading digits and ``_``."""
    m = _LEADING_VERSION.match(name)
    return (m.group(1), m.group(2)) if m else None


def check_name_order(converted: list[Converted], tool: str) -> None:
    """Tools that order migrations by name (Prisma, Supabase) must give the same order as the
    versions here, or the history would be applied in another order."""
    by_name = sorted(converted, key=lambda c: c.source)
    for before, after in pairwise(by_name):
        if before.version == after.version:
            raise FileError(f"{before.source} and {after.source} both have version {before.version} here; "
                            "renumber one (and its row in the tool's table) - nothing was written")
        if before.version > after.version:
            raise FileError(
                f"{before.source} and {after.source}: {tool} applies them in name order, which is not the order "
                f"of their numbers ({before.version} then {after.version}); give the numbers the same width "
                "(rename both, and their rows in the tool's table) and import again - nothing was written"
            )


def body(text: str) -> str:
    """Text without leading and trailing blank lines, ending in one newline ('' when blank)."""
    lines = text.splitlines()
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines) + "\n" if lines else ""


def up_file(text: str, *, transaction: bool = True) -> str:
    text = body(text)
    if not sqltext.has_statements(text):
        text = (text + "\n" if text else "") + EMPTY_UP
    elif transaction:
        text = _local_settings(text)
    return (NO_TRANSACTION + "\n" if not transaction else "") + text


def down_file(text: str | None, *, transaction: bool = True) -> str | None:
    """The down file: None when the tool had none (``text`` None); a file without statements (a
    comment saying there is nothing to undo) becomes a no-op, as the tool ran it."""
    if text is None:
        return None
    text = body(text)
    if not sqltext.has_statements(text):
        return (text + "\n" if text else "") + NOOP_DOWN
    if transaction:
        text = _local_settings(text)
    return (NO_TRANSACTION + "\n" if not transaction else "") + text


def adapt_transactions(text: str) -> tuple[str, bool]:
    """For tools that send a file as it is (golang-migrate, Flyway, Prisma, Supabase):
    ``(text, transactional)``.

    A file wrapped in its own ``BEGIN;`` ... ``COMMIT;`` loses the wrapper; a file that otherwise
    controls transactions, or holds a statement PostgreSQL cannot run in a transaction block, is
    marked no-transaction."""
    scan = sqltext.scan_sql(text)
    statements = scan.statements
    control = scan.transaction_control
    if (len(control) == 2 and len(statements) > 2 and _BEGIN.match(statements[0].text)
            and _COMMIT.match(statements[-1].text)):
        first, last = statements[0], statements[-1]
        text = text[: first.start] + text[first.start + len(first.text):last.start] + \
            text[last.start + len(last.text):]
        return text, not any(_NON_TRANSACTIONAL.match(s.text) for s in statements[1:-1])
    if control or any(_NON_TRANSACTIONAL.match(s.text) for s in statements):
        return text, False
    return text, True


def wrapped_in_transaction(text: str) -> bool:
    """Whether the whole text is one ``BEGIN;`` ... ``COMMIT;`` block (as golang-migrate files often are)."""
    scan = sqltext.scan_sql(text)
    statements = scan.statements
    return (len(scan.transaction_control) == 2 and len(statements) >= 2 and bool(_BEGIN.match(statements[0].text))
            and bool(_COMMIT.match(statements[-1].text)))
