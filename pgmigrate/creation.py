"""``create NAME``: the next version's up and down files, numbered like the folder's.

Both files are written or neither: a name that cannot be a file name here (a character outside
letters, digits, ``_`` and ``-``, a newline, a length the file system refuses) is an error before
anything is written, and a write that fails takes the first file back.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path

from .discovery import next_version, scan_folder
from .errors import FileError, UsageError

VALID_NAME = re.compile(r"[A-Za-z0-9_-]+")  # used with fullmatch: no newline slips through '$'
DEFAULT_NAME_MAX = 255  # bytes in a file name, where the file system does not say

# The second line of the files 'create' writes, by which they are known (not another tool's files).
CREATED_MARKS = ("-- Write the change here.", "-- Undo exactly what ")
UP_TEMPLATE = """-- {label} (up)
-- Write the change here. The runner wraps this file in a transaction together with its tracking
-- row; for statements that cannot run in a transaction (CREATE INDEX CONCURRENTLY), put
-- '-- migrate:no-transaction' on the first line.

"""
DOWN_TEMPLATE = """-- {label} (down)
-- Undo exactly what {label}.up.sql does, in reverse order.

"""


def create_migration(folder: Path, name: str, now: datetime) -> tuple[Path, Path]:
    check_name(name)
    if not folder.is_dir():
        raise FileError(f"{folder}: migrations folder not found; create it, or point --dir / MIGRATIONS_DIR at it")
    found = scan_folder(folder)
    found.raise_problems()
    version, digits = next_version(found, now.strftime("%Y%m%d%H%M%S"))
    label = f"{version:0{digits}d}_{name}"
    check_length(folder, label, name)
    up, down = folder / f"{label}.up.sql", folder / f"{label}.down.sql"
    for path in (up, down):
        if path.exists():
            raise FileError(f"{path} already exists; choose another name")
    _write(up, UP_TEMPLATE.format(label=label))
    try:
        _write(down, DOWN_TEMPLATE.format(label=label))
    except FileError:
        up.unlink()
        raise
    return up, down


def check_name(name: str) -> None:
    if not VALID_NAME.fullmatch(name):
        raise UsageError(
            f"invalid migration name {name!r}: use letters, digits, '_' and '-' (no spaces, slashes or line breaks), "
            "e.g. add_users_table"
        )


def check_length(folder: Path, label: str, name: str) -> None:
    """The longer file name (``.down.sql``) must fit the file system's limit."""
    longest = f"{label}.down.sql"
    limit = name_max(folder)
    if len(longest.encode()) > limit:
        room = len(name) - (len(longest.encode()) - limit)
        raise UsageError(f"the migration name is {len(name)} characters long: the file name {longest[:24]}... would "
                         f"be {len(longest.encode())} bytes, more than the {limit} the file system allows; use a name "
                         f"of at most {max(room, 0)} characters")


def name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return DEFAULT_NAME_MAX


def _write(path: Path, text: str) -> None:
    """A new file (never an existing one overwritten); a FileError naming it if that fails, with
    nothing of it left."""
    try:
        fh = open(path, "x", encoding="utf-8")  # noqa: SIM115 - closed below, removed if the write fails
    except FileExistsError:
        raise FileError(f"{path} already exists; choose another name") from None
    except OSError as exc:
        raise FileError(f"{path}: cannot write the file ({exc.strerror}); nothing was written") from None
    try:
        with fh:
            fh.write(text)
    except OSError as exc:
        path.unlink()
        raise FileError(f"{path}: cannot write the file ({exc.strerror}); nothing was written") from None
