"""Property tests: the file-name parser, error positions to line numbers, checksum normalisation.

The line-number properties run generated SQL on the real server, through the runner's own code
paths (one transaction, statement by statement, and the psql bridge), and check that the line the
runner reports is the line of the token the server complained about.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
from helpers import tables
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pgmigrate import sqltext
from pgmigrate.config import Limits, Target
from pgmigrate.db import connect
from pgmigrate.discovery import MAX_VERSION, SqlFile, parse_name
from pgmigrate.errors import FileError, MigrationFailed
from pgmigrate.inprocess import run_autocommit, run_transactional
from pgmigrate.psql import PsqlSession

# What a valid name is, written independently of the parser: ASCII digits, '_', a name of ASCII
# letters, digits, '_' and '-', then '.up.sql' or '.down.sql', and nothing else (no newline).
VALID = re.compile(r"([0-9]+)_([A-Za-z0-9_-]+)\.(up|down)\.sql", re.ASCII)
# Names that are plainly meant as migrations but are not valid: these must be refused loudly.
MEANT = re.compile(r"[0-9]+_.*\.(up|down)\.sql", re.ASCII | re.DOTALL)

NAMES = st.from_regex(r"[A-Za-z0-9_-]{1,40}", fullmatch=True)
DIRECTIONS = st.sampled_from(["up", "down"])


# --- parse_name ---


@settings(max_examples=300, database=None)
@given(version=st.integers(1, MAX_VERSION), pad=st.integers(0, 25), name=NAMES, direction=DIRECTIONS)
def test_parse_name_round_trips_valid_names_of_any_width(version, pad, name, direction):
    digits = f"{version:0{len(str(version)) + pad}d}"
    assert parse_name(f"{digits}_{name}.{direction}.sql") == (version, name, direction)


@settings(max_examples=100, database=None)
@given(version=st.integers(MAX_VERSION + 1, 10**40), pad=st.integers(0, 5), name=NAMES, direction=DIRECTIONS)
def test_parse_name_rejects_versions_beyond_bigint(version, pad, name, direction):
    digits = f"{version:0{len(str(version)) + pad}d}"
    with pytest.raises(FileError, match="bigint"):
        parse_name(f"{digits}_{name}.{direction}.sql")


@settings(max_examples=30, database=None)
@given(zeros=st.integers(1, 30), name=NAMES, direction=DIRECTIONS)
def test_parse_name_rejects_version_zero(zeros, name, direction):
    with pytest.raises(FileError, match="version 0"):
        parse_name(f"{'0' * zeros}_{name}.{direction}.sql")


# Near-misses: non-ASCII digits, odd characters in the name, wrong or decorated suffixes.
_DIGITS = st.text(alphabet="0123456789\u0663\uff11\u00b2", min_size=0, max_size=6)
_NAME_CHARS = st.text(alphabet="aZ9_-.' ;\n\t/\u00fc\u0663$()", min_size=0, max_size=12)
_SUFFIX = st.sampled_from([".up.sql", ".down.sql", ".up.sql\n", "\n.up.sql", ".sql", ".UP.sql",
                           ".up.sql.bak", ".up.sq", "", ".down.sql ", ".up..sql"])
NEAR_MISSES = st.builds(lambda d, sep, n, s: d + sep + n + s, _DIGITS, st.sampled_from(["_", "", "-", "__"]),
                        _NAME_CHARS, _SUFFIX)


@settings(max_examples=600, database=None)
@given(filename=st.one_of(NEAR_MISSES, st.text(max_size=30)))
def test_parse_name_never_accepts_an_invalid_name(filename):
    valid = VALID.fullmatch(filename)
    try:
        parsed = parse_name(filename)
    except FileError:
        assert not (valid and 0 < int(valid.group(1)) <= MAX_VERSION), f"valid name refused: {filename!r}"
        return
    if valid and 0 < int(valid.group(1)) <= MAX_VERSION:
        assert parsed == (int(valid.group(1)), valid.group(2), valid.group(3))
    else:
        assert parsed is None, f"invalid name {filename!r} parsed as {parsed}"
        assert not MEANT.fullmatch(filename), f"{filename!r} looks like a migration but was silently ignored"


@pytest.mark.parametrize("filename", ["\u0663_x.up.sql", "\uff11_x.up.sql", "0001_x.up.sql\n", "0001_\u00e9.up.sql"])
def test_parse_name_examples_of_invalid_names(filename):
    """Non-ASCII digits (int() accepts them) and a trailing newline (``$`` matches before it)."""
    try:
        parsed = parse_name(filename)
    except FileError:
        parsed = None
    assert parsed is None


# --- checksums ---

# Lines of text without line breaks; some with leading indentation, some blank.
LINE = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\ufeff"), max_size=30)
CANONICAL = st.lists(LINE, min_size=1, max_size=12).map(
    lambda lines: "\n".join(ln.rstrip() for ln in lines).rstrip() + "\n"
).filter(lambda t: t.strip() != "")
PADDING = st.text(alphabet=" \t", max_size=4)


@settings(max_examples=300, database=None)
@given(text=CANONICAL, data=st.data())
def test_checksum_ignores_formatting(text, data):
    lines = text.split("\n")[:-1]
    padded = [ln + data.draw(PADDING) for ln in lines]
    ending = data.draw(st.sampled_from(["\n", "\r\n", "\r"]))
    trailing = ending * data.draw(st.integers(0, 3)) + data.draw(PADDING)
    bom = data.draw(st.sampled_from(["", "\ufeff"]))
    variant = bom + ending.join(padded) + data.draw(st.sampled_from(["", ending])) + trailing
    assert sqltext.checksum(variant) == sqltext.checksum(text)
    # and through the file reader, as bytes on disk
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "0001_x.up.sql"
        path.write_bytes(variant.encode("utf-8"))
        assert SqlFile(path).checksum == sqltext.checksum(text)


@settings(max_examples=300, database=None)
@given(text=CANONICAL, data=st.data())
def test_checksum_changes_with_any_other_edit(text, data):
    original = sqltext.checksum(text)
    kind = data.draw(st.sampled_from(["insert", "delete", "indent", "blank line", "join lines"]))
    visible = [i for i, c in enumerate(text) if not c.isspace()]
    if kind == "insert":
        char = data.draw(st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc"),
                                       blacklist_characters="\ufeff"))
        assume(not char.isspace())
        at = data.draw(st.integers(0, len(text)))
        edited = text[:at] + char + text[at:]
    elif kind == "delete":
        at = data.draw(st.sampled_from(visible))
        edited = text[:at] + text[at + 1:]
    elif kind == "indent":
        lines = text.split("\n")
        candidates = [i for i, ln in enumerate(lines) if ln.strip()]
        i = data.draw(st.sampled_from(candidates))
        lines[i] = data.draw(st.sampled_from([" ", "\t", "  "])) + lines[i]
        edited = "\n".join(lines)
    elif kind == "blank line":
        lines = text.split("\n")
        candidates = [i for i in range(1, len(lines)) if any(ln.strip() for ln in lines[i:])]
        assume(candidates)
        i = data.draw(st.sampled_from(candidates))
        edited = "\n".join([*lines[:i], "", *lines[i:]])
    else:
        breaks = [i for i, c in enumerate(text[:-1]) if c == "\n" and text[i + 1:].strip()]
        assume(breaks)
        at = data.draw(st.sampled_from(breaks))
        edited = text[:at] + " " + text[at + 1:]
    assert sqltext.checksum(edited) != original, f"{kind}: {text!r} -> {edited!r}"


def test_checksum_examples():
    base = sqltext.checksum("CREATE TABLE t (id int);\n")
    assert sqltext.checksum("\ufeffCREATE TABLE t (id int);   \r\n\r\n\r\n") == base
    assert sqltext.checksum("CREATE TABLE t (id int);") == base
    assert sqltext.checksum("CREATE TABLE t (id bigint);\n") != base
    assert sqltext.checksum("CREATE TABLE t  (id int);\n") != base
    assert sqltext.checksum("\nCREATE TABLE t (id int);\n") != base


# --- error position -> line number, against the real server ---

FILLER = st.sampled_from([
    "",
    "   ",
    "\t",
    "-- a comment: \u00fc \u6f22\u5b57 \U0001f389 ; ' \"",
    "/* block \U0001f389 \u00e9 ; */",
    "+ length('\u00fc\u6f22\U0001f389')",
    "+ length('it''s; \u00e9')",
    "+ length(E'tab\\t \u00e9 \\'q')",
    "+ length($$ \U0001f389 ; $$)",
    "+ length($q$ $$ \u00fc $q$)",
    '+ length(\'a\') /* "x" \U0001f600 */ + 1',
    "+ 1",
])
PRELUDE = st.sampled_from(["SELECT 1;", "SELECT '\u00fc;\U0001f389';", "SELECT $$ ; $$;", "-- \u6f22\u5b57",
                           "/* ; */ SELECT 2; SELECT 3;", ""])


def _sql_file(folder: str, name: str, text: str, bom: bool) -> SqlFile:
    path = Path(folder) / name
    path.write_bytes(((sqltext.BOM if bom else "") + text).encode("utf-8"))
    return SqlFile(path)


@st.composite
def failing_sql(draw, *, prelude: bool):
    """(text, line of the bad token) with the chosen line ending."""
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    lines = list(draw(st.lists(PRELUDE, max_size=4))) if prelude else []
    lines.append("SELECT 1")
    lines += draw(st.lists(FILLER, max_size=6))
    marker_prefix = draw(st.sampled_from(["", "+ length('\U0001f389') ", "/* \u00fc */ ", "   "]))
    lines.append(f"{marker_prefix}+ no_such_column_marker")
    marker_line = len(lines)
    lines += draw(st.lists(FILLER, max_size=4))
    lines.append(";")
    return eol.join(lines) + eol, marker_line


SERVER_SETTINGS = settings(max_examples=40, deadline=None, database=None,
                           suppress_health_check=[HealthCheck.function_scoped_fixture])


@SERVER_SETTINGS
@given(case=failing_sql(prelude=False), bom=st.booleans())
def test_error_line_in_a_transactional_migration(db_url, case, bom):
    text, line = case
    with tempfile.TemporaryDirectory() as tmp, connect(Target(db_url, "test")) as conn:
        file = _sql_file(tmp, "0001_x.up.sql", text, bom)
        with pytest.raises(MigrationFailed) as err:
            run_transactional(conn, file, [], Limits(), lambda note: None)
    assert err.value.sqlstate == "42703"
    assert err.value.line == line, f"{text!r}: reported line {err.value.line}, token on line {line}"
    assert f"0001_x.up.sql:{line}:" in str(err.value)
    assert tables(db_url) == set()


@SERVER_SETTINGS
@given(case=failing_sql(prelude=True), bom=st.booleans())
def test_error_line_in_a_no_transaction_migration(db_url, case, bom):
    text, line = case
    text = "-- migrate:no-transaction\n" + text
    line += 1
    with tempfile.TemporaryDirectory() as tmp, connect(Target(db_url, "test")) as conn:
        file = _sql_file(tmp, "0001_x.up.sql", text, bom)
        assert not file.transactional
        with pytest.raises(MigrationFailed) as err:
            run_autocommit(conn, file, None, None)
    assert err.value.sqlstate == "42703"
    assert err.value.line == line, f"{text!r}: reported line {err.value.line}, token on line {line}"
    assert tables(db_url) == set()


@pytest.mark.parametrize("bom, eol", [(False, "\n"), (True, "\r\n")])
def test_error_line_through_the_psql_bridge_single_line_statement(db_url, bom, eol):
    text = eol.join(["\\set answer 42", "-- \u6f22\u5b57 \U0001f389", "SELECT 1 + no_such_column_marker;", ""])
    session = PsqlSession(Target(db_url, "test"), {})
    try:
        with tempfile.TemporaryDirectory() as tmp:
            file = _sql_file(tmp, "0001_x.up.sql", text, bom)
            assert file.needs_psql
            with pytest.raises(MigrationFailed) as err:
                session.run(file, [], Limits(), transactional=True)
    finally:
        session.close()
    assert err.value.line == 3
    assert "no_such_column_marker" in str(err.value)
    assert tables(db_url) == set()


@pytest.mark.parametrize("bom, eol", [(False, "\n"), (True, "\r\n")])
def test_error_line_through_the_psql_bridge_multi_line_statement(db_url, bom, eol):
    text = eol.join(["\\set answer 42", "SELECT 1", "+ length('\U0001f389')", "+ no_such_column_marker", "+ 1",
                     ";", ""])
    session = PsqlSession(Target(db_url, "test"), {})
    try:
        with tempfile.TemporaryDirectory() as tmp:
            file = _sql_file(tmp, "0001_x.up.sql", text, bom)
            with pytest.raises(MigrationFailed) as err:
                session.run(file, [], Limits(), transactional=True)
    finally:
        session.close()
    assert tables(db_url) == set()
    assert err.value.line == 4, f"reported line {err.value.line}, the bad token is on line 4"


@settings(max_examples=200, database=None)
@given(text=st.text(max_size=60), data=st.data())
def test_line_of_position_counts_newlines_before_the_position(text, data):
    """The pure mapping: position p (1-based characters) lies on 1 + the line ends before it."""
    assume(text)
    base = data.draw(st.integers(0, len(text) - 1))
    position = data.draw(st.integers(1, len(text) - base))
    expected = len(re.findall(r"\r\n?|\n", text[: base + position - 1])) + 1  # LF, CRLF or a lone CR
    assert sqltext.line_of_position(text, position, base) == expected


# --- statements are found whatever the line endings (no-transaction files run them one by one) ---

STATEMENT = st.sampled_from(["CREATE TABLE t{n} (id int);", "INSERT INTO t{n} VALUES (1);",
                             "SELECT '--{n}' AS c;", "SELECT 1 /* ; */ + {n};"])
COMMENT = st.sampled_from(["-- a comment ; {n}", "-- \u00fc\u6f22 ;", "/* block ; */", ""])


@settings(max_examples=200, database=None)
@given(parts=st.lists(st.tuples(COMMENT, STATEMENT), min_size=1, max_size=8),
       eol=st.sampled_from(["\n", "\r\n", "\r"]))
def test_statements_found_with_any_line_ending(parts, eol):
    lines = []
    for n, (comment, statement) in enumerate(parts):
        lines += [comment.format(n=n), statement.format(n=n)]
    scan = sqltext.scan_sql(eol.join(lines) + eol)
    assert [s.text.strip() for s in scan.statements] == [st_.format(n=n) for n, (_, st_) in enumerate(parts)]


@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
def test_no_transaction_file_runs_every_statement_whatever_the_line_endings(eol, cli, db_url, tmp_path):
    folder = tmp_path / "migrations"
    folder.mkdir()
    text = eol.join(["-- migrate:no-transaction", "CREATE TABLE a1 (id int);", "-- the second one",
                     "CREATE TABLE a2 (id int);", ""])
    (folder / "0001_endings.up.sql").write_bytes(text.encode("utf-8"))
    done = cli("--dir", str(folder), "up", url=db_url)
    assert done.returncode == 0, done.stderr
    assert tables(db_url) == {"a1", "a2", "schema_migrations"}
