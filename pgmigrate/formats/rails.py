"""Rails (ActiveRecord): ``schema_migrations(version varchar)`` like dbmate's, told apart by
``ar_internal_metadata`` beside it. Migrations are Ruby, so there is nothing to import: the SQL of
each goes into ``VERSION_name.up.sql`` by hand."""

from __future__ import annotations

from ._base import Format
from .dbmate import TEXT_TYPES, read_versions


class Rails(Format):
    name = "rails"
    title = "Rails"
    tables = ("schema_migrations",)
    markers = ("ar_internal_metadata",)
    same_shape = "dbmate"
    rank = 30

    def identify(self, table, columns, beside):
        return (set(columns) == {"version"} and columns["version"] in TEXT_TYPES
                and "ar_internal_metadata" in beside)

    def read(self, cur, table, folder):
        return read_versions(cur, table, self.title)


FORMAT = Rails()
