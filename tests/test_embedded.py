"""Tests of the embedded server (pgmigrate.embedded) against the machine's PostgreSQL binaries.

They run as root (initdb/postgres then run as the postgres or nobody account) and as an ordinary
user. Every cluster lives under a temporary directory, on a free port, and is destroyed at the end.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from helpers import free_port

from pgmigrate import embedded
from pgmigrate.embedded import (
    EmbeddedServer,
    ServerError,
    find_pg_binary,
    from_environment,
    unprivileged_user,
)

pytestmark = pytest.mark.embedded

IS_ROOT = os.geteuid() == 0


def wait_dead(pid: int, timeout: float = 10) -> None:
    """Wait until ``pid`` is gone or a zombie (pid 1 of a container may never reap it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} did not die")


def query(srv: EmbeddedServer, sql: str, *, host: str = "127.0.0.1") -> object:
    with psycopg.connect(
        host=host, port=srv.port, user="postgres", dbname=srv.dbname, sslmode="disable", connect_timeout=5
    ) as conn:
        cur = conn.execute(sql)
        if cur.description is None:  # a statement without rows
            return None
        row = cur.fetchone()
        assert row is not None
        return row[0]


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    # tempfile makes a 0700 directory; 0755 lets the postgres account reach the cluster when root.
    path = Path(tempfile.mkdtemp(prefix="pgm-embedded-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def server(workdir: Path) -> Iterator[EmbeddedServer]:
    srv = EmbeddedServer(workdir / ".pgdata", port=free_port(), dbname="echo_test")
    yield srv
    srv.destroy()


def test_lifecycle(server: EmbeddedServer) -> None:
    url = server.start()
    assert url == f"postgresql://postgres@127.0.0.1:{server.port}/echo_test" == server.url
    assert server.start() == url  # idempotent
    assert server.is_running()
    assert query(server, "select 1") == 1
    with psycopg.connect(url) as conn:
        assert conn.execute("select current_database()").fetchone() == ("echo_test",)
    # The Unix socket lives inside the data directory.
    assert query(server, "select 2", host=str(server.cluster_dir)) == 2
    status = server.status()
    assert status["running"] is True
    assert isinstance(status["pid"], int)
    assert status["port"] == server.port
    assert status["datadir"] == str(server.datadir)
    assert status["url"] == url
    assert str(status["version"]).startswith(server.cluster_dir.joinpath("PG_VERSION").read_text().strip())

    assert server.stop() is True
    assert server.stop() is False  # idempotent
    assert not server.is_running()
    assert server.status()["running"] is False
    assert server.status()["pid"] is None


def test_cluster_settings(server: EmbeddedServer) -> None:
    server.start()
    cluster = server.cluster_dir
    assert query(server, "show listen_addresses") == "127.0.0.1"
    assert query(server, "show port") == str(server.port)
    assert query(server, "show server_encoding") == "UTF8"
    assert query(server, "show lc_collate") == "C.UTF-8"
    rules = [line.split() for line in (cluster / "pg_hba.conf").read_text().splitlines()]
    rules = [rule for rule in rules if rule and not rule[0].startswith("#")]
    assert {rule[0] for rule in rules} == {"local", "host"}
    assert {rule[3] for rule in rules if rule[0] == "host"} == {"127.0.0.1/32", "::1/128"}
    assert all(rule[-1] == "trust" for rule in rules)
    assert server.log_file == cluster / "log" / "server.log"
    assert server.log_file.is_file()
    owner = pwd.getpwnam(unprivileged_user() or "root").pw_uid if IS_ROOT else os.geteuid()
    assert cluster.stat().st_uid == owner
    assert stat.S_IMODE(cluster.stat().st_mode) == 0o700
    assert not server.datadir.is_symlink()  # reachable: not relocated


def test_start_after_kill_9(server: EmbeddedServer) -> None:
    server.start()
    pid = server.status()["pid"]
    assert isinstance(pid, int)
    os.kill(pid, signal.SIGKILL)
    wait_dead(pid)
    assert (server.cluster_dir / "postmaster.pid").exists()  # stale
    assert not server.is_running()
    assert server.start() == server.url
    assert server.status()["pid"] != pid
    assert query(server, "select 1") == 1


def test_stale_pid_reused_by_another_process(server: EmbeddedServer) -> None:
    server.start()
    pid = server.status()["pid"]
    assert isinstance(pid, int)
    os.kill(pid, signal.SIGKILL)
    wait_dead(pid)
    other = subprocess.Popen(["sleep", "60"])
    try:
        pidfile = server.cluster_dir / "postmaster.pid"
        lines = pidfile.read_text().split("\n")
        pidfile.write_text("\n".join([str(other.pid), *lines[1:]]))
        assert not server.is_running()
        assert server.stop() is False
        assert other.poll() is None  # not signalled
        assert server.start() == server.url
        assert query(server, "select 1") == 1
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_port_in_use(server: EmbeddedServer) -> None:
    server.stop()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ServerError) as info:
            EmbeddedServer(server.datadir, port=port, dbname=server.dbname).start()
    assert str(port) in str(info.value)
    assert "LOCAL_PG_PORT" in str(info.value)
    assert not server.is_running()


def test_already_running_on_another_port(server: EmbeddedServer) -> None:
    server.start()
    with pytest.raises(ServerError, match=f"already runs on port {server.port}"):
        EmbeddedServer(server.datadir, port=free_port(), dbname=server.dbname).start()
    assert server.is_running()


def test_start_failure_points_at_the_log(server: EmbeddedServer) -> None:
    server.stop()
    conf = server.cluster_dir / "postgresql.conf"
    original = conf.read_text()
    try:
        with conf.open("a") as f:
            f.write("shared_buffers = 'plenty'\n")
        with pytest.raises(ServerError) as info:
            server.start()
        message = str(info.value)
        assert str(server.log_file) in message
        assert "\n" not in message
        assert any("shared_buffers" in line for line in info.value.details)
        assert not server.is_running()
    finally:
        conf.write_text(original)
    assert server.start() == server.url


def test_missing_binaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(embedded, "PG_LIB_GLOB", str(tmp_path / "nowhere" / "*" / "bin"))
    for name in ("initdb", "pg_ctl", "psql"):
        with pytest.raises(ServerError, match="apt-get install postgresql"):
            find_pg_binary(name)
    srv = EmbeddedServer(tmp_path / ".pgdata", port=free_port())
    with pytest.raises(ServerError) as info:
        srv.start()
    assert str(info.value) == embedded.MISSING_SERVER
    assert not srv.datadir.exists()


def test_server_binaries_come_from_a_server_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    for name in ("initdb", "psql"):
        (fake / name).write_text("#!/bin/sh\nexit 1\n")
        (fake / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    initdb = Path(find_pg_binary("initdb"))
    assert initdb.parent != fake  # fake has no pg_ctl next to it
    assert (initdb.parent / "pg_ctl").exists()
    assert find_pg_binary("psql") == str(fake / "psql")  # client programs: first on PATH


def test_pg_config_and_versioned_directories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pg_config = shutil.which("pg_config")
    path = os.pathsep.join(dict.fromkeys([str(Path(pg_config or "/").parent), "/usr/bin", "/bin"]))
    if pg_config is None or shutil.which("initdb", path=path):
        pytest.skip("needs pg_config in a directory without initdb")
    monkeypatch.setenv("PATH", path)  # pg_config but no initdb; pg_config wrappers need tail, ls...
    monkeypatch.setattr(embedded, "PG_LIB_GLOB", str(tmp_path / "nowhere" / "*" / "bin"))
    bindir = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True).stdout.strip()
    assert bindir
    assert find_pg_binary("initdb") == f"{bindir}/initdb"
    # Without pg_config: the newest versioned directory.
    lib = tmp_path / "lib"
    for version in ("9.6", "13", "100"):
        (lib / version / "bin").mkdir(parents=True)
        for name in ("initdb", "pg_ctl"):
            (lib / version / "bin" / name).write_text("#!/bin/sh\n")
            (lib / version / "bin" / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(embedded, "PG_LIB_GLOB", str(lib / "*" / "bin"))
    assert find_pg_binary("pg_ctl") == str(lib / "100" / "bin" / "pg_ctl")


def test_falls_back_to_locale_c(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = Path(find_pg_binary("initdb")).parent
    fake = workdir / "fake-bin"  # reachable by the postgres account when root
    fake.mkdir()
    (fake / "initdb").write_text(
        "#!/bin/sh\n"
        'case "$*" in *C.UTF-8*) echo \'initdb: error: invalid locale name "C.UTF-8"\' >&2; exit 1;; esac\n'
        f'exec {real}/initdb "$@"\n'
    )
    (fake / "initdb").chmod(0o755)
    (fake / "pg_ctl").symlink_to(real / "pg_ctl")
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    srv = EmbeddedServer(workdir / "c-locale" / ".pgdata", port=free_port())
    try:
        srv.start()
        assert query(srv, "show lc_collate") == "C"
        assert query(srv, "show server_encoding") == "UTF8"
    finally:
        srv.destroy()


def test_long_path_serves_tcp_only(workdir: Path) -> None:
    deep = workdir / ("d" * 60) / ("e" * 60)
    srv = EmbeddedServer(deep / ".pgdata", port=free_port())
    try:
        srv.start()
        assert query(srv, "show unix_socket_directories") == ""
        assert srv.stop() is True
    finally:
        srv.destroy()


@pytest.mark.skipif(not IS_ROOT, reason="only root switches users")
@pytest.mark.parametrize("tool", ["runuser", "setpriv"])
def test_root_runs_programs_as_the_unprivileged_user(tool: str, monkeypatch: pytest.MonkeyPatch) -> None:
    which = shutil.which
    monkeypatch.setattr(
        embedded.shutil, "which", lambda name, **kw: None if name != tool else which(name, **kw)
    )
    user = unprivileged_user()
    assert user is not None
    done = embedded._run(["id", "-un"], timeout=10, user=user)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == user


def test_unprivileged_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded.os, "geteuid", lambda: 1000)
    assert unprivileged_user() is None
    monkeypatch.setattr(embedded.os, "geteuid", lambda: 0)
    assert unprivileged_user() in ("postgres", "nobody")


def test_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCAL_PG_PORT", raising=False)
    monkeypatch.delenv("LOCAL_PG_DB", raising=False)
    srv = from_environment(tmp_path)
    assert (srv.datadir, srv.port, srv.dbname) == (tmp_path / ".pgdata", 54329, "echo")
    assert srv.url == "postgresql://postgres@127.0.0.1:54329/echo"
    monkeypatch.setenv("LOCAL_PG_PORT", "55001")
    monkeypatch.setenv("LOCAL_PG_DB", "my db")
    srv = from_environment(tmp_path)
    assert srv.url == "postgresql://postgres@127.0.0.1:55001/my%20db"
    srv = from_environment(tmp_path, {"LOCAL_PG_PORT": "55002"})  # e.g. the environment with .env
    assert (srv.port, srv.dbname) == (55002, "echo")
    monkeypatch.setenv("LOCAL_PG_PORT", "fifty")
    with pytest.raises(ServerError, match="LOCAL_PG_PORT"):
        from_environment(tmp_path)
    with pytest.raises(ServerError, match="LOCAL_PG_PORT"):
        from_environment(tmp_path, {"LOCAL_PG_PORT": "70000"})


@pytest.mark.skipif(not IS_ROOT, reason="relocation only happens as root")
def test_root_relocates_an_unreachable_datadir() -> None:
    base_existed = embedded.RELOCATED_BASE.exists()
    private = Path(tempfile.mkdtemp(prefix="pgm-private-"))  # 0700, owned by root
    srv = EmbeddedServer(private / "project" / ".pgdata", port=free_port())
    try:
        srv.start()
        target = srv.cluster_dir
        assert srv.datadir.is_symlink()
        assert target.parent == embedded.RELOCATED_BASE
        assert target.name.startswith("0-") and len(target.name) == 14
        assert target.stat().st_uid == pwd.getpwnam(unprivileged_user() or "nobody").pw_uid
        assert stat.S_IMODE(target.stat().st_mode) == 0o700
        assert stat.S_IMODE(private.stat().st_mode) == 0o700  # root's directory left alone
        assert query(srv, "select 1") == 1
        query(srv, "create table marker ()")
        assert srv.stop() is True
        assert srv.start() == srv.url and srv.cluster_dir == target  # reused
        assert query(srv, "select count(*) from pg_class where relname = 'marker'") == 1
        srv.stop()
        # Deleting the link (rm -rf .pgdata) means "a fresh cluster", not the orphaned one.
        srv.datadir.unlink()
        srv.start()
        assert srv.cluster_dir == target
        assert query(srv, "select count(*) from pg_class where relname = 'marker'") == 0
    finally:
        srv.destroy()
        shutil.rmtree(private, ignore_errors=True)
        if not base_existed:
            embedded.RELOCATED_BASE.rmdir()
    assert not target.exists()
