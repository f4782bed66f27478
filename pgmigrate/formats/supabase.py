"""Supabase CLI: ``supabase/migrations/<timestamp>_<name>.sql``;
``supabase_migrations.schema_migrations(version text, statements text[], name text)``, one row per
applied migration.

The version is the timestamp (``20240101120000_init.sql`` becomes ``20240101120000_init.up.sql``);
the CLI applies files in name order, and import refuses numbers that give another order. The files
are sent as they are, so a ``BEGIN;``/``COMMIT;`` wrapper goes and statements that cannot run in a
transaction give ``-- migrate:no-transaction``. The session settings ``supabase db pull`` (pg_dump)
writes at the top (``set_config('search_path', '', false)``, ``SET check_function_bodies``...) are made
transaction-local, so they cannot leak into the migrations after it. Supabase keeps no down migrations.
"""

from __future__ import annotations

import re

from ._base import Entry, Format, History, Pattern, read_head

_FILE = Pattern(r"^(\d+)_(.*)\.sql$")
_OTHER_TOOLS = Pattern(r"^--\s*(migrate:up|\+goose\s+Up)\b", re.MULTILINE | re.IGNORECASE)


class Supabase(Format):
    name = "supabase"
    title = "Supabase"
    tables = ("schema_migrations",)
    schema = "supabase_migrations"
    rank = 45
    folder_pattern = "<timestamp>_<name>.sql"

    def identify(self, table, columns, beside):
        return {"version", "statements", "name"} <= set(columns)

    def read(self, cur, table, folder):
        from ._history import int_version

        cur.execute(f'SELECT "version", "name" FROM {table.sql}')
        entries = [Entry(int_version(v, self.title, table.display), description=name) for v, name in cur.fetchall()]
        return History(entries, summary=f"{len(entries)} migration(s) applied")

    def convert(self, src, note):
        from ._base import Converted
        from ._convert import adapt_transactions, check_name_order, clean_name, parse_version, read_text, up_file

        out = []
        for path in sorted(p for p in src.iterdir() if p.is_file() and p.suffix == ".sql"):
            m = _FILE.match(path.name)
            if not m:
                note(f"{path}: ignored, as the Supabase CLI ignores it (migrations are <timestamp>_<name>.sql)")
                continue
            text, transactional = adapt_transactions(read_text(path))
            out.append(Converted(parse_version(m.group(1), path), clean_name(m.group(2)),
                                 up_file(text, transaction=transactional), None, path.name))
        check_name_order(out, self.title)
        return out

    def recognise(self, folder, names):
        for name in names:
            if _FILE.match(name) and not _OTHER_TOOLS.search(read_head(folder / name)):
                return name
        return None


FORMAT = Supabase()
