"""A hand-rolled ``schema_version(version, applied_at, description)`` table: one row per applied
version (a number, or text of digits). Nothing to import: the files are named after its versions."""

from __future__ import annotations

from ._base import Entry, Format, History


class SchemaVersion(Format):
    name = title = "schema_version"
    tables = ("schema_version",)
    rank = 60  # after Flyway, whose tables were once called schema_version too

    def identify(self, table, columns, beside):
        return {"version", "applied_at"} <= set(columns)

    def read(self, cur, table, folder):
        from ._history import int_version, time_expr

        description = '"description"::text' if "description" in table.columns else "NULL::text"
        cur.execute(
            f'SELECT "version"::text, {time_expr("applied_at", table.columns["applied_at"])}, {description} '
            f"FROM {table.sql} ORDER BY 1"
        )
        entries = []
        for version, at, desc in cur.fetchall():
            v = int_version(version, self.title, table.display)
            if v:
                entries.append(Entry(v, applied_at=at, description=desc))
        return History(entries, summary=f"{len(entries)} version(s) applied")


FORMAT = SchemaVersion()
