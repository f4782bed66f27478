"""Prisma Migrate: ``prisma/migrations/<timestamp>_<name>/migration.sql`` (``migration_lock.toml``
beside them is ignored); ``_prisma_migrations``, one row per attempt, in the schema of the URL Prisma
was given (``public`` by default).

The version is the number the folder name starts with (Prisma's ``YYYYMMDDHHMMSS``), so
``20240101120000_init`` becomes ``20240101120000_init.up.sql``. Prisma applies folders in name order:
import refuses a folder whose numbers give another order. The ``0_init`` folder of Prisma's
baselining guide becomes version 1 (0 means "nothing applied" here); ``adopt`` maps its row the
same way. A ``down.sql`` beside ``migration.sql`` (Prisma's way of keeping a down migration) becomes
the down file. Prisma sends the file as it is, so a ``BEGIN;``/``COMMIT;`` wrapper goes and
statements that cannot run in a transaction give ``-- migrate:no-transaction``.

A row counts as applied when ``finished_at`` is set and ``rolled_back_at`` is not; a migration
with no such row but an attempt that started and never finished (``migrate deploy`` failed) is
recorded dirty; attempts marked rolled back (``migrate resolve --rolled-back``) are ignored.
"""

from __future__ import annotations

from ..errors import FileError, StateError
from ._base import Entry, Format, History

LOCK_FILE = "migration_lock.toml"


def version_of(folder_name: str) -> tuple[int, str] | None:
    """``(version, name)`` of a Prisma migration folder name; None without a leading number."""
    from ._convert import split_leading_version

    parts = split_leading_version(folder_name)
    if parts is None:
        return None
    return max(int(parts[0]), 1), parts[1]


class Prisma(Format):
    name = "prisma"
    title = "Prisma"
    tables = ("_prisma_migrations",)
    folder_pattern = "<timestamp>_<name>/migration.sql"

    def identify(self, table, columns, beside):
        return {"migration_name", "finished_at", "rolled_back_at", "started_at"} <= set(columns)

    def read(self, cur, table, folder):
        cur.execute(
            "SELECT migration_name, started_at, finished_at, rolled_back_at, "
            "(extract(epoch FROM finished_at - started_at) * 1000)::integer "
            f"FROM {table.sql} ORDER BY started_at, migration_name"
        )
        applied: dict[int, Entry] = {}
        failed: dict[int, Entry] = {}
        names: dict[int, str] = {}
        for name, _started, finished, rolled_back, ms in cur.fetchall():
            parsed = version_of(name)
            if parsed is None:
                raise StateError(f"{table.display}: Prisma migration '{name}' does not start with a number, so it "
                                 "has no version here; nothing was changed")
            version, _ = parsed
            if names.setdefault(version, name) != name:
                raise StateError(f"{table.display}: Prisma migrations '{names[version]}' and '{name}' both map to "
                                 f"version {version}; nothing was changed")
            if rolled_back is not None:
                continue
            if finished is not None:
                applied[version] = Entry(version, applied_at=finished, execution_ms=ms, description=name)
            else:
                failed[version] = Entry(version, dirty=True, description=name,
                                        note="it failed under Prisma (started, never finished; see its logs column)")
        entries = list(applied.values()) + [e for v, e in failed.items() if v not in applied]
        dirty = len(entries) - len(applied)
        summary = f"{len(applied)} migration(s) applied" + (f", {dirty} failed" if dirty else "")
        return History(entries, summary=summary)

    def convert(self, src, note):
        from ._base import Converted
        from ._convert import adapt_transactions, check_name_order, clean_name, down_file, read_text, up_file

        out = []
        for path in sorted(p for p in src.iterdir() if p.is_dir()):
            parsed = version_of(path.name)
            script = path / "migration.sql"
            if parsed is None or not script.is_file():
                what = "does not start with a number" if parsed is None else "has no migration.sql"
                note(f"{path}: ignored, {what} (Prisma migrations are <timestamp>_<name>/migration.sql)")
                continue
            version, name = parsed
            up_text, up_tx = adapt_transactions(read_text(script))
            down = None
            if (path / "down.sql").is_file():
                down_text, down_tx = adapt_transactions(read_text(path / "down.sql"))
                down = down_file(down_text, transaction=down_tx)
            out.append(Converted(version, clean_name(name), up_file(up_text, transaction=up_tx), down, path.name))
        for path in sorted(p for p in src.iterdir() if p.is_file() and p.suffix == ".sql"):
            raise FileError(f"{path}: a .sql file directly in the Prisma migrations folder; Prisma reads only "
                            "<timestamp>_<name>/migration.sql, so move it into such a folder or out of SRC")
        check_name_order(out, self.title)
        return out

    def recognise(self, folder, names):
        for name in names:
            if name == LOCK_FILE or (version_of(name) and (folder / name / "migration.sql").is_file()):
                return name
        return None


FORMAT = Prisma()
