"""Helpers the tool modules share to read another tool's tracking table."""

from __future__ import annotations

from .. import discovery
from ..errors import StateError

_NUMERIC = ("bigint", "integer", "numeric", "double precision", "real", "smallint")


def time_expr(column: str, type_name: str) -> str:
    """SQL turning a recorded time (timestamp, timestamptz, unix seconds, text) into timestamptz."""
    if type_name in _NUMERIC:
        return f'to_timestamp("{column}")'
    return f'"{column}"::timestamptz'


def int_version(text: object, title: str, table: str) -> int:
    """A recorded version that must be a whole number (dbmate, Rails, Supabase, schema_version)."""
    value = str(text).strip()
    if not (value.isascii() and value.isdigit()) or int(value) > discovery.MAX_VERSION:  # not other scripts' digits
        raise StateError(
            f"{title} recorded version '{text}' in {table}, which is not a whole number this runner can use as a "
            "version; nothing was changed"
        )
    return int(value)
