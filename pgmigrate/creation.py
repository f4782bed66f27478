"""``create NAME``: the next version's up and down files, numbered like the folder's."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from .discovery import next_version, scan_folder
from .errors import FileError, UsageError

VALID_NAME = re.compile(r"^[A-Za-z0-9_-]+$")

UP_TEMPLATE = """-- {label} (up)
-- Write the change here. The runner wraps this file in a transaction together with its tracking
-- row; for statements that cannot run in a transaction (CREATE INDEX CONCURRENTLY), put
-- '-- migrate:no-transaction' on the first line.

"""
DOWN_TEMPLATE = """-- {label} (down)
-- Undo exactly what {label}.up.sql does, in reverse order.

"""


def create_migration(folder: Path, name: str, now: datetime) -> tuple[Path, Path]:
    if not name or not VALID_NAME.match(name):
        raise UsageError(
            f"invalid migration name {name!r}: use letters, digits, '_' and '-' (no spaces or slashes), "
            "e.g. add_users_table"
        )
    if not folder.is_dir():
        raise FileError(f"{folder}: migrations folder not found; create it, or point --dir / MIGRATIONS_DIR at it")
    found = scan_folder(folder)
    found.raise_problems()
    version, digits = next_version(found, now.strftime("%Y%m%d%H%M%S"))
    label = f"{version:0{digits}d}_{name}"
    up, down = folder / f"{label}.up.sql", folder / f"{label}.down.sql"
    for path in (up, down):
        if path.exists():
            raise FileError(f"{path} already exists; choose another name")
    up.write_text(UP_TEMPLATE.format(label=label), encoding="utf-8")
    down.write_text(DOWN_TEMPLATE.format(label=label), encoding="utf-8")
    return up, down
