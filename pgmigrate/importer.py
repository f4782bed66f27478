"""``import``: turn another tool's migrations folder into ``NNNNNN_name.up.sql`` / ``.down.sql`` files.

The tool's module in ``pgmigrate/formats/`` reads its folder (see each module for its conventions);
this is the flow they share. Versions are kept (Flyway's dotted ones by the rule in
``formats/flyway.py``), so a database ``adopt`` took over lines up with the imported files; they are
zero-padded to 6 digits unless wider (14-digit timestamps stay as they are). Names keep letters,
digits, ``_`` and ``-``; anything else becomes ``_``. Every source file is read and converted, and
every destination checked, before the first file is written: a problem writes nothing, and
existing files are never overwritten.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from . import discovery, formats
from .errors import FileError
from .formats._base import Converted


def _nothing(_: object) -> None:
    return None


def import_folder(tool: str, src: Path, dest: Path, on_note: Callable[[str], None] = _nothing) -> list[Path]:
    """Convert ``src`` (a ``tool`` migrations folder) into files in ``dest``; return the files written."""
    fmt = formats.get(tool, importable=True)
    if not src.is_dir():
        raise FileError(f"{src}: folder not found; give the {fmt.title} migrations folder as SRC")
    converted = fmt.convert(src, on_note)
    versioned = [c for c in converted if not c.repeatable]
    if not versioned:
        raise FileError(f"{src}: no {fmt.title} migrations found ({fmt.folder_pattern})")
    seen: dict[int, Converted] = {}
    for c in versioned:
        if c.version in seen:
            raise FileError(f"{seen[c.version].source} and {c.source} both have version {c.version}; renumber one")
        seen[c.version] = c
    outputs = [(dest / name, text) for c in sorted(versioned, key=lambda c: c.version) for name, text in c.files]
    outputs += [(dest / name, text) for c in converted if c.repeatable for name, text in c.files]
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
