"""Flyway: ``V<version>__<description>.sql`` (``U`` undo files become the downs), read recursively;
``flyway_schema_history`` (Flyway 4 and older: ``schema_version``).

Versions. Flyway versions are dotted (``1``, ``1.1``, ``13.1``, ``2.0.3``; ``_`` may stand for
``.``) and compared part by part as numbers, trailing ``.0`` parts ignored. Here a version is one
whole number, so both ``import`` and ``adopt`` apply one rule (``version_number``)::

    MAJOR[.MINOR[.PATCH]]  ->  MAJOR * 10000 + MINOR * 100 + PATCH

``V1`` is 10000 (file ``010000_name.up.sql``), ``V1.1`` 10100, ``V2.0.3`` 20003, ``V13.1`` 130100,
``V20240101120000`` 202401011200000000. Two parts of two digits each after the major one keep the
order Flyway has and keep the number readable (``MMmmpp``). What the rule cannot map is refused,
naming the version: more than three parts, a MINOR or PATCH above 99, a result beyond bigint, and
version 0.

Repeatable ``R__desc.sql`` files become this runner's repeatable migrations, ``R__desc.sql`` (the
description cleaned like the versioned ones'), applied after the versioned migrations whenever they
change, as Flyway does; ``adopt`` records one as applied when the folder's file is the one Flyway ran
last (Flyway's checksum, a CRC-32 of the file's lines, says so). Callbacks, baseline (``B``) and
Java migrations are refused. A file that holds a
statement PostgreSQL cannot run in a transaction, or whose ``.sql.conf`` says
``executeInTransaction=false``, gets ``-- migrate:no-transaction``, as Flyway would have run it.
"""

from __future__ import annotations

import re
import zlib

from .. import discovery
from ..errors import FileError, StateError
from ._base import Entry, Format, History, Pattern

_VERSION = Pattern(r"^\d+([._]\d+)*$")
_FILE = Pattern(r"^([VU])(\d+(?:[._]\d+)*)__(.+)\.sql$")
_REPEATABLE = Pattern(r"^R__(.+)\.sql$")
_OTHER = Pattern(r"^([VUB]\d*(?:[._]\d+)*__.*|(before|after)[A-Za-z]*(__.*)?\.sql)$")
RULE = "MAJOR[.MINOR[.PATCH]] becomes MAJOR*10000 + MINOR*100 + PATCH, with MINOR and PATCH 0-99"


def version_number(text: str) -> int:
    """The whole-number version of a Flyway version (see the module's text); ValueError saying why
    when the rule cannot map it."""
    text = text.strip()
    if not _VERSION.match(text):
        raise ValueError(f"'{text}' is not a Flyway version (numbers separated by '.' or '_')")
    parts = [int(p) for p in re.split(r"[._]", text)]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()  # Flyway: 1.0 is 1
    if len(parts) > 3:
        raise ValueError(f"Flyway version {text} has {len(parts)} parts; at most 3 map to a whole number ({RULE})")
    major, minor, patch = [*parts, 0, 0][:3]
    if minor > 99 or patch > 99:
        raise ValueError(f"Flyway version {text} has a part above 99 after the first; {RULE}")
    value = major * 10000 + minor * 100 + patch
    if value > discovery.MAX_VERSION:
        raise ValueError(f"Flyway version {text} gives {value}, larger than bigint allows ({RULE})")
    if value == 0:
        raise ValueError(f"Flyway version {text} is 0, which is reserved here (it means 'nothing applied')")
    return value


def _conf_transactional(path) -> bool:
    from ._convert import read_text

    conf = path.with_name(path.name + ".conf")
    if not conf.is_file():
        return True
    for line in read_text(conf).splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "executeInTransaction" and value.strip().lower() == "false":
            return False
    return True


def checksum(text: str) -> int:
    """Flyway's checksum of a file's text: the CRC-32 of its lines' UTF-8 bytes, line endings and a
    BOM left out, as a signed 32-bit number (what ``flyway_schema_history.checksum`` holds)."""
    value = zlib.crc32(re.sub(r"[\r\n]", "", text.removeprefix("\ufeff")).encode("utf-8"))
    return value - 2**32 if value >= 2**31 else value


class Flyway(Format):
    name = "flyway"
    title = "Flyway"
    tables = ("flyway_schema_history", "schema_version")
    rank = 20
    folder_pattern = "V1__name.sql, V1.1__name.sql, U1__name.sql, R__name.sql"

    def identify(self, table, columns, beside):
        return {"installed_rank", "version", "description", "type", "script", "success"} <= set(columns)

    def repeatable_checksum(self, text):
        return checksum(text)

    def read(self, cur, table, folder):
        from ._base import RepeatableEntry
        from ._convert import clean_name
        from ._history import time_expr

        cur.execute(
            'SELECT "version", "description", "type", "installed_by", '
            f'{time_expr("installed_on", table.columns.get("installed_on", "timestamp"))}, "execution_time", '
            f'"success", "checksum" FROM {table.sql} ORDER BY "installed_rank"'
        )
        state: dict[int, Entry] = {}
        upto = None
        odd, repeatable = [], {}
        for version, description, kind, by, on, ms, success, crc in cur.fetchall():
            kind = (kind or "").upper()
            if version is None:  # a repeatable migration: its last successful run counts
                if success and not kind.startswith("UNDO") and kind != "DELETE":
                    name = clean_name(description or "")
                    repeatable[name] = RepeatableEntry(name, crc, applied_at=on, execution_ms=ms, applied_by=by)
                continue
            if kind == "SCHEMA":
                continue  # the marker of schemas Flyway created
            try:
                v = version_number(version)
            except ValueError as exc:
                odd.append(str(exc))
                continue
            if kind.endswith("BASELINE"):
                upto = max(upto or 0, v)
            elif kind.startswith("UNDO") or kind == "DELETE":
                if success:
                    state.pop(v, None)
            else:
                note = "it failed part-way under Flyway (success = false)" if not success else ""
                state[v] = Entry(v, dirty=not success, applied_at=on, description=description, execution_ms=ms,
                                 applied_by=by, note=note)
        if odd:
            raise StateError(f"{table.display}: {odd[0]}" + (f" (and {len(odd) - 1} more)" if len(odd) > 1 else "")
                             + "; renumber those migrations in Flyway first; nothing was changed")
        summary = f"{len(state)} version(s) applied" + (f", baseline {upto}" if upto else "") + \
            (f", {len(repeatable)} repeatable migration(s)" if repeatable else "")
        return History(list(state.values()), upto=upto, summary=summary, repeatables=list(repeatable.values()))

    def convert(self, src, note):
        from ._base import Converted
        from ._convert import adapt_transactions, clean_name, down_file, read_text, up_file

        ups: dict[int, tuple[object, str]] = {}
        downs: dict[int, object] = {}
        repeatables: dict[str, object] = {}
        unsupported = []
        for path in sorted(p for p in src.rglob("*") if p.is_file()):
            m = _FILE.match(path.name)
            r = _REPEATABLE.match(path.name)
            if r:
                name = clean_name(r.group(1))
                if name in repeatables:
                    raise FileError(f"{repeatables[name]} and {path} are both repeatable migration {name}; rename one")
                repeatables[name] = path
                continue
            if not m:
                if path.suffix != ".conf" and _OTHER.match(path.name):
                    unsupported.append(path.name)
                continue
            kind, raw, name = m.groups()
            try:
                version = version_number(raw)
            except ValueError as exc:
                raise FileError(f"{path}: {exc}; renumber it (and its flyway_schema_history rows) first - "
                                "nothing was written") from None
            table = ups if kind == "V" else downs
            if version in table:
                other = table[version][0] if kind == "V" else table[version]
                raise FileError(f"{other} and {path} both have version {raw} ({version} here); renumber one")
            if kind == "V":
                ups[version] = (path, name)
            else:
                downs[version] = path
        if unsupported:
            raise FileError(
                f"{src}: not supported: {', '.join(unsupported)} (callbacks, baseline and Java migrations have no "
                "equivalent here); move them out of SRC and import again - nothing was written"
            )
        orphans = [str(downs[v]) for v in downs if v not in ups]
        if orphans:
            raise FileError(f"{orphans[0]}: undo file without its versioned migration; remove it or add the V file")
        out = []
        for version, (path, name) in sorted(ups.items()):
            up_text, up_tx = adapt_transactions(read_text(path))
            down = None
            if version in downs:
                down_text, down_tx = adapt_transactions(read_text(downs[version]))
                down = down_file(down_text, transaction=down_tx and _conf_transactional(downs[version]))
            out.append(Converted(version, clean_name(name), up_file(up_text, transaction=up_tx and
                                                                    _conf_transactional(path)), down, path.name))
        for name, path in sorted(repeatables.items()):
            text, transactional = adapt_transactions(read_text(path))
            out.append(Converted(0, name, up_file(text, transaction=transactional and _conf_transactional(path)), None,
                                 path.name, repeatable=True))
        return out

    def recognise(self, folder, names):
        return next((n for n in names if _FILE.match(n)), None)


FORMAT = Flyway()
