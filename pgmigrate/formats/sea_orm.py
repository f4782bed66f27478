"""sea-orm-cli: ``seaql_migrations(version varchar, applied_at bigint)``. Migrations are Rust, so
there is nothing to import.

``mYYYYMMDD_HHMMSS_name`` maps to version ``YYYYMMDDHHMMSS`` (the digit groups after the ``m``,
joined); when the folder has no such version but exactly one migration called ``name``, it maps to
that one.
"""

from __future__ import annotations

from .. import discovery
from ..errors import StateError
from ._base import Entry, Format, History, Pattern

_NAME = Pattern(r"^m?((?:\d+_?)*\d)(?:_(.*))?$")


def version_of(name: str, folder) -> tuple[int | None, str]:
    """``(version, how)`` for a sea-orm migration name; version None when it cannot be mapped."""
    m = _NAME.match(name)
    digits = m.group(1).replace("_", "") if m else ""
    rest = (m.group(2) or "") if m else name.removeprefix("m").lstrip("_")
    files = folder.by_version()
    if digits and int(digits) in files:
        return int(digits), ""
    same_name = [mig for mig in folder.migrations if rest and mig.name == rest]
    if len(same_name) == 1:
        return same_name[0].version, f"sea-orm '{name}', matched by name"
    if digits and 0 < int(digits) <= discovery.MAX_VERSION:
        return int(digits), f"sea-orm '{name}'"
    return None, ""


class SeaOrm(Format):
    name = "sea-orm"
    title = "sea-orm-cli"
    tables = ("seaql_migrations",)

    def identify(self, table, columns, beside):
        return {"version", "applied_at"} <= set(columns)

    def read(self, cur, table, folder):
        from ._history import time_expr

        cur.execute(f'SELECT "version", {time_expr("applied_at", table.columns["applied_at"])} '
                    f"FROM {table.sql} ORDER BY 1")
        entries: dict[int, Entry] = {}
        unmapped = []
        for name, at in cur.fetchall():
            version, how = version_of(name, folder)
            if version is None:
                unmapped.append(name)
                continue
            if version in entries:
                raise StateError(
                    f"sea-orm migrations '{entries[version].description}' and '{name}' both map to version "
                    f"{version}; give their SQL files distinct versions (mYYYYMMDD_HHMMSS_name -> "
                    "YYYYMMDDHHMMSS_name.up.sql)"
                )
            entries[version] = Entry(version, applied_at=at, description=name, note=how)
        if unmapped:
            raise StateError(
                f"sea-orm migration(s) {', '.join(unmapped)} have no version digits and no migration of the same "
                "name in the folder; name their SQL files NNNNNN_<name>.up.sql and run adopt again; nothing was "
                "changed"
            )
        return History(list(entries.values()), summary=f"{len(entries)} version(s) applied")


FORMAT = SeaOrm()
