"""dbmate: ``VERSION_name.sql`` files with ``-- migrate:up`` and ``-- migrate:down`` blocks;
``schema_migrations(version varchar)``, one row per applied version.

Import splits each file at its markers; a block marked ``transaction:false`` becomes a file starting
with ``-- migrate:no-transaction``. A down block with no statements becomes a no-op down (dbmate
rolls it back without running anything); a file without a down block gives no down file.
"""

from __future__ import annotations

import re

from ..errors import FileError
from ._base import Entry, Format, History, Pattern, read_head

_FILE = Pattern(r"^(\d+)_?(.*)\.sql$")
_UP = Pattern(r"^--\s*migrate:up([ \t]+[^\n]*)?[ \t]*$", re.MULTILINE)
_DOWN = Pattern(r"^--\s*migrate:down([ \t]+[^\n]*)?[ \t]*$", re.MULTILINE)
TEXT_TYPES = ("character varying", "text", "character")


def _transaction(options: str | None) -> bool:
    pairs = dict(item.split(":", 1) for item in (options or "").split() if ":" in item)
    return pairs.get("transaction", "true").strip().lower() != "false"


def read_versions(cur, table, title: str) -> History:
    """dbmate's and Rails' table: one row per applied version, a string of digits."""
    from ._history import int_version

    cur.execute(f"SELECT version FROM {table.sql}")
    versions = sorted(int_version(r[0], title, table.display) for r in cur.fetchall())
    return History([Entry(v) for v in versions if v], summary=f"{len(versions)} version(s) applied")


class Dbmate(Format):
    name = title = "dbmate"
    tables = ("schema_migrations",)
    same_shape = "rails"
    rank = 40  # after Rails, whose table looks the same
    folder_pattern = "VERSION_name.sql with '-- migrate:up' / '-- migrate:down'"

    def identify(self, table, columns, beside):
        return set(columns) == {"version"} and columns["version"] in TEXT_TYPES

    def read(self, cur, table, folder):
        return read_versions(cur, table, self.title)

    def convert(self, src, note):
        from .. import sqltext
        from ._base import Converted
        from ._convert import clean_name, down_file, parse_version, read_text, up_file

        out = []
        for path in sorted(p for p in src.iterdir() if p.is_file()):
            m = _FILE.match(path.name)
            if not m:
                continue
            text = read_text(path)
            up = _UP.search(text)
            if not up:
                raise FileError(f"{path}: no '-- migrate:up' line; dbmate files have one before their up statements")
            down = _DOWN.search(text)
            if down and down.start() < up.start():
                raise FileError(f"{path}: '-- migrate:down' comes before '-- migrate:up'; put the up block first")
            if sqltext.has_statements(text[: up.start()]):
                raise FileError(f"{path}: statements before '-- migrate:up'; move them into the up block")
            up_text = text[: up.start()] + text[up.end(): down.start() if down else len(text)]  # comments kept
            down_text = text[down.end():] if down else None
            out.append(Converted(
                parse_version(m.group(1), path), clean_name(m.group(2)),
                up_file(up_text, transaction=_transaction(up.group(1))),
                down_file(down_text, transaction=_transaction(down.group(1) if down else None)),
                path.name,
            ))
        return out

    def recognise(self, folder, names):
        for name in names:
            if _FILE.match(name) and _UP.search(read_head(folder / name)):
                return name
        return None


FORMAT = Dbmate()
