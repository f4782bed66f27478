"""golang-migrate: ``N_name.up.sql`` / ``N_name.down.sql``, each file sent as it is;
``schema_migrations(version bigint, dirty boolean)`` holding one row, the current version.

Import copies the files; a file wrapped in its own ``BEGIN;`` ... ``COMMIT;`` loses the wrapper (the
runner wraps each migration), other files that control transactions or hold statements PostgreSQL
cannot run in a transaction get ``-- migrate:no-transaction``; a down file with only comments
becomes a no-op down, as golang-migrate ran it. The file names are this runner's too, so a
golang-migrate folder given to the runner is only noticed through such files (``explain``).
"""

from __future__ import annotations

from ..errors import FileError, StateError
from ._base import Entry, Format, History, Pattern

_FILE = Pattern(r"^(\d+)_(.*)\.(up|down)\.sql$")


class GolangMigrate(Format):
    name = title = "golang-migrate"
    tables = ("schema_migrations",)
    folder_pattern = "VERSION_name.up.sql / VERSION_name.down.sql"

    def identify(self, table, columns, beside):
        return set(columns) == {"version", "dirty"}

    def read(self, cur, table, folder):
        cur.execute(f"SELECT version, dirty FROM {table.sql}")
        rows = cur.fetchall()
        if not rows:
            return History(summary="no version recorded (nothing applied)")
        if len(rows) > 1:
            raise StateError(
                f"{table.display} has {len(rows)} rows but golang-migrate keeps exactly one (the current "
                "version); set it right with golang-migrate's 'force V' first; nothing was changed"
            )
        version, dirty = int(rows[0][0]), bool(rows[0][1])
        if version < 0:
            raise StateError(
                f"golang-migrate recorded version {version} (dirty: {str(dirty).lower()}): a first migration failed "
                "part-way; repair the schema and set a real version with golang-migrate's 'force V' first"
            )
        if version == 0:
            return History(summary="version 0 (nothing applied)")
        note = "it stopped part-way under golang-migrate" if dirty else ""
        return History([Entry(version, dirty=dirty, note=note)], upto=version,
                       summary=f"version {version}" + (" (dirty)" if dirty else ""))

    def convert(self, src, note):
        from ._base import Converted
        from ._convert import adapt_transactions, clean_name, down_file, parse_version, read_text, up_file

        found: dict[int, dict[str, object]] = {}
        for path in sorted(p for p in src.iterdir() if p.is_file()):
            m = _FILE.match(path.name)
            if not m:
                continue
            version = parse_version(m.group(1), path)
            pair = found.setdefault(version, {})
            if m.group(3) in pair:
                raise FileError(f"{pair[m.group(3)]} and {path} both have version {version} ({m.group(3)}); "
                                "renumber one")
            pair[m.group(3)] = path
        out = []
        for version, pair in sorted(found.items()):
            if "up" not in pair:
                raise FileError(f"{pair['down']}: down file without its up file; add it or remove this one")
            up_text, up_tx = adapt_transactions(read_text(pair["up"]))
            down = None
            if "down" in pair:
                down_text, down_tx = adapt_transactions(read_text(pair["down"]))
                down = down_file(down_text, transaction=down_tx)
            name = _FILE.match(pair["up"].name).group(2)
            out.append(Converted(version, clean_name(name), up_file(up_text, transaction=up_tx), down,
                                 pair["up"].name))
        return out

    def explain(self, file):
        if not _FILE.match(file.path.name):
            return None
        from ..creation import CREATED_MARKS
        from ._convert import wrapped_in_transaction

        if file.scan.has_content and not wrapped_in_transaction(file.text):
            return None
        if not file.scan.has_content and any(mark in file.text for mark in CREATED_MARKS):  # 'create' wrote it
            return None
        what = "comment-only files" if not file.scan.has_content else "files wrapped in BEGIN/COMMIT"
        folder = file.path.parent
        return (f"golang-migrate folders have {what}: if {folder} is one, convert it all at once with "
                f"'scripts/migrate.py import --from golang-migrate {folder} --dir NEW_FOLDER'")


FORMAT = GolangMigrate()
