"""Finding migration and seed files and reading them.

``NNNN_name.up.sql`` with an optional ``NNNN_name.down.sql``. The version is the integer value of
the leading digits (any width); names use letters, digits, ``_`` and ``-``. ``R__name.sql`` is a
repeatable migration: applied after the versioned ones whenever it changed. Everything that is
wrong with a folder is collected, so ``verify`` can list it all and other commands refuse before
touching the database.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from functools import cached_property
from pathlib import Path

from . import sqltext
from .errors import FileError, Remedy

MAX_VERSION = 2**63 - 1
LARGE_FILE = 16 * 1024 * 1024  # bytes
MIGRATION_NAME = re.compile(r"^(\d+)_([A-Za-z0-9_-]+)\.(up|down)\.sql$", re.ASCII)  # \d: 0-9 only
LOOKS_LIKE_MIGRATION = re.compile(r"^\d+_.*\.(up|down)\.sql$", re.DOTALL)  # any script's digits, to name them
REPEATABLE_NAME = re.compile(r"^R__([A-Za-z0-9_-]+)\.sql$", re.ASCII)
REPEATABLE_PREFIX = "R__"
DIRECTIVE = re.compile(r"^--\s*migrate:(\S*)\s*(.*)$")
KNOWN_DIRECTIVES = {"no-transaction"}


class SqlFile:
    """One SQL file: read lazily, decoded as UTF-8 (a BOM is allowed), scanned once."""

    def __init__(self, path: Path | str) -> None:
        self.location = os.fspath(path)  # a string: a Path per file costs more than the rest of 'status'

    @cached_property
    def path(self) -> Path:
        return Path(self.location)

    def __repr__(self) -> str:
        return f"SqlFile({self.location!r})"

    @cached_property
    def raw(self) -> str:
        try:
            with open(self.location, "rb") as fh:
                data = fh.read()
        except PermissionError:
            raise FileError(f"{self.path}: cannot read the file (permission denied); fix its permissions") from None
        except OSError as exc:
            raise FileError(f"{self.path}: cannot read the file ({exc.strerror})") from None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise FileError(
                f"{self.path}:{line}: the file is not valid UTF-8 (byte 0x{data[exc.start]:02x}); "
                "save it as UTF-8"
            ) from None

    @cached_property
    def text(self) -> str:
        """The content without a BOM: what is sent to the server."""
        return sqltext.strip_bom(self.raw)

    @cached_property
    def large(self) -> bool:
        """Large files (data loads) are never read whole: they stream through psql."""
        try:
            return os.stat(self.location).st_size > LARGE_FILE
        except OSError:
            return False

    def lines(self) -> Iterator[str]:
        """The file's lines, streamed, BOM removed, line endings made LF; decoding errors name the line."""
        number = 0
        try:
            with open(self.location, encoding="utf-8-sig", newline=None) as fh:
                for number, line in enumerate(fh, start=1):  # noqa: B007 - used in the error
                    yield line
        except UnicodeDecodeError as exc:
            byte = exc.object[exc.start]
            raise FileError(f"{self.path}:{number + 1}: the file is not valid UTF-8 (byte 0x{byte:02x}); "
                            "save it as UTF-8") from None
        except PermissionError:
            raise FileError(f"{self.path}: cannot read the file (permission denied); fix its permissions") from None
        except OSError as exc:
            raise FileError(f"{self.path}: cannot read the file ({exc.strerror})") from None

    @cached_property
    def checksum(self) -> str:
        if self.large:
            return sqltext.checksum_lines(self.lines())
        return sqltext.checksum(self.raw)

    @cached_property
    def head(self) -> str:
        """The start of the file: where directives are."""
        if not self.large:
            return self.text
        return "".join(line for _, line in zip(range(200), self.lines(), strict=False))

    @cached_property
    def scan(self) -> sqltext.Scan:
        return sqltext.scan_sql(self.text)

    @cached_property
    def directives(self) -> dict[str, str]:
        """``-- migrate:NAME`` lines among the file's leading comment lines."""
        found: dict[str, str] = {}
        for number, line in enumerate(self.head.splitlines(), start=1):
            stripped = line.strip()
            if not stripped:
                continue
            if not stripped.startswith("--"):
                break
            m = DIRECTIVE.match(stripped)
            if not m:
                continue
            if m.group(1) not in KNOWN_DIRECTIVES:
                known = ", ".join(f"-- migrate:{d}" for d in sorted(KNOWN_DIRECTIVES))
                raise FileError(
                    f"{self.path}:{number}: unknown directive '-- migrate:{m.group(1)}'; known: {known}"
                )
            found[m.group(1)] = m.group(2).strip()
        return found

    @property
    def transactional(self) -> bool:
        return "no-transaction" not in self.directives

    @property
    def needs_psql(self) -> bool:
        return self.large or self.scan.needs_psql

    def check_runnable(self, *, no_transaction: bool = True) -> None:
        """Refuse files that would run wrongly: empty, ending the runner's transaction or escaping it,
        or (unless ``no_transaction`` is False: ``check`` observes those itself) holding statements a
        transaction refuses. Nothing has run when this raises."""
        self.directives  # noqa: B018 - raises on an unknown directive
        if self.large:
            for _ in self.lines():  # checks the encoding without holding the file
                pass
            return
        nul = self.text.find("\x00")
        if nul >= 0:
            raise FileError(f"{self.path}:{sqltext.line_of(self.text, nul)}: the file contains a NUL character "
                            "(\\0), which PostgreSQL does not accept; remove it")
        if not self.scan.has_content:
            raise FileError(
                f"{self.path}: the file has no SQL statements; write the migration, or put "
                "'SELECT 1;' in it to record a deliberate no-op" + self._foreign_hint()
            )
        for meta in self.scan.meta_commands:
            problem = _ESCAPES.get(meta.name)
            if problem is None and meta.args[:1] == ["ON_ERROR_STOP"] and (
                    meta.name == "\\unset" or (meta.name == "\\set" and not psql_true(meta.args[1:]))):
                problem = _ERROR_STOP
            if problem:
                raise FileError(f"{self.path}:{meta.line}: {meta.name} {problem}")
        if self.transactional and self.scan.transaction_control:
            line, keyword = self.scan.transaction_control[0]
            raise FileError(f"{self.path}:{line}: {keyword} would end the transaction the runner wraps the "
                            "migration in (and its tracking row); remove it" + self._foreign_hint(),
                            remedy=Remedy("no-transaction"))
        if no_transaction and self.transactional and self.scan.no_transaction:
            line, what = self.scan.no_transaction[0]
            raise FileError(f"{self.path}:{line}: {what} cannot run inside a transaction, and this file runs "
                            "in one", remedy=Remedy("no-transaction"))


    def _foreign_hint(self) -> str:
        """For a refused file that looks like another tool's (a golang-migrate one wrapped in
        BEGIN/COMMIT, say): how to convert the whole folder."""
        from . import formats

        hint = formats.explain_file(self)
        return f"; {hint}" if hint else ""


# psql meta-commands a migration may not use: each would escape the transaction that records it.
_ESCAPES = {
    "\\c": "would connect elsewhere: the rest of the file would run outside the migration's transaction, "
            "perhaps in another database; connect to that database in a migration folder of its own",
    "\\connect": "would connect elsewhere: the rest of the file would run outside the migration's transaction, "
                  "perhaps in another database; connect to that database in a migration folder of its own",
    "\\q": "would end psql part-way through the file; remove it",
    "\\quit": "would end psql part-way through the file; remove it",
}
def psql_true(args: list[str]) -> bool:
    """Whether psql reads these \\set values as true (``\\set ON_ERROR_STOP on`` keeps what the runner set)."""
    value = "".join(args).strip("'").lower()
    if value == "1":
        return True
    return bool(value) and value != "o" and any(word.startswith(value) for word in ("true", "yes", "on"))


_ERROR_STOP = ("ON_ERROR_STOP would let psql go on after an error, and a failed migration could be recorded as "
               "applied; remove the line (the runner stops at the first error)")


class Migration:
    """One version: its up file and, when there is one, its down file."""

    def __init__(self, version: int, name: str, up: SqlFile | None = None, down: SqlFile | None = None,
                 digits: int = 6) -> None:
        self.version = version
        self.name = name
        self.up = up
        self.down = down
        self.digits = digits  # as written in the file name

    def __repr__(self) -> str:
        return f"Migration({self.label!r})"

    def file(self, direction: str) -> SqlFile | None:
        """The file that runs for ``direction`` ('up' or 'down')."""
        return self.up if direction == "up" else self.down

    @property
    def label(self) -> str:
        """``000042_add_users``: the version as written in the file name, and the name."""
        return f"{self.version:0{self.digits}d}_{self.name}"


class Repeatable:
    """A repeatable migration, ``R__name.sql``: run after the versioned migrations whenever its
    checksum differs from the one recorded. It has no version and no down file."""

    def __init__(self, name: str, file: SqlFile) -> None:
        self.name = name
        self.file = file

    def __repr__(self) -> str:
        return f"Repeatable({self.label!r})"

    @property
    def label(self) -> str:
        return f"{REPEATABLE_PREFIX}{self.name}"


class Folder:
    """The migrations found in a folder, in version order, its repeatable migrations in name order,
    and what is wrong with it."""

    def __init__(self, path: Path, migrations: list[Migration] | None = None) -> None:
        self.path = path
        self.migrations = migrations or []
        self.repeatables: list[Repeatable] = []
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.foreign = False  # another tool's folder: none of it can be read as migrations

    def by_version(self) -> dict[int, Migration]:
        return {m.version: m for m in self.migrations}

    def raise_problems(self) -> None:
        if self.problems:
            more = f" (and {len(self.problems) - 1} more problems; run 'verify')" if len(self.problems) > 1 else ""
            raise FileError(self.problems[0] + more, details=self.problems[1:])


def parse_name(filename: str) -> tuple[int, str, str] | None:
    """``(version, name, direction)`` for a migration file name, or None if it is not one.

    Raises FileError for a name that looks like a migration but is not valid."""
    m = MIGRATION_NAME.fullmatch(filename)  # not .match: '$' also matches before a trailing newline
    if not m:
        if LOOKS_LIKE_MIGRATION.match(filename):
            shown = filename if filename.isprintable() else repr(filename)  # a line break stays on the line
            if not filename.split("_", 1)[0].isascii():
                raise FileError(f"{shown}: invalid migration file name; the version must be written with the "
                                "digits 0-9; rename the file")
            raise FileError(
                f"{shown}: invalid migration file name; names may use letters, digits, '_' and '-' "
                "(NNNN_name.up.sql); rename the file"
            )
        return None
    version = int(m.group(1))
    if version > MAX_VERSION:
        raise FileError(f"{filename}: version {m.group(1)} is larger than bigint allows ({MAX_VERSION}); renumber it")
    if version == 0:
        raise FileError(f"{filename}: version 0 is reserved (it means 'nothing applied'); start at 1")
    return version, m.group(2), m.group(3)


def scan_folder(path: Path) -> Folder:
    """Read the folder listing (not the files) and pair up/down files by version."""
    folder = Folder(path)
    if not path.is_dir():
        raise FileError(
            f"{path}: migrations folder not found; create it, or point --dir / MIGRATIONS_DIR at the right one"
        )
    seen: dict[tuple[int, str], str] = {}
    found: dict[int, Migration] = {}
    ignored: list[str] = []
    base = os.fspath(path)
    for filename in sorted(os.listdir(base)):  # names, not Path objects: a tenth of the time for 1000 files
        entry = os.path.join(base, filename)
        if filename.startswith(REPEATABLE_PREFIX) and filename.endswith(".sql"):
            _add_repeatable(folder, filename, entry)
            continue
        try:
            parsed = parse_name(filename)
        except FileError as exc:
            folder.problems.append(str(exc))
            continue
        if parsed is None:
            ignored.append(filename)
            continue
        version, name, direction = parsed
        other = seen.get((version, direction))
        if other is not None:
            folder.problems.append(
                f"duplicate version {version} ({direction}): {other} and {filename}; renumber one of them"
            )
            continue
        seen[(version, direction)] = filename
        migration = found.setdefault(version, Migration(version, name, digits=len(filename.split("_", 1)[0])))
        if migration.name != name:
            folder.problems.append(
                f"version {version} has files with different names: {migration.name} and {filename}; make them match"
            )
            continue
        setattr(migration, direction, SqlFile(entry))
    for _version, migration in sorted(found.items()):
        if migration.up is None:
            folder.problems.append(
                f"{migration.down.path}: down file without its up file {migration.label}.up.sql; "
                "add it or remove this one"
            )
            continue
        folder.migrations.append(migration)
    if ignored:
        _check_ignored(folder, ignored)
    return folder


def _add_repeatable(folder: Folder, filename: str, entry: str) -> None:
    m = REPEATABLE_NAME.fullmatch(filename)
    if m is None:
        folder.problems.append(f"{filename}: invalid repeatable migration file name; names may use letters, digits, "
                               "'_' and '-' (R__name.sql); rename the file")
        return
    folder.repeatables.append(Repeatable(m.group(1), SqlFile(entry)))  # listed in name order


def _check_ignored(folder: Folder, ignored: list[str]) -> None:
    """What is not a migration file: another tool's folder is an error naming the import that
    converts it; stray SQL gets a warning."""
    from . import formats

    base = os.fspath(folder.path)
    foreign = formats.recognise_folder(folder.path, ignored)
    if foreign:
        folder.foreign = True
        fmt, example = foreign
        mine = f"; if {example} is one of yours, rename it NNNN_name.up.sql" if folder.migrations else ""
        folder.problems.insert(
            0,
            f"{os.path.join(base, example)}: {base} looks like a {fmt.title} migrations folder ({fmt.folder_pattern}), "
            f"which this runner does not read (NNNN_name.up.sql / .down.sql); convert it with 'scripts/migrate.py "
            f"import --from {fmt.name} {base} --dir NEW_FOLDER' and use NEW_FOLDER as --dir / MIGRATIONS_DIR{mine}"
        )
        return
    for filename in ignored:
        entry = os.path.join(base, filename)
        if filename.endswith(".sql"):
            folder.warnings.append(f"{entry}: ignored, not a migration file name (NNNN_name.up.sql or .down.sql)")


def load_folder(path: Path, warn: Callable[[str], None], *, strict: bool = True) -> Folder:
    """Scan a folder, pass its warnings to ``warn``, and (strict) refuse when it has problems."""
    folder = scan_folder(path)
    for warning in folder.warnings:
        warn(warning)
    if strict:
        folder.raise_problems()
    return folder


def seed_files(path: Path) -> list[SqlFile]:
    if not path.is_dir():
        raise FileError(f"{path}: seeds folder not found; create it, or point SEEDS_DIR at the right one")
    return [SqlFile(p) for p in sorted(path.glob("*.sql")) if p.is_file()]


def next_version(folder: Folder, now_stamp: str) -> tuple[int, int]:
    """``(version, digits)`` for a new migration: timestamp style if the folder uses it."""
    if not folder.migrations:
        return 1, 6
    last = folder.migrations[-1]
    if last.version >= MAX_VERSION:
        raise FileError(f"{last.up.path}: version {last.version} is the largest bigint allows, so no version is left "
                        "after it for a new migration; nothing was written")
    if last.digits == 14 and str(last.version).startswith(("19", "20")):
        return max(int(now_stamp), last.version + 1), 14
    return last.version + 1, max(last.digits, len(str(last.version + 1)))


def display_path(file: SqlFile) -> str:
    try:
        return str(file.path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(file.path)
