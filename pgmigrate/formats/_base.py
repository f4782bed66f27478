"""What a tool module provides (``Format``), and the data it hands to ``import`` and ``adopt``.

No dataclasses or typing here: the registry is loaded by every command that reads the tracking
table, so these modules must import fast.
"""

from __future__ import annotations

TYPE_CHECKING = False  # annotations are never evaluated
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from typing import Any

    from ..discovery import Folder, SqlFile

PUBLIC = "public"


class Format:
    """One migration tool: its folder conventions (``convert``, ``recognise``) and its tracking
    table (``identify``, ``read``). A tool module defines one subclass and ``FORMAT = Subclass()``."""

    name = ""  # what --from takes
    title = ""  # how messages name the tool
    tables: tuple[str, ...] = ()  # its tracking table's name(s)
    schema = PUBLIC  # where the tool keeps that table unless told otherwise
    markers: tuple[str, ...] = ()  # tables beside it that tell this tool from one with the same table
    same_shape = ""  # a tool whose table looks exactly like this one's (--from may pick either)
    rank = 50  # identification order: tools told apart by more specific signs go first
    folder_pattern = ""  # its migration files, for messages; empty when there is nothing to import
    has_history = True  # whether adopt can read its table

    def identify(self, table: str, columns: dict[str, str], beside: set[str]) -> bool:
        """Whether ``table`` (column -> type), found next to the tables ``beside``, is this tool's."""
        return False

    def read(self, cur: Any, table: Found, folder: Folder) -> History:
        """The versions the tool recorded in ``table``."""
        raise NotImplementedError

    def convert(self, src: Path, note: Callable[[str], None]) -> list[Converted]:
        """The migrations of the tool's folder ``src``, in this runner's format."""
        raise NotImplementedError

    def recognise(self, folder: Path, names: list[str]) -> str | None:
        """A file or folder name among ``names`` (what this runner ignored in a migrations folder)
        showing that the folder is this tool's, or None."""
        return None

    def explain(self, file: SqlFile) -> str | None:
        """For a file the runner refuses: a hint when it looks like this tool's, or None."""
        return None

    def repeatable_checksum(self, text: str) -> object:
        """The checksum this tool records for a repeatable migration of this text (compared with
        ``RepeatableEntry.checksum``); None for tools without repeatable migrations."""
        return None

    def retired_name(self, table: str) -> str:
        """Where ``adopt`` moves the old table: a name that cannot be ours, kept for reference."""
        if table == "schema_migrations":
            return f"{table}_{self.name.replace('-', '_')}"
        return f"{table}_old"

    def __repr__(self) -> str:
        return f"<format {self.name}>"


class Found:
    """A tracking table found in the database: where it is, its columns (name -> type) and, once
    identified, the tool it belongs to."""

    __slots__ = ("columns", "format", "name", "schema")

    def __init__(self, schema: str, name: str, columns: dict[str, str], format: Format | None = None) -> None:
        self.schema = schema
        self.name = name
        self.columns = columns
        self.format = format

    @property
    def display(self) -> str:
        """``schema.name``, for messages."""
        return f"{self.schema}.{self.name}"

    @property
    def sql(self) -> str:
        """The quoted, schema-qualified name, for statements."""
        return '"{}"."{}"'.format(self.schema.replace('"', '""'), self.name.replace('"', '""'))

    def __repr__(self) -> str:
        return f"Found({self.display!r}, {self.format!r})"


class Entry:
    """One version the other tool recorded."""

    __slots__ = ("applied_at", "applied_by", "description", "dirty", "execution_ms", "note", "version")

    def __init__(self, version: int, *, dirty: bool = False, applied_at: Any = None, description: str | None = None,
                 execution_ms: int | None = None, applied_by: str | None = None, note: str = "") -> None:
        self.version = version
        self.dirty = dirty
        self.applied_at = applied_at
        self.description = description  # the other tool's name for it, used when the folder has no file
        self.execution_ms = execution_ms
        self.applied_by = applied_by
        self.note = note


class RepeatableEntry:
    """A repeatable migration the other tool ran: ``name`` as this runner names it (``R__name.sql``)
    and the tool's checksum of what it ran last."""

    __slots__ = ("applied_at", "applied_by", "checksum", "execution_ms", "name")

    def __init__(self, name: str, checksum: object, *, applied_at: Any = None, execution_ms: int | None = None,
                 applied_by: str | None = None) -> None:
        self.name = name
        self.checksum = checksum
        self.applied_at = applied_at
        self.execution_ms = execution_ms
        self.applied_by = applied_by


class History:
    """What the other tool's table says: its entries, ``upto`` (every folder version up to it counts
    as applied), the repeatable migrations it ran, a one-line summary and notes on what is not
    carried over."""

    __slots__ = ("entries", "notes", "repeatables", "summary", "upto")

    def __init__(self, entries: list[Entry] | None = None, *, upto: int | None = None, summary: str = "",
                 notes: list[str] | None = None, repeatables: list[RepeatableEntry] | None = None) -> None:
        self.entries = sorted(entries or [], key=lambda e: e.version)
        self.upto = upto
        self.summary = summary
        self.notes = notes or []
        self.repeatables = repeatables or []


class Converted:
    """One migration in this runner's format, or (``repeatable``) a repeatable migration (Flyway's
    ``R__`` files), written as ``R__name.sql``."""

    __slots__ = ("down", "name", "repeatable", "source", "up", "version")

    def __init__(self, version: int, name: str, up: str, down: str | None, source: str, *,
                 repeatable: bool = False) -> None:
        self.version = version
        self.name = name
        self.up = up
        self.down = down
        self.source = source  # the file it came from, for messages
        self.repeatable = repeatable

    @property
    def files(self) -> list[tuple[str, str]]:
        """``(file name, text)`` of what to write."""
        if self.repeatable:
            return [(f"R__{self.name}.sql", self.up)]
        label = f"{self.version:06d}_{self.name}"
        out = [(f"{label}.up.sql", self.up)]
        if self.down is not None:
            out.append((f"{label}.down.sql", self.down))
        return out


def read_head(path: Path, size: int = 65536) -> str:
    """The start of a file as text ('' when it cannot be read), for recognising a tool's files."""
    try:
        with open(path, "rb") as fh:
            return fh.read(size).decode("utf-8", "replace")
    except OSError:
        return ""


class Pattern:
    """A regular expression compiled on first use: the registry loads every tool module on each
    command that reads the tracking table, and compiling their patterns would cost more than the rest.
    Compiled ASCII-only: ``\\d`` is 0-9, as in the tools themselves (int() would read other scripts' digits)."""

    __slots__ = ("compiled", "flags", "pattern")

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self.pattern = pattern
        self.flags = flags
        self.compiled = None

    def __getattr__(self, name: str) -> Any:  # match, search, fullmatch...
        if self.compiled is None:
            import re

            self.compiled = re.compile(self.pattern, self.flags | re.ASCII)
        return getattr(self.compiled, name)
