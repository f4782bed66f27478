"""goose: ``VERSION_name.sql`` with ``-- +goose Up`` / ``-- +goose Down``; ``goose_db_version``,
one row per up or down.

Import drops the ``+goose`` lines (this runner's parser knows dollar quotes, so no statement markers
are needed; a ``StatementEnd`` block without its final ``;`` gets one) and turns
``-- +goose NO TRANSACTION`` into ``-- migrate:no-transaction`` in both files. A ``Down`` part with no
statements becomes a no-op down. Go migrations and ``ENVSUB`` are refused.
"""

from __future__ import annotations

import re

from ..errors import FileError
from ._base import Entry, Format, History, Pattern, read_head

_FILE = Pattern(r"^(\d+)_(.*)\.(sql|go)$")
_UP_MARK = Pattern(r"^--\s*\+goose\s+Up\b", re.MULTILINE | re.IGNORECASE)


def _sections(path, text: str) -> tuple[str, str | None, bool]:
    """``(up, down or None, transactional)`` of a goose SQL migration."""
    from .. import sqltext

    sections: dict[str, list[str]] = {"start": [], "up": [], "down": []}
    where = "start"
    transactional = True
    block_start: int | None = None
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        command = line.strip()[2:].strip() if line.startswith("--") else ""
        if not command.startswith("+goose"):
            sections[where].append(line)
            continue
        word = command.removeprefix("+goose").strip()
        key = " ".join(word.lower().split())
        if key == "up" and where == "start":
            where = "up"
        elif key == "down" and where == "up" and block_start is None:
            where = "down"
        elif key == "statementbegin" and where != "start" and block_start is None:
            block_start = len(sections[where])
        elif key == "statementend" and block_start is not None:
            _end_statement(sections[where], block_start)
            block_start = None
        elif key == "no transaction":
            transactional = False
        elif key.startswith("envsub"):
            if key != "envsub off":
                raise FileError(f"{path}:{number}: '-- +goose {word}' (environment variable substitution) has no "
                                "equivalent here; write the values in, or use psql variables (:'name' with --set)")
        else:
            raise FileError(f"{path}:{number}: unexpected '-- +goose {word}' here; fix the file so goose accepts it")
    if where == "start":
        raise FileError(f"{path}: no '-- +goose Up' line; goose SQL files start their up part with one")
    if block_start is not None:
        raise FileError(f"{path}: '-- +goose StatementBegin' without its '-- +goose StatementEnd'")
    if sqltext.has_statements("".join(sections["start"])):
        raise FileError(f"{path}: statements before '-- +goose Up'; move them into the up part")
    down = "".join(sections["down"]) if where == "down" else None
    return "".join(sections["start"] + sections["up"]), down, transactional


def _end_statement(lines: list[str], start: int) -> None:
    """A goose StatementBegin/End block is one statement even without a final ``;``: add it."""
    for i in range(len(lines) - 1, start - 1, -1):
        stripped = lines[i].rstrip()
        if stripped and not stripped.lstrip().startswith("--"):
            if not stripped.endswith(";"):
                lines[i] = stripped + ";" + lines[i][len(stripped):]
            return


class Goose(Format):
    name = title = "goose"
    tables = ("goose_db_version",)
    folder_pattern = "VERSION_name.sql with '-- +goose Up' / '-- +goose Down'"

    def identify(self, table, columns, beside):
        return {"version_id", "is_applied"} <= set(columns)

    def read(self, cur, table, folder):
        from ._history import time_expr

        types = table.columns
        order = '"id" DESC' if "id" in types else '"tstamp" DESC'
        stamp = time_expr("tstamp", types["tstamp"]) if "tstamp" in types else "NULL::timestamptz"
        cur.execute(
            f'SELECT DISTINCT ON ("version_id") "version_id", "is_applied", {stamp} FROM {table.sql} '
            f'ORDER BY "version_id", {order}'
        )
        entries = [Entry(int(v), applied_at=at) for v, applied, at in cur.fetchall() if applied and int(v) > 0]
        return History(entries, summary=f"{len(entries)} version(s) applied")

    def convert(self, src, note):
        from ._base import Converted
        from ._convert import clean_name, down_file, parse_version, read_text, up_file

        out = []
        go_files = []
        for path in sorted(p for p in src.iterdir() if p.is_file()):
            m = _FILE.match(path.name)
            if not m:
                continue
            if m.group(3) == "go":
                go_files.append(path.name)
                continue
            up, down, transactional = _sections(path, read_text(path))
            out.append(Converted(parse_version(m.group(1), path), clean_name(m.group(2)),
                                 up_file(up, transaction=transactional), down_file(down, transaction=transactional),
                                 path.name))
        if go_files:
            raise FileError(f"{src}: goose Go migrations cannot be imported ({', '.join(go_files)}); rewrite them as "
                            "SQL files first - nothing was written")
        return out

    def recognise(self, folder, names):
        for name in names:
            m = _FILE.match(name)
            if m and (m.group(3) == "go" or _UP_MARK.search(read_head(folder / name))):
                return name
        return None


FORMAT = Goose()
