"""``import``: turn another tool's migrations folder into ``NNNNNN_name.up.sql`` / ``.down.sql`` files.

Versions are kept, so a database ``adopt`` took over lines up with the imported files; they are
zero-padded to 6 digits unless wider (14-digit timestamps stay as they are). Names keep letters,
digits, ``_`` and ``-``; anything else becomes ``_``. Every source file is read and converted, and
every destination checked, before the first file is written: a problem writes nothing, and
existing files are never overwritten.

* dbmate ``VERSION_name.sql``: split at ``-- migrate:up`` / ``-- migrate:down``; a block marked
  ``transaction:false`` becomes a file starting with ``-- migrate:no-transaction``.
* goose ``VERSION_name.sql``: split at ``-- +goose Up`` / ``-- +goose Down``; the
  ``StatementBegin`` / ``StatementEnd`` lines go (this runner's parser knows dollar quotes);
  ``-- +goose NO TRANSACTION`` becomes ``-- migrate:no-transaction`` in both files. Go migrations and
  ``ENVSUB`` are refused.
* Flyway ``V1__name.sql`` (``U1__name.sql`` undo files become the downs): whole-number versions only
  (``V1``, ``V001``, ``V1.0``; ``V1.1`` is refused); repeatable ``R__`` files, callbacks and Java
  migrations are refused. ``executeInTransaction=false`` in a ``.sql.conf`` file, or a statement
  PostgreSQL cannot run in a transaction (``CREATE INDEX CONCURRENTLY``...), gives
  ``-- migrate:no-transaction``, as Flyway itself would have run it.
* golang-migrate ``N_name.up.sql`` / ``.down.sql``: copied; a file wrapped in its own
  ``BEGIN;`` ... ``COMMIT;`` loses the wrapper (the runner wraps each migration), other files that
  control transactions or hold statements PostgreSQL cannot run in a transaction get
  ``-- migrate:no-transaction``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import discovery, sqltext
from .errors import FileError, UsageError

NO_TRANSACTION = "-- migrate:no-transaction"
EMPTY_UP = "-- (the original migration had no statements; this keeps its version)\nSELECT 1;\n"

# Statements PostgreSQL refuses inside a transaction block.
_NON_TRANSACTIONAL = re.compile(
    r"^\s*(CREATE\s+(UNIQUE\s+)?INDEX\s+CONCURRENTLY|DROP\s+INDEX\s+CONCURRENTLY|REINDEX\b[^;]*\bCONCURRENTLY"
    r"|VACUUM|CREATE\s+DATABASE|DROP\s+DATABASE|ALTER\s+SYSTEM|CREATE\s+TABLESPACE|DROP\s+TABLESPACE"
    r"|ALTER\s+DATABASE\b[^;]*\bSET\s+TABLESPACE)\b",
    re.IGNORECASE,
)
_BEGIN = re.compile(r"^\s*(BEGIN|START\s+TRANSACTION)(\s+(WORK|TRANSACTION))?\s*;?\s*$", re.IGNORECASE)
_COMMIT = re.compile(r"^\s*(COMMIT|END)(\s+(WORK|TRANSACTION))?\s*;?\s*$", re.IGNORECASE)


@dataclass
class Converted:
    """One migration in this runner's format."""

    version: int
    name: str
    up: str
    down: str | None
    source: str  # the file it came from, for messages

    @property
    def label(self) -> str:
        return f"{self.version:06d}_{self.name}"


def import_folder(tool: str, src: Path, dest: Path) -> list[Path]:
    """Convert ``src`` (a ``tool`` migrations folder) into files in ``dest``; return the files written."""
    if tool not in CONVERTERS:
        raise UsageError(f"cannot import from '{tool}'; choose one of: {', '.join(CONVERTERS)}")
    if not src.is_dir():
        raise FileError(f"{src}: folder not found; give the {tool} migrations folder as SRC")
    converted = CONVERTERS[tool](src)
    if not converted:
        raise FileError(f"{src}: no {tool} migrations found ({PATTERNS[tool]})")
    seen: dict[int, Converted] = {}
    for c in converted:
        if c.version in seen:
            raise FileError(f"{seen[c.version].source} and {c.source} both have version {c.version}; renumber one")
        seen[c.version] = c
    outputs: list[tuple[Path, str]] = []
    for c in sorted(converted, key=lambda c: c.version):
        outputs.append((dest / f"{c.label}.up.sql", c.up))
        if c.down is not None:
            outputs.append((dest / f"{c.label}.down.sql", c.down))
    _check_destination(dest, outputs, seen)
    dest.mkdir(parents=True, exist_ok=True)
    for path, text in outputs:
        with path.open("x", encoding="utf-8", newline="") as f:  # "x": never overwrite
            f.write(text)
    return [path for path, _ in outputs]


def _check_destination(dest: Path, outputs: list[tuple[Path, str]], versions: dict[int, Converted]) -> None:
    if dest.exists() and not dest.is_dir():
        raise FileError(f"{dest}: not a folder; point --dir / MIGRATIONS_DIR at the migrations folder")
    existing = [path for path, _ in outputs if path.exists()]
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise FileError(f"{existing[0]} already exists{more}; import never overwrites - nothing was written")
    if dest.is_dir():
        for entry in sorted(dest.iterdir()):
            try:
                parsed = discovery.parse_name(entry.name)
            except FileError:
                continue
            if parsed and parsed[0] in versions:
                raise FileError(
                    f"{entry} already has version {parsed[0]}, which {versions[parsed[0]].source} would add again; "
                    "nothing was written"
                )


# --- shared helpers ---


def read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FileError(f"{path}: cannot read the file ({exc.strerror})") from None
    try:
        return sqltext.strip_bom(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise FileError(f"{path}:{line}: the file is not valid UTF-8; save it as UTF-8 and import again") from None


def clean_name(name: str) -> str:
    """Letters, digits, ``_`` and ``-``; every other run of characters becomes one ``_``."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "migration"


def parse_version(digits: str, path: Path) -> int:
    version = int(digits)
    if version == 0:
        raise FileError(f"{path}: version 0 is reserved here (it means 'nothing applied'); renumber it first")
    if version > discovery.MAX_VERSION:
        raise FileError(f"{path}: version {digits} is larger than bigint allows; renumber it before importing")
    return version


def body(text: str) -> str:
    """Text without leading and trailing blank lines, ending in one newline ('' when blank)."""
    lines = text.splitlines()
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines) + "\n" if lines else ""


def up_file(text: str, *, transaction: bool = True) -> str:
    text = body(text)
    if not sqltext.has_statements(text):
        text = (text + "\n" if text else "") + EMPTY_UP
    return (NO_TRANSACTION + "\n" if not transaction else "") + text


def down_file(text: str, *, transaction: bool = True) -> str | None:
    text = body(text)
    if not sqltext.has_statements(text):
        return None
    return (NO_TRANSACTION + "\n" if not transaction else "") + text


def adapt_transactions(text: str) -> tuple[str, bool]:
    """For formats that run a file as it is (golang-migrate, Flyway): ``(text, transactional)``.

    A file wrapped in its own ``BEGIN;`` ... ``COMMIT;`` loses the wrapper; a file that otherwise
    controls transactions, or holds a statement PostgreSQL cannot run in a transaction block, is
    marked no-transaction."""
    scan = sqltext.scan_sql(text)
    statements = scan.statements
    control = scan.transaction_control
    if (len(control) == 2 and len(statements) > 2 and _BEGIN.match(statements[0].text)
            and _COMMIT.match(statements[-1].text)):
        first, last = statements[0], statements[-1]
        text = text[: first.start] + text[first.start + len(first.text):last.start] + \
            text[last.start + len(last.text):]
        return text, not any(_NON_TRANSACTIONAL.match(s.text) for s in statements[1:-1])
    if control or any(_NON_TRANSACTIONAL.match(s.text) for s in statements):
        return text, False
    return text, True


# --- dbmate ---

_DBMATE_FILE = re.compile(r"^(\d+)_?(.*)\.sql$")
_DBMATE_UP = re.compile(r"^--\s*migrate:up([ \t]+[^\n]*)?[ \t]*$", re.MULTILINE)
_DBMATE_DOWN = re.compile(r"^--\s*migrate:down([ \t]+[^\n]*)?[ \t]*$", re.MULTILINE)


def _dbmate_transaction(options: str | None) -> bool:
    pairs = dict(item.split(":", 1) for item in (options or "").split() if ":" in item)
    return pairs.get("transaction", "true").strip().lower() != "false"


def convert_dbmate(src: Path) -> list[Converted]:
    out = []
    for path in sorted(p for p in src.iterdir() if p.is_file()):
        m = _DBMATE_FILE.match(path.name)
        if not m:
            continue
        text = read_text(path)
        up = _DBMATE_UP.search(text)
        if not up:
            raise FileError(f"{path}: no '-- migrate:up' line; dbmate files have one before their up statements")
        down = _DBMATE_DOWN.search(text)
        if down and down.start() < up.start():
            raise FileError(f"{path}: '-- migrate:down' comes before '-- migrate:up'; put the up block first")
        if sqltext.has_statements(text[: up.start()]):
            raise FileError(f"{path}: statements before '-- migrate:up'; move them into the up block")
        up_text = text[: up.start()] + text[up.end(): down.start() if down else len(text)]  # comments kept
        down_text = text[down.end():] if down else ""
        out.append(Converted(
            parse_version(m.group(1), path), clean_name(m.group(2)),
            up_file(up_text, transaction=_dbmate_transaction(up.group(1))),
            down_file(down_text, transaction=_dbmate_transaction(down.group(1) if down else None)),
            path.name,
        ))
    return out


# --- goose ---

_GOOSE_FILE = re.compile(r"^(\d+)_(.*)\.(sql|go)$")


def _goose_sections(path: Path, text: str) -> tuple[str, str, bool]:
    """``(up, down, transactional)`` of a goose SQL migration."""
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
    return "".join(sections["start"] + sections["up"]), "".join(sections["down"]), transactional


def _end_statement(lines: list[str], start: int) -> None:
    """A goose StatementBegin/End block is one statement even without a final ``;``: add it."""
    for i in range(len(lines) - 1, start - 1, -1):
        stripped = lines[i].rstrip()
        if stripped and not stripped.lstrip().startswith("--"):
            if not stripped.endswith(";"):
                lines[i] = stripped + ";" + lines[i][len(stripped):]
            return


def convert_goose(src: Path) -> list[Converted]:
    out = []
    go_files = []
    for path in sorted(p for p in src.iterdir() if p.is_file()):
        m = _GOOSE_FILE.match(path.name)
        if not m:
            continue
        if m.group(3) == "go":
            go_files.append(path.name)
            continue
        up, down, transactional = _goose_sections(path, read_text(path))
        out.append(Converted(parse_version(m.group(1), path), clean_name(m.group(2)),
                             up_file(up, transaction=transactional), down_file(down, transaction=transactional),
                             path.name))
    if go_files:
        raise FileError(f"{src}: goose Go migrations cannot be imported ({', '.join(go_files)}); rewrite them as "
                        "SQL files first - nothing was written")
    return out


# --- Flyway ---

_FLYWAY_FILE = re.compile(r"^([VU])(\d+(?:[._]\d+)*)__(.+)\.sql$")
_FLYWAY_OTHER = re.compile(r"^([VUBR]\d*(?:[._]\d+)*__.*|(before|after)[A-Za-z]*(__.*)?\.sql)$")


def _flyway_conf_transactional(path: Path) -> bool:
    conf = path.with_name(path.name + ".conf")
    if not conf.is_file():
        return True
    for line in read_text(conf).splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "executeInTransaction" and value.strip().lower() == "false":
            return False
    return True


def convert_flyway(src: Path) -> list[Converted]:
    from .adopt import flyway_version

    ups: dict[int, tuple[Path, str]] = {}
    downs: dict[int, Path] = {}
    unsupported = []
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        m = _FLYWAY_FILE.match(path.name)
        if not m:
            if path.suffix != ".conf" and _FLYWAY_OTHER.match(path.name):
                unsupported.append(path.name)
            continue
        kind, raw, name = m.groups()
        version = flyway_version(raw)
        if version is None:
            raise FileError(
                f"{path}: Flyway version {raw.replace('_', '.')} has no whole-number equivalent (versions here are "
                "whole numbers); renumber it (and its flyway_schema_history rows) first - nothing was written"
            )
        if version == 0:
            raise FileError(f"{path}: version 0 is reserved here (it means 'nothing applied'); renumber it first")
        table = ups if kind == "V" else downs
        if version in table:
            other = table[version][0] if kind == "V" else table[version]
            raise FileError(f"{other} and {path} both have version {version}; renumber one")
        if kind == "V":
            ups[version] = (path, name)
        else:
            downs[version] = path
    if unsupported:
        raise FileError(
            f"{src}: not supported: {', '.join(unsupported)} (repeatable R__ migrations, callbacks, baseline and "
            "Java migrations have no equivalent here); move them out of SRC, e.g. into new versioned migrations, "
            "and import again - nothing was written"
        )
    orphans = [str(downs[v]) for v in downs if v not in ups]
    if orphans:
        raise FileError(f"{orphans[0]}: undo file without its versioned migration; remove it or add the V file")
    out = []
    for version, (path, name) in sorted(ups.items()):
        up_text, up_tx = adapt_transactions(read_text(path))
        up_tx = up_tx and _flyway_conf_transactional(path)
        down = None
        if version in downs:
            down_text, down_tx = adapt_transactions(read_text(downs[version]))
            down = down_file(down_text, transaction=down_tx and _flyway_conf_transactional(downs[version]))
        out.append(Converted(version, clean_name(name), up_file(up_text, transaction=up_tx), down, path.name))
    return out


# --- golang-migrate ---

_GOLANG_FILE = re.compile(r"^(\d+)_(.*)\.(up|down)\.sql$")


def convert_golang_migrate(src: Path) -> list[Converted]:
    found: dict[int, dict[str, Path]] = {}
    for path in sorted(p for p in src.iterdir() if p.is_file()):
        m = _GOLANG_FILE.match(path.name)
        if not m:
            continue
        version = parse_version(m.group(1), path)
        pair = found.setdefault(version, {})
        if m.group(3) in pair:
            raise FileError(f"{pair[m.group(3)]} and {path} both have version {version} ({m.group(3)}); renumber one")
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
        name = _GOLANG_FILE.match(pair["up"].name).group(2)
        out.append(Converted(version, clean_name(name), up_file(up_text, transaction=up_tx), down, pair["up"].name))
    return out


CONVERTERS: dict[str, Callable[[Path], list[Converted]]] = {
    "dbmate": convert_dbmate,
    "goose": convert_goose,
    "flyway": convert_flyway,
    "golang-migrate": convert_golang_migrate,
}
PATTERNS = {
    "dbmate": "VERSION_name.sql with '-- migrate:up' / '-- migrate:down'",
    "goose": "VERSION_name.sql with '-- +goose Up' / '-- +goose Down'",
    "flyway": "V1__name.sql, U1__name.sql",
    "golang-migrate": "VERSION_name.up.sql / VERSION_name.down.sql",
}
