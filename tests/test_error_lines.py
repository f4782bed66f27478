"""Every error names its line: syntax and run-time errors, on the in-process path, through psql and
in no-transaction files; errors inside DO blocks and function bodies; seeds. Nothing of the failed
migration is left."""

from __future__ import annotations

import pytest
from helpers import tables, tracked

PATHS = {"in-process": "", "psql": "\\set unused 1\n", "no-transaction": "-- migrate:no-transaction\n"}


def _file(prefix: str, body: list[str]) -> tuple[str, int]:
    """The file text and how many lines the prefix adds."""
    return prefix + "\n".join(body) + "\n", prefix.count("\n")


def _fails_at(cli, url, mdir, prefix: str, body: list[str], line: int, text: str) -> str:
    content, shift = _file(prefix, body)
    mdir.add(1, "broken", content)
    done = cli("--dir", str(mdir), "up", url=url)
    assert done.returncode == 1, done.stderr
    assert f"0001_broken.up.sql:{line + shift}: {text}" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    return done.stderr


FILLER = [f"CREATE TABLE t{i} (id int PRIMARY KEY);" for i in range(1, 6)]


@pytest.mark.parametrize("path", list(PATHS))
def test_runtime_error_in_a_later_statement(cli, db_url, mdir, path):
    body = [*FILLER, "INSERT INTO t1 VALUES (1);", "", "INSERT INTO t1", "  VALUES (1);", "SELECT 1;"]
    _fails_at(cli, db_url, mdir, PATHS[path], body, 8, 'duplicate key value violates unique constraint "t1_pkey"')
    assert tracked(db_url) == ({} if path != "no-transaction" else tracked(db_url))
    if path == "no-transaction":  # statement by statement: what ran stays, the version is dirty
        assert tracked(db_url)[1][2] is True and "t1" in tables(db_url)
    else:
        assert tables(db_url) - {"schema_migrations"} == set()


@pytest.mark.parametrize("path", ["in-process", "psql"])
def test_division_by_zero_and_encoding_errors_far_down_the_file(cli, db_url, mdir, path):
    body = [f"SELECT {i};" for i in range(1, 499)] + ["SELECT convert_from('\\xff'::bytea, 'UTF8');"]
    stderr = _fails_at(cli, db_url, mdir, PATHS[path], body, 499, "invalid byte sequence for encoding")
    assert "(SQLSTATE 22021)" in stderr
    assert tracked(db_url) == {}


@pytest.mark.parametrize("path", list(PATHS))
def test_error_inside_a_do_block_names_the_line_in_the_file(cli, db_url, mdir, path):
    body = ["CREATE TABLE a (id int);", "DO $$", "DECLARE n int;", "BEGIN",
            "  n := 1;", "  RAISE EXCEPTION 'boom % here', n;", "END", "$$;"]
    _fails_at(cli, db_url, mdir, PATHS[path], body, 6, "boom 1 here")
    if path != "no-transaction":
        assert tables(db_url) - {"schema_migrations"} == set() and tracked(db_url) == {}


@pytest.mark.parametrize("path", list(PATHS))
def test_error_inside_a_function_of_the_file_names_its_line(cli, db_url, mdir, path):
    body = ["CREATE FUNCTION public.ratio(a int, b int) RETURNS int", "LANGUAGE plpgsql AS $fn$",
            "BEGIN", "  IF a > 0 THEN", "    RETURN a / b;", "  END IF;", "  RETURN 0;", "END", "$fn$;",
            "", "SELECT public.ratio(4, 0);"]
    stderr = _fails_at(cli, db_url, mdir, PATHS[path], body, 5, "division by zero")
    assert "ratio" in stderr  # the context, as a detail
    if path != "no-transaction":
        assert tracked(db_url) == {}


@pytest.mark.parametrize("path", ["in-process", "psql"])
def test_syntax_error_inside_a_function_body(cli, db_url, mdir, path):
    body = ["CREATE TABLE a (id int);", "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$", "BEGIN",
            "  RETURN 1 +;", "END $$;"]
    _fails_at(cli, db_url, mdir, PATHS[path], body, 4, "syntax error at")
    assert tracked(db_url) == {} and "a" not in tables(db_url)


@pytest.mark.parametrize("psql_run", [False, True])
def test_seed_errors_name_their_line(cli, db_url, tmp_path, psql_run):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    prefix = "\\set n 1\n" if psql_run else ""
    (seeds / "001_a.sql").write_text(prefix + "CREATE TABLE s (id int PRIMARY KEY);\nINSERT INTO s VALUES (1);\n"
                                     "INSERT INTO s VALUES (2);\nINSERT INTO s VALUES (1);\n")
    done = cli("seed", "--seeds-dir", str(seeds), url=db_url)
    assert done.returncode == 1
    assert f"001_a.sql:{4 + prefix.count(chr(10))}: duplicate key" in done.stderr, done.stderr
    assert "s" not in tables(db_url)
