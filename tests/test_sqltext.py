"""Parsing layer: the lexer, file names, directives, checksums (inline strings, no database)."""

import pytest

from pgmigrate import sqltext
from pgmigrate.discovery import SqlFile, parse_name, scan_folder
from pgmigrate.errors import FileError


def statements(text):
    return [s.text.strip() for s in sqltext.scan_sql(text).statements]


def test_split_respects_quotes_comments_and_dollar_quotes():
    text = """
    -- a comment; with a semicolon
    CREATE TABLE t (v text DEFAULT 'a;b', "we;ird" int);
    /* block; /* nested; */ still comment */
    CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $fn$ BEGIN RETURN 1; END $fn$;
    SELECT E'it\\'s;', $$x;y$$;
    """
    assert statements(text) == [
        "CREATE TABLE t (v text DEFAULT 'a;b', \"we;ird\" int);",
        "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $fn$ BEGIN RETURN 1; END $fn$;",
        "SELECT E'it\\'s;', $$x;y$$;",
    ]


def test_split_keeps_parenthesised_semicolons_and_reports_lines():
    scan = sqltext.scan_sql("SELECT 1;\n\nCREATE RULE r AS ON INSERT TO t DO ALSO (NOTIFY a; NOTIFY b);\nSELECT 2")
    assert [s.line for s in scan.statements] == [1, 3, 4]
    assert scan.statements[1].text.endswith("NOTIFY b);")


def test_psql_features_are_detected():
    scan = sqltext.scan_sql("\\set n 3\nCOPY t FROM stdin;\n1\t'x;\n\\.\nSELECT :'who', :\"col\", 1::int;\n")
    assert scan.needs_psql
    assert [c.name for c in scan.meta_commands] == ["\\set"]
    assert scan.copy_stdin_lines == [2]
    assert scan.variables == [(5, "who"), (5, "col")]
    assert len(scan.statements) == 2  # the COPY data block is not a statement


def test_plain_sql_does_not_need_psql():
    scan = sqltext.scan_sql("SELECT 'a \\ b', 1::int, arr[1:2] FROM t; -- \\not a command\n")
    assert not scan.needs_psql


def test_transaction_control_is_found_but_begin_atomic_is_not():
    scan = sqltext.scan_sql("BEGIN;\nCREATE TABLE t();\nCOMMIT;\n")
    assert scan.transaction_control == [(1, "BEGIN"), (3, "COMMIT")]
    body = "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;"
    assert sqltext.scan_sql(body).transaction_control == []


@pytest.mark.parametrize(
    "variant",
    ["CREATE TABLE t ();\n", "\ufeffCREATE TABLE t ();\r\n", "CREATE TABLE t ();   \n\n\n", "CREATE TABLE t ();"],
)
def test_checksum_ignores_formatting(variant):
    assert sqltext.checksum(variant) == sqltext.checksum("CREATE TABLE t ();\n")


def test_checksum_sees_real_changes():
    assert sqltext.checksum("CREATE TABLE t ();\n") != sqltext.checksum("CREATE TABLE t2 ();\n")
    assert sqltext.checksum("SELECT 'a  '\n") != sqltext.checksum("SELECT 'a '\n")


def test_line_of_position_counts_from_the_statement_base():
    text = "SELECT 1;\r\nSELECT ünïcode;\nSELECT nope;\n"
    start = text.index("SELECT nope")
    assert sqltext.line_of_position(text, 8, base=start) == 3
    assert sqltext.line_of_position(text, 1) == 1


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("1_a.up.sql", (1, "a", "up")),
        ("0003_add-users.down.sql", (3, "add-users", "down")),
        ("20250101000005_x_y.up.sql", (20250101000005, "x_y", "up")),
        ("README.md", None),
        ("notes.sql", None),
    ],
)
def test_parse_name(name, expected):
    assert parse_name(name) == expected


@pytest.mark.parametrize(
    "name", ["99999999999999999999_big.up.sql", "0_zero.up.sql", "0001_bad name.up.sql", "0001_x');drop.up.sql"]
)
def test_parse_name_rejects(name):
    with pytest.raises(FileError):
        parse_name(name)


def test_folder_problems_are_collected(tmp_path):
    (tmp_path / "0001_a.up.sql").write_text("SELECT 1;")
    (tmp_path / "1_b.up.sql").write_text("SELECT 1;")
    (tmp_path / "0002_c.down.sql").write_text("SELECT 1;")
    (tmp_path / "stray.sql").write_text("SELECT 1;")
    (tmp_path / "README.md").write_text("hello")
    folder = scan_folder(tmp_path)
    assert any("duplicate version 1" in p and "0001_a.up.sql" in p and "1_b.up.sql" in p for p in folder.problems)
    assert any("down file without its up file" in p for p in folder.problems)
    assert folder.warnings == [
        f"{tmp_path / 'stray.sql'}: ignored, not a migration file name (NNNN_name.up.sql or .down.sql)"]


def test_versions_sort_by_value_not_text(tmp_path):
    for name in ("10_c.up.sql", "9_b.up.sql", "0001_a.up.sql"):
        (tmp_path / name).write_text("SELECT 1;")
    assert [m.version for m in scan_folder(tmp_path).migrations] == [1, 9, 10]


def test_directives_and_runnable_checks(tmp_path):
    good = tmp_path / "a.sql"
    good.write_text("-- a header\n-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (c);\n")
    assert not SqlFile(good).transactional
    unknown = tmp_path / "b.sql"
    unknown.write_text("-- migrate:no-transactoin\nSELECT 1;\n")
    with pytest.raises(FileError, match=r"b.sql:1: unknown directive"):
        SqlFile(unknown).check_runnable()
    empty = tmp_path / "c.sql"
    empty.write_text("-- nothing here\n\n")
    with pytest.raises(FileError, match="no SQL statements"):
        SqlFile(empty).check_runnable()
    commits = tmp_path / "d.sql"
    commits.write_text("CREATE TABLE t ();\nCOMMIT;\n")
    with pytest.raises(FileError, match=r"d.sql:2: COMMIT would end the transaction"):
        SqlFile(commits).check_runnable()


def test_non_utf8_file_names_the_line(tmp_path):
    bad = tmp_path / "e.sql"
    bad.write_bytes(b"SELECT 1;\nSELECT '\xff';\n")
    with pytest.raises(FileError, match=r"e.sql:2: the file is not valid UTF-8"):
        SqlFile(bad).text  # noqa: B018


def test_non_ascii_dollar_quote_tags_hide_what_they_quote():
    """PostgreSQL allows any non-ASCII character in a tag; a COMMIT inside such a string is text."""
    text = "CREATE TABLE p (a int);\nSELECT $€$ ' $€$;\nSELECT $é1$ COMMIT; $é1$;\nSELECT 'x';\n"
    scan = sqltext.scan_sql(text)
    assert [s.line for s in scan.statements] == [1, 2, 3, 4]
    assert scan.transaction_control == []
    hidden = "SELECT $€$ ' $€$;\nCOMMIT;\n"
    assert sqltext.scan_sql(hidden).transaction_control == [(2, "COMMIT")]
