"""Watching what each statement of a migration does to the tables that existed before it.

After every statement, on the connection that runs it and inside its transaction, one catalog
query reads for each existing table that the transaction has locked: the locks its backend holds
(``pg_locks``), its ``relfilenode`` (a new one: the table was rewritten), its indexes (a new one,
built in a transaction: built without CONCURRENTLY; an index with a new relfilenode: rebuilt), its
constraints (a new CHECK or FOREIGN KEY with ``convalidated``: validated at once, a full scan) and
which columns are NOT NULL (a column that became NOT NULL was scanned, unless PostgreSQL said that
existing constraints prove it: the session asks for DEBUG1 messages to hear that).

Tables created earlier in the same migration are new and have no hazards. Nothing is guessed from
the SQL text, except that TRUNCATE's new relfilenode is not called a rewrite.
"""

from __future__ import annotations

import re

from ..tracking import Table
from . import rules
from .snapshot import tracking_oids, user_schema

PRE_SQL = f"""
SELECT c.oid::int8, n.nspname || '.' || c.relname, c.relname, c.relkind
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm') AND {user_schema("n.nspname")}
  AND c.oid NOT IN (__TRACKING__)"""

# For the existing tables locked so far in this transaction (or for all of them: all = true).
STATE_SQL = """
WITH locks AS (
    SELECT l.relation AS rel, l.mode FROM pg_catalog.pg_locks l
    WHERE l.locktype = 'relation' AND l.granted AND l.pid = pg_catalog.pg_backend_pid()
      AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())
      AND l.relation = ANY(%(pre)s::pg_catalog.oid[])
), rels AS (
    SELECT r AS rel FROM pg_catalog.unnest(%(pre)s::pg_catalog.oid[]) AS r WHERE %(all)s
    UNION SELECT rel FROM locks
)
SELECT 'lock', rel::int8, mode, NULL FROM locks
UNION ALL
SELECT 'file', c.oid::int8, c.relfilenode::text, NULL FROM pg_catalog.pg_class c WHERE c.oid IN (SELECT rel FROM rels)
UNION ALL
SELECT 'index', i.indrelid::int8, i.indexrelid::text, ic.relfilenode::text || ' ' || ic.relname
FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
WHERE i.indrelid IN (SELECT rel FROM rels)
UNION ALL
SELECT 'constraint', k.conrelid::int8, k.oid::text, k.contype::text || k.convalidated::int::text || k.conname
FROM pg_catalog.pg_constraint k WHERE k.conrelid IN (SELECT rel FROM rels)
UNION ALL
SELECT 'column', a.attrelid::int8, a.attnum::text, a.attnotnull::int::text || a.attname
FROM pg_catalog.pg_attribute a WHERE a.attrelid IN (SELECT rel FROM rels) AND a.attnum > 0 AND NOT a.attisdropped"""

PROOF = re.compile(r'^existing constraints on column "(.+)" are sufficient to prove that it does not contain nulls')
_TRUNCATE = re.compile(r"^\s*TRUNCATE\b", re.IGNORECASE)


class TableState:
    """One existing table as the catalog shows it to the migration's transaction."""

    __slots__ = ("columns", "constraints", "filenode", "indexes", "locks")

    def __init__(self) -> None:
        self.locks: set[str] = set()
        self.filenode: str | None = None  # None: dropped
        self.indexes: dict[str, tuple[str, str]] = {}  # oid -> (relfilenode, name)
        self.constraints: dict[str, tuple[str, bool, str]] = {}  # oid -> (contype, validated, name)
        self.columns: dict[str, tuple[bool, str]] = {}  # attnum -> (not null, name)


class Hazard:
    """A hazard seen at ``line``; access-exclusive ones learn later how long their lock was held."""

    __slots__ = ("dropped", "held_for", "line", "message", "rule", "table")

    def __init__(self, rule: str, line: int, table: str, message: str = "", *, dropped: bool = False) -> None:
        self.rule, self.line, self.table, self.message = rule, line, table, message
        self.dropped = dropped
        self.held_for = 0

    def severity(self) -> str:
        if self.rule == rules.ACCESS_EXCLUSIVE_LOCK:
            return rules.WARNING if self.held_for else rules.INFO
        return rules.WARNING

    def text(self) -> str:
        if self.rule == rules.ACCESS_EXCLUSIVE_LOCK:
            return rules.access_exclusive_message(self.table, self.dropped, self.held_for)
        return self.message


class Observer:
    """The hazards of one migration, observed on ``conn``: ``begin()``, then ``statement(...)`` after
    each statement and ``end_transaction()`` after each commit, then ``finish()``."""

    def __init__(self, conn: object, table: Table) -> None:
        self.conn = conn
        self.pre_sql = PRE_SQL.replace("__TRACKING__", tracking_oids(table))
        self.pre: dict[int, tuple[str, str, str]] = {}  # oid -> (schema.table, table, relkind)
        self.state: dict[int, TableState] = {}
        self.hazards: list[Hazard] = []
        self.held: list[Hazard] = []  # access-exclusive locks of the open transaction

    def begin(self) -> None:
        """Note the tables that exist now: the migration's hazards are about them."""
        self.pre = {oid: (name, table, kind) for oid, name, table, kind in self.conn.execute(self.pre_sql).fetchall()}
        self.state = self._read(every=True)
        self.hazards, self.held = [], []

    def statement(self, line: int, text: str, proofs: set[str] | None, *, in_transaction: bool,
                  indexes: bool | None = None) -> None:
        """Compare the tables with how they were before the statement (or file) at ``line``.

        ``in_transaction``: it ran in a transaction still open, whose locks are visible (otherwise every
        existing table is compared); ``proofs``: the 'table.column' names PostgreSQL proved NOT NULL
        without a scan (None: not known, so no NOT NULL findings); ``indexes``: whether a new index
        cannot have been built CONCURRENTLY (default: ``in_transaction``)."""
        for held in self.held:
            held.held_for += 1
        if not self.pre:
            return
        now = self._read(every=not in_transaction)
        truncate = _TRUNCATE.match(text) is not None
        for oid, after in now.items():
            before = self.state.get(oid)
            if before is not None:
                self._compare(oid, before, after, line, truncate, proofs,
                              in_transaction if indexes is None else indexes)
            self.state[oid] = after

    def end_transaction(self) -> None:
        """The transaction committed: its locks are gone."""
        self.held = []
        for table in self.state.values():
            table.locks = set()

    def finish(self) -> list[Hazard]:
        """The hazards, without an access-exclusive note where another hazard of the same statement and
        table already names the lock."""
        covered = {(h.line, h.table) for h in self.hazards if h.rule != rules.ACCESS_EXCLUSIVE_LOCK}
        return [h for h in self.hazards
                if not (h.rule == rules.ACCESS_EXCLUSIVE_LOCK and not h.held_for and (h.line, h.table) in covered)]

    # --- reading and comparing ---

    def _read(self, *, every: bool) -> dict[int, TableState]:
        rows = self.conn.execute(STATE_SQL, {"pre": list(self.pre), "all": every}).fetchall()
        tables: dict[int, TableState] = {}
        for what, oid, key, value in rows:
            table = tables.get(oid) or tables.setdefault(oid, TableState())
            if what == "lock":
                table.locks.add(key)
            elif what == "file":
                table.filenode = key
            elif what == "index":
                filenode, _, name = value.partition(" ")
                table.indexes[key] = (filenode, name)
            elif what == "constraint":
                table.constraints[key] = (value[0], value[1] == "1", value[2:])
            else:
                table.columns[key] = (value[0] == "1", value[1:])
        return tables

    def _compare(self, oid: int, before: TableState, after: TableState, line: int, truncate: bool,
                 proofs: set[str] | None, index_in_transaction: bool) -> None:
        name, table, kind = self.pre[oid]
        mode = rules.strongest(after.locks)
        if rules.ACCESS_EXCLUSIVE in after.locks - before.locks:
            hazard = Hazard(rules.ACCESS_EXCLUSIVE_LOCK, line, name, dropped=after.filenode is None)
            self.hazards.append(hazard)
            self.held.append(hazard)
        if before.filenode is None or after.filenode is None:
            return
        rewritten = before.filenode != after.filenode and not truncate
        if rewritten:
            self._add(rules.TABLE_REWRITE, line, name, rules.rewrite_message(name, kind, mode))
        if index_in_transaction and not truncate:
            self._indexes(before, after, line, name, mode, rewritten)
        for constraint, (contype, validated, constraint_name) in after.constraints.items():
            if constraint not in before.constraints and contype in "cf" and validated:
                self._add(rules.CONSTRAINT_VALIDATION, line, name,
                          rules.constraint_message(contype, constraint_name, name, mode))
        if proofs is None:
            return
        for attnum, (not_null, column) in after.columns.items():
            old = before.columns.get(attnum)
            if old is not None and not old[0] and not_null and f"{table}.{column}" not in proofs:
                self._add(rules.CONSTRAINT_VALIDATION, line, name, rules.not_null_message(column, name, mode))

    def _indexes(self, before: TableState, after: TableState, line: int, table: str, mode: str | None,
                 rewritten: bool) -> None:
        """New indexes; and, unless the table was rewritten (which rebuilds them all), rebuilt ones: a new
        relfilenode, or a new index in place of one of the same name (as a column's new collation does)."""
        names = {name for _, name in before.indexes.values()}
        gone = {name for oid, (_, name) in before.indexes.items() if oid not in after.indexes}
        for index, (filenode, name) in after.indexes.items():
            old = before.indexes.get(index)
            if old is None and name not in names:
                self._add(rules.INDEX_WITHOUT_CONCURRENTLY, line, table, rules.index_message(name, table, mode))
            elif not rewritten and ((old is None and name in gone) or (old is not None and old[0] != filenode)):
                self._add(rules.INDEX_WITHOUT_CONCURRENTLY, line, table,
                          rules.index_message(name, table, mode, rebuilt=True))

    def _add(self, rule: str, line: int, table: str, message: str) -> None:
        self.hazards.append(Hazard(rule, line, table, message))
