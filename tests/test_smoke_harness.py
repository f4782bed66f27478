from helpers import query, tables, tracked


def test_fresh_database_is_empty(db_url):
    assert tables(db_url) == set()
    assert tracked(db_url) == {}


def test_echo_copy_has_migrations(echo_url):
    assert set(tracked(echo_url)) == {1, 2}
    assert query(echo_url, "SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'presence'")[0][0] == 1
