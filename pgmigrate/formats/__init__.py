"""Other migration tools: one module per tool, found here by the registry.

Each module (``golang_migrate.py``, ``prisma.py``...) defines a ``Format`` subclass and an instance
of it called ``FORMAT``: the tool's folder conventions (``import --from TOOL`` and the error for a
folder of that tool given to the runner) and its tracking table (``adopt`` and the refusal to run
next to it). Adding a tool is adding a module; modules whose names start with ``_`` are helpers.
"""

from __future__ import annotations

import os
from importlib import import_module

from ..errors import UsageError
from ._base import Format, Found

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

    from ..discovery import SqlFile

_LOADED: list[Format] | None = None


def all_formats() -> list[Format]:
    """Every tool's format, in identification order."""
    global _LOADED
    if _LOADED is None:
        here = os.path.dirname(__file__)
        modules = sorted(n[:-3] for n in os.listdir(here) if n.endswith(".py") and not n.startswith("_"))
        found = [getattr(import_module(f"{__name__}.{m}"), "FORMAT", None) for m in modules]
        _LOADED = sorted((f for f in found if f is not None), key=lambda f: (f.rank, f.name))
    return _LOADED


def names(*, importable: bool = False, adoptable: bool = False) -> list[str]:
    return sorted(f.name for f in all_formats()
                  if (not importable or f.folder_pattern) and (not adoptable or f.has_history))


def get(name: str, *, importable: bool = False) -> Format:
    """The format ``--from`` names, or a usage error listing the choices."""
    for f in all_formats():
        if f.name == name and (f.folder_pattern or not importable):
            return f
    choices = names(importable=importable, adoptable=not importable)
    what = "import from" if importable else "adopt from"
    raise UsageError(f"cannot {what} '{name}'; choose one of: {', '.join(choices)}")


def table_names() -> list[str]:
    """Every name a tracking table (or a table telling tools apart) can have."""
    return sorted({t for f in all_formats() for t in (*f.tables, *f.markers)})


def home_locations() -> list[tuple[str, str]]:
    """``(schema, table)`` where each tool keeps its table unless told otherwise."""
    return sorted({(f.schema, t) for f in all_formats() for t in (*f.tables, *f.markers)})


def identify(table: Found, beside: set[str]) -> Format | None:
    """The tool that made ``table`` (by its name, columns and the tables beside it), or None."""
    for f in all_formats():
        if table.name in f.tables and f.identify(table.name, table.columns, beside):
            return f
    return None


def recognise_folder(folder: Path, ignored: list[str]) -> tuple[Format, str] | None:
    """``(tool, example)`` when the names the runner ignored in ``folder`` are another tool's files."""
    if not ignored:
        return None
    for f in all_formats():
        example = f.recognise(folder, ignored)
        if example:
            return f, example
    return None


def explain_file(file: SqlFile) -> str | None:
    """A hint for a file the runner refuses, when it looks like another tool's."""
    for f in all_formats():
        hint = f.explain(file)
        if hint:
            return hint
    return None


__all__ = ["Format", "Found", "all_formats", "explain_file", "get", "home_locations", "identify", "names",
           "recognise_folder", "table_names"]
