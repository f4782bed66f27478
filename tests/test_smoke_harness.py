from helpers import ROOT, query, tables, tracked


def test_fresh_database_is_empty(db_url):
    assert tables(db_url) == set()
    assert tracked(db_url) == {}


def test_echo_copy_has_migrations(echo_url):
    versions = {int(p.name[:6]) for p in (ROOT / "migrations" / "postgres").glob("*.up.sql")}
    assert set(tracked(echo_url)) == versions and {1, 2, 3, 4, 5, 6} <= versions
    assert query(echo_url, "SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'presence'")[0][0] == 1
