"""Comparing two schema snapshots, and saying what differs in one line per object.

Only the outermost object of a difference is named: a table that is left over is one difference,
not one per column, index and constraint of it too.
"""

from __future__ import annotations

from collections import namedtuple

from .snapshot import Snapshot

# change: 'extra' (only in the actual schema), 'missing' (only in the expected one), 'changed'.
Difference = namedtuple("Difference", "change kind name expected actual")

SHOW_DEFINITIONS_UP_TO = 120  # characters; longer definitions (functions, views) are only said to differ


def compare(expected: Snapshot, actual: Snapshot) -> list[Difference]:
    """What ``actual`` has that ``expected`` lacks, what it lacks, and what differs, outermost objects only."""
    if expected == actual:
        return []
    want, have = expected.entries, actual.entries
    extra = {key for key in have if key not in want}
    missing = {key for key in want if key not in have}
    out = []
    for key, entry in have.items():
        if key in extra and entry.parent not in extra:
            out.append(Difference("extra", entry.kind, key[1], None, entry.definition))
        elif key not in extra and want[key] != entry:
            out.append(Difference("changed", entry.kind, key[1], want[key].definition, entry.definition))
    for key, entry in want.items():
        if key in missing and entry.parent not in missing:
            out.append(Difference("missing", entry.kind, key[1], entry.definition, None))
    return out


def definitions(diff: Difference, expected_label: str, actual_label: str) -> str:
    """``: before: X; after: Y`` when both are short enough to read in one line, else ''."""
    if max(len(diff.expected or ""), len(diff.actual or "")) > SHOW_DEFINITIONS_UP_TO:
        return ""
    return f" ({expected_label}: {diff.expected or 'nothing'}; {actual_label}: {diff.actual or 'nothing'})"


def after_down(diff: Difference) -> str:
    """A difference between the schema before the up file (expected) and after up then down."""
    what = f"{diff.kind} {diff.name}"
    if diff.change == "extra":
        return f"{what} is still there after the down file; it did not exist before the up file"
    if diff.change == "missing":
        return f"{what} is gone after the down file; it existed before the up file"
    return f"{what} is not restored by the down file" + definitions(diff, "before up", "after down")


def after_redo(diff: Difference) -> str:
    """A difference between the schema after the first up (expected) and after up, down, up again."""
    what = f"{diff.kind} {diff.name}"
    if diff.change == "extra":
        return f"after up, down and up again, {what} exists; the first up did not leave it"
    if diff.change == "missing":
        return f"after up, down and up again, {what} is missing; the first up created it"
    return f"after up, down and up again, {what} differs from the first up" + definitions(diff, "first", "again")


def live(diff: Difference, version: int) -> str:
    """A difference between what the migrations build at ``version`` (expected) and the live schema."""
    what = f"{diff.kind} {diff.name}"
    if diff.change == "extra":
        return f"{what} exists on the live database but not in what the migrations build at version {version}"
    if diff.change == "missing":
        return f"{what} is missing on the live database; the migrations up to version {version} create it"
    return f"{what} differs on the live database from what the migrations build at version {version}" + \
        definitions(diff, "migrations", "live")
