"""The embedded server: a project-local PostgreSQL cluster for development.

The cluster is made with the machine's own PostgreSQL binaries (``initdb``, ``pg_ctl``), lives in
``<project>/.pgdata`` and is only reachable from this machine:

* it listens on 127.0.0.1 only, on ``port`` (``LOCAL_PG_PORT``, default 54329), and on a Unix
  socket inside the data directory itself (TCP only if that path is too long for a socket name);
* ``pg_hba.conf`` trusts the local socket and 127.0.0.1/32 + ::1/128, and nobody else;
* the settings live in ``pgmigrate.conf`` (rewritten on every start, included at the end of
  ``postgresql.conf``), the server log in ``<datadir>/log/server.log``;
* the superuser is ``postgres``; the URL is ``postgresql://postgres@127.0.0.1:<port>/<dbname>``.

Running as root. ``initdb``, ``pg_ctl`` and ``postgres`` refuse to run as root, so they run as
:func:`unprivileged_user` (``postgres``, else ``nobody``) through ``runuser -u USER --`` or
``setpriv``, and the cluster directory is owned by that user with mode 0700. An existing cluster
owned by some other ordinary user is run as that user; a root-owned one is chowned (``-R``).
That user must be able to reach the cluster. When an ancestor of the data directory is not
traversable by it (say the project lives under ``/root``, mode 0700), nothing of the project's
or root's directories is chmod-ed. Instead the real cluster is kept in
``/var/lib/pgmigrate/<uid>-<sha1 of the data directory path, 12 hex digits>/`` (see
:data:`RELOCATED_BASE`) and ``<project>/.pgdata`` is a symlink to it. A symlink rather than a
pointer file, so that ``pg_ctl -D .pgdata``, ``ls .pgdata/log`` and the like keep working.
``/var/lib`` rather than ``/var/tmp`` because systemd-tmpfiles may age out files of ``/var/tmp``
(30 days on Debian/Ubuntu), which would silently corrupt a long-idle cluster.
:meth:`EmbeddedServer.destroy` removes both the link and the directory; a plain ``rm -rf .pgdata``
removes only the link, and the next start wipes the orphaned directory and makes a fresh cluster.

A stale ``postmaster.pid`` (the server was killed, the machine or container restarted) is removed
only when we are sure its process is not a postgres of this cluster: the process is gone, a
zombie, or its ``/proc/<pid>/cwd`` is not the cluster or its name is not ``postgres``. This needs
Linux's ``/proc`` and, for other users' processes, root; when we cannot tell, the file is left to
``pg_ctl``/``postgres``, which refuse to start if the pid is alive. The check assumes that the
cluster is not shared with another pid namespace (another container running a server on it).

Every failure raises :class:`~pgmigrate.errors.ServerError` with a one-line message; the CLI
prints it. Nothing here prints.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import hashlib
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from .errors import ConnectError, ServerError

DEFAULT_PORT = 54329
DEFAULT_DBNAME = "echo"
SUPERUSER = "postgres"
# Where versioned server binaries live on Debian/Ubuntu; newest version first wins.
PG_LIB_GLOB = "/usr/lib/postgresql/*/bin"
# Where root keeps clusters whose data directory the unprivileged user cannot reach.
RELOCATED_BASE = Path("/var/lib/pgmigrate")
# Programs that must come from the directory holding both initdb and pg_ctl (not a client wrapper).
SERVER_PROGRAMS = frozenset(
    {"initdb", "pg_ctl", "postgres", "postmaster", "pg_controldata", "pg_resetwal", "pg_checksums"}
)
MISSING_SERVER = (
    "PostgreSQL server binaries not found (initdb, pg_ctl); install them "
    "(Debian/Ubuntu: apt-get install postgresql) or put their bin directory on PATH"
)
SETTINGS_FILE = "pgmigrate.conf"
INCLUDE_LINE = f"include_if_exists = '{SETTINGS_FILE}'"
HBA_CONF = """\
# Written by pgmigrate: trust local connections only (Unix socket and loopback), nobody else.
# TYPE  DATABASE     USER  ADDRESS       METHOD
local   all          all                 trust
host    all          all   127.0.0.1/32  trust
host    all          all   ::1/128       trust
local   replication  all                 trust
host    replication  all   127.0.0.1/32  trust
host    replication  all   ::1/128       trust
"""
START_TIMEOUT = 60  # seconds pg_ctl waits for the server
SOCKET_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) - 1 on Linux
LOG_TAIL_LINES = 10


# --- finding the binaries ---------------------------------------------------------------------


def find_pg_binary(name: str) -> str:
    """Path of PostgreSQL program ``name``: on PATH, else ``pg_config --bindir``, else the newest
    ``/usr/lib/postgresql/*/bin``. Server programs come only from a directory with both initdb
    and pg_ctl."""
    server = name in SERVER_PROGRAMS
    for directory in _search_dirs():
        if server and not (_is_executable(directory / "initdb") and _is_executable(directory / "pg_ctl")):
            continue
        if _is_executable(directory / name):
            return str(directory / name)
    if server:
        raise ServerError(MISSING_SERVER)
    raise ServerError(
        f"PostgreSQL program {name} not found; install PostgreSQL "
        "(Debian/Ubuntu: apt-get install postgresql) or put its bin directory on PATH"
    )


def _search_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("PATH", os.defpath).split(os.pathsep) if p]
    bindir = _pg_config_bindir()
    if bindir is not None:
        dirs.append(bindir)
    return dirs + _versioned_bin_dirs()


def _pg_config_bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        return None
    try:
        done = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    out = done.stdout.strip()
    return Path(out) if done.returncode == 0 and out else None


def _versioned_bin_dirs() -> list[Path]:
    def version(path: str) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", Path(path).parent.name))

    return [Path(p) for p in sorted(glob.glob(PG_LIB_GLOB), key=version, reverse=True)]


def _is_executable(path: Path) -> bool:
    try:  # PATH may name directories we cannot read (/root/... for another user)
        return path.is_file() and os.access(path, os.X_OK)
    except OSError:
        return False


# --- running the binaries ---------------------------------------------------------------------


def unprivileged_user() -> str | None:
    """None unless running as root; as root, the account to run initdb/postgres as."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise ServerError(
        "running as root, but there is no postgres or nobody account to run PostgreSQL as; "
        "create one (useradd --system postgres) or run as an ordinary user"
    )


def _as_user(user: str | None) -> list[str]:
    """The command prefix that runs a program as ``user`` (nothing for None)."""
    if user is None:
        return []
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin:/sbin:/usr/bin:/bin"])
    runuser = shutil.which("runuser", path=path)
    if runuser:
        return [runuser, "-u", user, "--"]
    setpriv = shutil.which("setpriv", path=path)
    if setpriv:
        gid = pwd.getpwnam(user).pw_gid
        return [setpriv, f"--reuid={user}", f"--regid={gid}", "--init-groups", "--"]
    raise ServerError(
        f"running as root needs runuser or setpriv to run PostgreSQL as {user}; "
        "install util-linux or run as an ordinary user"
    )


def _child_env() -> dict[str, str]:
    # PG* variables (PGDATA, PGPORT...) would change what the programs do; LC_ALL=C keeps their
    # messages in English, which the locale and port checks read.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def _run(cmd: list[str], *, timeout: float, user: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            _as_user(user) + cmd, capture_output=True, text=True, timeout=timeout, env=_child_env(), cwd="/"
        )
    except subprocess.TimeoutExpired:
        raise ServerError(
            f"{Path(cmd[0]).name} did not finish within {timeout:g} s; "
            "check the server log and the machine's load, then retry"
        ) from None
    except OSError as exc:
        raise ServerError(f"cannot run {cmd[0]}: {exc.strerror}; check the PostgreSQL installation") from None


def _last_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    return lines[-1] if lines else f"exit status {done.returncode}"


# --- processes and files ----------------------------------------------------------------------


def _recorded_pid(cluster: Path) -> int | None:
    """The postmaster pid that ``postmaster.pid`` records, if the file exists and is readable."""
    try:
        first = (cluster / "postmaster.pid").read_text().split("\n", 1)[0].strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return abs(int(first)) if first.lstrip("-").isdigit() and int(first) != 0 else None


def _is_postmaster_of(pid: int, cluster: Path) -> bool | None:
    """Whether ``pid`` is a live postgres working in ``cluster``; None when we cannot tell."""
    if not Path("/proc/self").is_dir():
        return None
    proc = Path(f"/proc/{pid}")
    try:
        cwd = os.readlink(proc / "cwd")
        comm = (proc / "comm").read_text().strip()
    except FileNotFoundError:
        return False  # gone, or a zombie
    except OSError:
        return None  # another user's process
    return cwd == os.path.realpath(cluster) and comm in ("postgres", "postmaster")


def _leftover_pids(cluster: Path) -> list[int]:
    """Live postgres processes working in ``cluster`` (children of a killed postmaster)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, ValueError):
            if _is_postmaster_of(int(proc.name), cluster):
                found.append(int(proc.name))
    return found


def _can_traverse(directory: Path, entry: pwd.struct_passwd) -> bool:
    """Whether user ``entry`` may search ``directory`` and all its ancestors (ACLs ignored)."""
    groups = set(os.getgrouplist(entry.pw_name, entry.pw_gid))
    path = Path(os.path.realpath(directory))
    for part in (path, *path.parents):
        st = part.stat()
        if st.st_uid == entry.pw_uid:
            bit = stat.S_IXUSR
        elif st.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.lchown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, gid)


def _conf_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _binary_major(pg_ctl: str) -> str | None:
    done = _run([pg_ctl, "--version"], timeout=30)
    match = re.search(r"\)\s+(\d+)(?:\.(\d+))?", done.stdout)
    if not match:
        return None
    return match[1] if int(match[1]) >= 10 else f"{match[1]}.{match[2]}"


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _port_message(port: int) -> str:
    return (
        f"port {port} on 127.0.0.1 is already in use by another program; "
        f"stop that program or choose another port with LOCAL_PG_PORT"
    )


# --- the server -------------------------------------------------------------------------------


class ClusterFiles:
    """The cluster on disk: creating it in ``datadir`` (relocated when root must hand it to an
    unprivileged user), its settings, ownership and stale files, and pg_ctl run as its owner."""

    def __init__(self, datadir: Path, port: int = DEFAULT_PORT, dbname: str = DEFAULT_DBNAME) -> None:
        if not 0 < port < 65536:
            raise ServerError(f"port {port} is not a valid TCP port; use 1-65535 (LOCAL_PG_PORT)")
        if not dbname or len(dbname.encode()) > 63:
            raise ServerError(
                f"database name {dbname!r} is empty or too long; use 1 to 63 bytes (LOCAL_PG_DB)"
            )
        self.datadir = Path(os.path.abspath(datadir))
        self.port = port
        self.dbname = dbname

    @property
    def cluster_dir(self) -> Path:
        """The real cluster directory: ``datadir`` itself, or where its symlink points."""
        return Path(os.path.realpath(self.datadir))

    @property
    def log_file(self) -> Path:
        return self.cluster_dir / "log" / "server.log"

    def has_cluster(self) -> bool:
        try:
            return (self.cluster_dir / "PG_VERSION").is_file()
        except PermissionError:
            raise ServerError(
                f"cannot read {self.datadir}: permission denied; run as the user that owns it or remove it"
            ) from None

    def _user(self) -> str | None:
        """Who runs pg_ctl: nobody special unless root; as root, the cluster's owner if it is an
        ordinary user, else :func:`unprivileged_user`."""
        if os.geteuid() != 0:
            return None
        with contextlib.suppress(OSError, KeyError):
            owner = self.cluster_dir.stat().st_uid
            if owner != 0:
                return pwd.getpwuid(owner).pw_name
        return unprivileged_user()

    def _give(self, path: Path) -> None:
        """As root, hand a file we wrote in the cluster to the cluster's owner."""
        if os.geteuid() == 0:
            st = self.cluster_dir.stat()
            os.chown(path, st.st_uid, st.st_gid)

    def _pg_ctl(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        cmd = [find_pg_binary("pg_ctl"), args[0], "-D", str(self.cluster_dir), *args[1:]]
        return _run(cmd, timeout=timeout, user=self._user())


    def _init_cluster(self) -> None:
        initdb = find_pg_binary("initdb")
        user = unprivileged_user()
        if user is not None:
            self._prepare_root_datadir(pwd.getpwnam(user))
        elif self.datadir.exists():
            self._require_empty_dir()
        cmd = [initdb, "-D", str(self.cluster_dir), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8"]
        for locale in ("C.UTF-8", "C"):  # C.UTF-8 may be missing (old glibc, musl)
            done = _run([*cmd, f"--locale={locale}"], timeout=300, user=user)
            if done.returncode == 0 or "locale" not in done.stderr.lower():
                break
        if done.returncode != 0:
            raise ServerError(f"initdb failed in {self.datadir}: {_last_line(done)}; fix the cause and retry")
        (self.cluster_dir / "pg_hba.conf").write_text(HBA_CONF)

    def _prepare_root_datadir(self, entry: pwd.struct_passwd) -> None:
        """As root: an empty directory owned by ``entry`` and reachable by it, at ``datadir`` or
        relocated (``datadir`` then being a symlink to it)."""
        link = self.datadir
        if link.is_symlink() and not link.exists():
            link.unlink()  # the relocated cluster was removed: start afresh
        if link.exists():
            self._require_empty_dir()
        if not link.is_symlink() and not _can_traverse(link.parent, entry):
            if link.is_dir():
                link.rmdir()
            self._relocate(link)
        link.mkdir(mode=0o700, exist_ok=True)
        os.chown(self.cluster_dir, entry.pw_uid, entry.pw_gid)
        os.chmod(self.cluster_dir, 0o700)

    def _require_empty_dir(self) -> None:
        if not self.datadir.is_dir() or any(self.datadir.iterdir()):
            raise ServerError(
                f"{self.datadir} exists but is not a PostgreSQL cluster; remove it or move it away"
            )

    def _relocate(self, link: Path) -> None:
        digest = hashlib.sha1(str(link).encode(), usedforsecurity=False).hexdigest()[:12]
        target = RELOCATED_BASE / f"{os.geteuid()}-{digest}"
        RELOCATED_BASE.mkdir(parents=True, exist_ok=True)
        os.chmod(RELOCATED_BASE, 0o755)
        if target.exists():  # left over from a .pgdata symlink that was deleted
            pid = _recorded_pid(target)
            if pid is not None and _is_postmaster_of(pid, target) is not False:
                raise ServerError(
                    f"a PostgreSQL server (pid {pid}) still runs in {target}, the old cluster of {link}; "
                    f"stop it (pg_ctl -D {target} stop) or remove {target}"
                )
            shutil.rmtree(target)
        target.mkdir(mode=0o700)
        link.symlink_to(target, target_is_directory=True)

    def _check_version(self, pg_ctl: str) -> None:
        cluster = (self.cluster_dir / "PG_VERSION").read_text().strip()
        binaries = _binary_major(pg_ctl)
        if binaries is not None and binaries != cluster:
            raise ServerError(
                f"{self.datadir} was made by PostgreSQL {cluster} but {pg_ctl} is PostgreSQL {binaries}; "
                f"install PostgreSQL {cluster} or remove {self.datadir} (its data is lost)"
            )

    def _fix_ownership(self) -> None:
        cluster = self.cluster_dir
        if os.geteuid() != 0 or cluster.stat().st_uid != 0:
            return
        entry = pwd.getpwnam(self._user() or "nobody")
        _chown_tree(cluster, entry.pw_uid, entry.pw_gid)
        os.chmod(cluster, 0o700)

    def _clear_stale_pid(self) -> None:
        """Remove ``postmaster.pid`` when its process is surely not a postgres of this cluster."""
        cluster = self.cluster_dir
        pid = _recorded_pid(cluster)
        if pid is None or _is_postmaster_of(pid, cluster) is not False:
            return
        deadline = time.monotonic() + 10
        while (leftovers := _leftover_pids(cluster)) and time.monotonic() < deadline:
            time.sleep(0.1)
        if leftovers:
            pids = " ".join(map(str, leftovers))
            raise ServerError(
                f"old PostgreSQL processes still run in {self.datadir}; kill them (kill {pids}) and retry"
            )
        # The socket lock files of the dead postmaster carry the same stale pid.
        for stale in [cluster / "postmaster.pid", *cluster.glob(".s.PGSQL.*")]:
            stale.unlink(missing_ok=True)

    def _write_settings(self) -> None:
        cluster = self.cluster_dir
        socket_path = f"{cluster}/.s.PGSQL.{self.port}"
        socket_dir = f'"{cluster}"' if len(os.fsencode(socket_path)) <= SOCKET_PATH_MAX else ""
        settings = cluster / SETTINGS_FILE
        settings.write_text(
            "# Written by pgmigrate on every start of the embedded server: edits here are lost.\n"
            "listen_addresses = '127.0.0.1'\n"
            f"port = {self.port}\n"
            f"unix_socket_directories = {_conf_quote(socket_dir)}\n"
            "logging_collector = off\n"
        )
        self._give(settings)
        conf = cluster / "postgresql.conf"
        if INCLUDE_LINE not in conf.read_text().splitlines():
            with conf.open("a") as f:
                f.write(f"\n# The embedded server's port and addresses (pgmigrate).\n{INCLUDE_LINE}\n")
        self.log_file.parent.mkdir(mode=0o700, exist_ok=True)
        self._give(self.log_file.parent)

    def _check_port_free(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as postgres does
            try:
                sock.bind(("127.0.0.1", self.port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise ServerError(_port_message(self.port)) from None
                raise ServerError(
                    f"cannot listen on 127.0.0.1 port {self.port}: {exc.strerror}; "
                    "choose another port with LOCAL_PG_PORT"
                ) from None

    def _raise_start_failure(self, done: subprocess.CompletedProcess[str], offset: int) -> None:
        try:
            with self.log_file.open("rb") as f:
                f.seek(offset)
                new = f.read().decode(errors="replace").splitlines()
        except OSError:
            new = []
        tail = [line for line in new if line.strip()][-LOG_TAIL_LINES:]
        if any("Address already in use" in line for line in tail):
            raise ServerError(_port_message(self.port), details=tail)
        if not tail:
            raise ServerError(
                f"pg_ctl could not start the server in {self.datadir}: {_last_line(done)}; "
                "fix the cause and retry"
            )
        raise ServerError(
            f"the PostgreSQL server in {self.datadir} failed to start; see the last lines of {self.log_file}",
            details=tail,
        )


class EmbeddedServer(ClusterFiles):
    """A PostgreSQL cluster in ``datadir``, served on 127.0.0.1:``port``, with database ``dbname``."""

    @property
    def url(self) -> str:
        return self._url(self.port)

    def _url(self, port: int) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{quote(self.dbname, safe='')}"


    def start(self) -> str:
        """Create the cluster if needed, start the server unless running, create the database;
        return the URL."""
        with self._lock():
            pg_ctl = find_pg_binary("pg_ctl")
            if not self.has_cluster():
                self._init_cluster()
            if self.is_running():
                self._check_running_port()
            else:
                self._launch(pg_ctl)
            self._wait_until_ready()
            self._ensure_database()
        return self.url

    def stop(self) -> bool:
        """Stop the server (fast shutdown); return whether it was running."""
        with self._lock():
            return self._stop()

    def is_running(self) -> bool:
        if not self.has_cluster():
            return False
        pid = _recorded_pid(self.cluster_dir)
        if pid is None or _is_postmaster_of(pid, self.cluster_dir) is False:
            return False
        done = self._pg_ctl("status", timeout=30)
        if done.returncode not in (0, 3):
            raise ServerError(
                f"pg_ctl status failed for {self.datadir}: {_last_line(done)}; "
                "check the directory's owner and mode"
            )
        return done.returncode == 0

    def status(self) -> dict[str, object]:
        """running, pid, port, datadir, url, version (the server's when running, else the cluster's)."""
        running = self.is_running()
        port = self._running_port() if running else self.port
        version = self._server_version(port) if running else None
        if version is None and self.has_cluster():
            version = (self.cluster_dir / "PG_VERSION").read_text().strip()
        return {
            "running": running,
            "pid": _recorded_pid(self.cluster_dir) if running else None,
            "port": port,
            "datadir": str(self.datadir),
            "cluster_dir": str(self.cluster_dir),
            "url": self._url(port),
            "version": version,
        }

    def destroy(self) -> None:
        """Stop the server and delete the cluster for good (and the symlink, if relocated)."""
        with self._lock():
            self._stop()
            cluster = self.cluster_dir
            relocated = cluster.parent == Path(os.path.realpath(RELOCATED_BASE))
            ours = relocated or (cluster / "PG_VERSION").is_file()
            if self.datadir.is_symlink():
                self.datadir.unlink()
            if ours and cluster.is_dir():
                shutil.rmtree(cluster)


    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise start/stop of this datadir across processes (flock on its parent directory)."""
        parent = self.datadir.parent
        parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(parent, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _stop(self) -> bool:
        if not self.is_running():
            return False
        done = self._pg_ctl("stop", "-m", "fast", "-w", "-t", str(START_TIMEOUT), timeout=START_TIMEOUT + 30)
        if done.returncode != 0:
            if not self.is_running():
                return False
            raise ServerError(
                f"could not stop the PostgreSQL server in {self.datadir}: {_last_line(done)}; "
                f"see {self.log_file}"
            )
        return True


    def _launch(self, pg_ctl: str) -> None:
        self._check_version(pg_ctl)
        self._fix_ownership()
        self._clear_stale_pid()
        self._write_settings()
        self._check_port_free()
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        done = self._pg_ctl(
            "start", "-w", "-t", str(START_TIMEOUT), "-l", str(self.log_file), timeout=START_TIMEOUT + 30
        )
        if done.returncode != 0:
            self._raise_start_failure(done, offset)

    def _running_port(self) -> int:
        try:
            lines = (self.cluster_dir / "postmaster.pid").read_text().splitlines()
            return int(lines[3])
        except (OSError, IndexError, ValueError):
            return self.port

    def _check_running_port(self) -> None:
        port = self._running_port()
        if port != self.port:
            raise ServerError(
                f"the embedded server in {self.datadir} already runs on port {port}, not {self.port}; "
                f"stop it first or set LOCAL_PG_PORT={port}"
            )


    def _connect(self, dbname: str, port: int | None = None) -> psycopg.Connection:
        from .db import connect
        from .target import Target

        url = f"postgresql://{SUPERUSER}@127.0.0.1:{port or self.port}/{quote(dbname, safe='')}"
        return connect(Target(url + "?connect_timeout=5&sslmode=disable", "embedded server"), watch_client=False)

    def _wait_until_ready(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._connect("postgres").close()
                return
            except ConnectError as exc:
                if time.monotonic() >= deadline:
                    raise ServerError(
                        f"the PostgreSQL server in {self.datadir} does not accept connections on port "
                        f"{self.port}: {_first_line(exc)}; see {self.log_file}"
                    ) from None
                time.sleep(0.2)

    def _ensure_database(self) -> None:
        try:
            with self._connect("postgres") as conn:
                found = conn.execute(
                    "select 1 from pg_database where datname = %s", (self.dbname,)
                ).fetchone()
                if found is None:
                    with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                        conn.execute(sql.SQL("create database {}").format(sql.Identifier(self.dbname)))
        except (psycopg.Error, ConnectError) as exc:
            raise ServerError(
                f"cannot create database {self.dbname} on the embedded server: {_first_line(exc)}; "
                f"see {self.log_file}"
            ) from None

    def _server_version(self, port: int) -> str | None:
        try:
            with self._connect("postgres", port) as conn:
                row = conn.execute("show server_version").fetchone()
        except (psycopg.Error, ConnectError):
            return None
        return str(row[0]) if row else None


def from_environment(project_root: Path, environ: Mapping[str, str] | None = None) -> EmbeddedServer:
    """The project's embedded server: ``project_root/.pgdata``, port ``LOCAL_PG_PORT`` (default
    54329), database ``LOCAL_PG_DB`` (default ``echo``), read from ``environ`` (default
    ``os.environ``; pass ``config.load_environment()`` to honour ``.env`` as well)."""
    env = os.environ if environ is None else environ
    raw = env.get("LOCAL_PG_PORT") or str(DEFAULT_PORT)
    try:
        port = int(raw)
    except ValueError:
        raise ServerError(f"LOCAL_PG_PORT must be a port number, got {raw!r}; fix or unset it") from None
    dbname = env.get("LOCAL_PG_DB") or DEFAULT_DBNAME
    return EmbeddedServer(Path(project_root) / ".pgdata", port=port, dbname=dbname)
