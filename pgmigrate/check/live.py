"""``--against URL``: what ``check`` reads from a live database, all of it at the start, read-only.

The connection is opened with ``default_transaction_read_only=on`` and everything is read in one
short transaction, then the connection is closed, so the check holds no snapshot on the live
server while it runs: the tracking rows (which migrations are applied, the version), the schema
(for drift) and, per table, ``reltuples`` and ``pg_total_relation_size`` (for the hazards of the
pending migrations). Nothing is written.
"""

from __future__ import annotations

from collections import namedtuple

from .. import tracking
from ..config import Target
from . import snapshot
from .shadow import connect

SIZES_SQL = f"""
SELECT n.nspname || '.' || c.relname,
       CASE WHEN c.relkind = 'p' THEN (SELECT sum(greatest(pc.reltuples, 0))::int8 FROM pg_partition_tree(c.oid) t
                                       JOIN pg_class pc ON pc.oid = t.relid WHERE t.isleaf)
            WHEN c.reltuples < 0 THEN NULL ELSE c.reltuples::int8 END,
       CASE WHEN c.relkind = 'p' THEN (SELECT sum(pg_total_relation_size(t.relid))::int8
                                       FROM pg_partition_tree(c.oid) t WHERE t.isleaf)
            ELSE pg_total_relation_size(c.oid) END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm') AND NOT c.relispartition AND {snapshot.user_schema("n.nspname")}"""

Size = namedtuple("Size", "rows bytes")  # rows None: never analyzed


class Live:
    """What was read from the live database."""

    def __init__(self, target: Target, rows: dict[int, tracking.Row], schema: snapshot.Snapshot,
                 sizes: dict[str, Size], server_version: int,
                 repeated: dict[str, tracking.RepeatableRow] | None = None) -> None:
        self.target = target
        self.rows = rows
        self.repeated = repeated or {}  # the repeatable migrations it ran
        self.schema = schema
        self.sizes = sizes
        self.server_version = server_version

    @property
    def version(self) -> int:
        return max(self.rows, default=0)

    def applied(self, version: int) -> bool:
        return version in self.rows

    @property
    def name(self) -> str:
        return self.target.params().get("dbname") or "live"


def read_live(target: Target, table: tracking.Table) -> Live:
    """Read everything ``check`` needs from the live database, read-only (see the module docstring);
    ``table``: our tracking table there."""
    with connect(target, read_only=True) as conn, conn.transaction(force_rollback=True):
        rows, repeated = tracking.read_recorded(conn.cursor(), table) or ({}, None)
        schema = snapshot.read(conn, table)
        sizes = {name: Size(count, size) for name, count, size in conn.execute(SIZES_SQL).fetchall()}
        version = conn.info.server_version
    return Live(target, rows, schema, sizes, version, repeated)
