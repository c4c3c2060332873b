"""Nobody but the platform's own OS user, with the generated secret, reaches the embedded server;
no command prints a password; secret-bearing files are 0600; no folder above the home changes
mode; the server answering is the home's own, and why a start failed is said in one line."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import psycopg2
import pytest
from conftest import free_port, server_home
from up_process import embedded_url, energy, energy_up, platform_environ

from energy_assets.cli import main
from energy_assets.settings import Settings
from energy_assets.warehouse.postgres import (
    _SERVER_CONF,
    EmbeddedPostgres,
    _bin_dir,
    platform_database,
)
from energy_assets.warehouse.roles import ANALYST_ROLE as ANALYST

SUPERUSER = "postgres"
OS_USER = "pgserver"  # the unprivileged user the server runs as when started by root

pytestmark = pytest.mark.db  # embedded servers of their own
ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="another OS user and pgserver need root")


def settings_for(env: dict[str, str]) -> Settings:
    return Settings.from_env(env)


def passwords(home: Path) -> list[str]:
    return [
        path.read_text().strip().split(":", 4)[4]
        for path in sorted((home / "secrets").glob("*.pgpass"))
    ]


@pytest.fixture(scope="module")
def set_up():
    """A home made by `energy setup` (schema, roles, marts), its server held by `energy db
    start` for the module's tests."""
    with server_home() as home:
        env = platform_environ(home)
        result = energy("setup", env=env)
        assert result.returncode == 0, result.stderr
        started = energy("db", "start", env=env)
        assert started.returncode == 0, started.stderr
        try:
            yield home, env, int(env["ENERGY_PG_PORT"])
        finally:
            assert energy("db", "stop", env=env).returncode == 0


def test_no_connection_without_the_generated_password(set_up):
    home, env, port = set_up
    for url, error in (
        (f"postgresql://postgres@127.0.0.1:{port}/energy", "no password supplied"),
        (f"postgresql://postgres:guess@127.0.0.1:{port}/energy", "password authentication failed"),
        (f"postgresql://{ANALYST}@127.0.0.1:{port}/energy", "no password supplied"),
    ):
        with pytest.raises(psycopg2.OperationalError, match=error):
            psycopg2.connect(url).close()
    hba = (home / "pgdata" / "pg_hba.conf").read_text().splitlines()
    rules = [line.split() for line in hba if line.strip() and not line.startswith("#")]
    assert rules and {rule[-1] for rule in rules} == {"scram-sha-256"}


def test_the_urls_carry_a_passfile_and_work_for_psql(set_up):
    home, env, _ = set_up
    psql = str(_bin_dir() / "psql")
    for args, role in ((["db-url"], SUPERUSER), (["db-url", "--analyst"], ANALYST)):
        url = energy(*args, env=env).stdout.strip()
        assert f"passfile={home}/secrets/{role}.pgpass" in url
        assert not any(secret in url for secret in passwords(home))
        answer = subprocess.run(
            [psql, url, "-Atc", "select current_user"], capture_output=True, text=True
        )
        assert answer.stdout.strip() == role, answer.stderr


def test_the_analyst_cannot_run_programs_as_the_servers_os_user(set_up):
    home, env, port = set_up
    conn = psycopg2.connect(embedded_url(home, port, role=ANALYST))
    try:
        with conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("copy (select 1) to program 'id'")
    finally:
        conn.close()


@needs_root
def test_another_os_user_cannot_connect_nor_read_the_secrets(set_up):
    home, env, _ = set_up
    psql = str(_bin_dir() / "psql")
    for args in (["db-url"], ["db-url", "--analyst"]):
        url = energy(*args, env=env).stdout.strip()
        attempt = subprocess.run(
            [psql, url, "-Atc", "select 1"], user="nobody", capture_output=True, text=True
        )
        assert attempt.returncode == 2 and "password" in attempt.stderr, attempt.stderr
    for path in (home / "secrets").iterdir():
        attempt = subprocess.run(["cat", str(path)], user="nobody", capture_output=True)
        assert attempt.returncode != 0


def test_secret_bearing_files_are_for_their_owner_only(set_up):
    home, _, _ = set_up
    assert stat.S_IMODE((home / "secrets").stat().st_mode) == 0o700
    files = [*(home / "secrets").glob("*.pgpass"), home / "dagster" / "dagster.yaml"]
    assert [stat.S_IMODE(path.stat().st_mode) for path in files] == [0o600] * len(files)
    config = (home / "dagster" / "dagster.yaml").read_text()
    assert len(passwords(home)) == 2
    assert not any(secret in config for secret in passwords(home))


@needs_root
def test_a_home_under_a_closed_folder_keeps_its_data_where_the_server_user_reaches_it():
    """As root in a clone under a 0700 /root: nothing above the home is opened; the data and a
    copy of the binaries live under ENERGY_SERVER_ROOT, the data linked from the home."""
    closed = Path(tempfile.mkdtemp(prefix="energy-closed-"))  # 0700, like /root
    root = Path(tempfile.mkdtemp(prefix="energy-server-root-"))
    os.chmod(root, 0o755)
    try:
        home = closed / "clone" / ".energy"
        home.mkdir(parents=True)
        # The wheel's layout: the binaries find their libraries at ../../../<package>.libs.
        site = closed / "venv" / "site-packages"
        install = _bin_dir().parent
        binaries = site / install.parent.name / install.name
        shutil.copytree(install, binaries, symlinks=True)
        libs = f"{install.parent.name}.libs"
        shutil.copytree(install.parent.parent / libs, site / libs, symlinks=True)
        above = [*reversed(home.parents)]
        modes = {path: path.stat().st_mode for path in above}
        env = platform_environ(home, ENERGY_SERVER_ROOT=str(root))
        settings = settings_for(env)
        server = EmbeddedPostgres(
            settings.pgdata, settings.pg_port, server_root=root, bin_dir=binaries / "bin"
        )
        port = server.start()
        try:
            server.secure(port)
            postmaster = psutil.Process(
                int((home / "pgdata" / "postmaster.pid").read_text().split()[0])
            )
            assert postmaster.username() == OS_USER
            assert (home / "pgdata").is_symlink()
            assert (home / "pgdata").resolve().is_relative_to(root)
            assert Path(postmaster.exe()).is_relative_to(root)  # the copy of the binaries
            conn = psycopg2.connect(server.url("postgres", port=port))
            with conn.cursor() as cur:
                cur.execute("show data_directory")
                assert Path(cur.fetchone()[0]) == (home / "pgdata").resolve()
            conn.close()
        finally:
            server.stop()
        assert {path: path.stat().st_mode for path in above} == modes
    finally:
        shutil.rmtree(closed, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


def test_a_home_made_when_the_server_trusted_everyone_is_closed_at_its_next_start():
    """A data directory initialised with --auth=trust, as homes used to be: the next start
    sets generated passwords, rewrites pg_hba.conf and reloads it."""
    with server_home() as home:
        env = platform_environ(home)
        settings = settings_for(env)
        server = EmbeddedPostgres.of(settings)
        data = server.data_dir
        data.mkdir(parents=True)
        if ROOT:
            account = server._account
            os.chown(data, account[0], account[1])
        server._run("initdb", "--auth=trust", "--encoding=utf8", "-U", "postgres", "-D", str(data))
        with open(data / "postgresql.conf", "a") as conf:
            conf.write(_SERVER_CONF)
        assert not (home / "secrets").exists()

        result = energy("setup", env=env)
        assert result.returncode == 0, result.stderr
        assert energy("db", "start", env=env).returncode == 0
        try:
            port = settings.pg_port
            with pytest.raises(psycopg2.OperationalError, match="no password supplied"):
                psycopg2.connect(f"postgresql://postgres@127.0.0.1:{port}/energy").close()
            for args, role in ((["db-url"], SUPERUSER), (["db-url", "--analyst"], ANALYST)):
                conn = psycopg2.connect(energy(*args, env=env).stdout.strip())
                with conn.cursor() as cur:
                    cur.execute("select current_user")
                    assert cur.fetchone()[0] == role
                conn.close()
        finally:
            energy("db", "stop", env=env)


def test_no_command_prints_the_password_of_an_external_database(platform, capsys, tmp_path):
    secret = urlsplit(platform.warehouse_url).password
    assert secret
    for args in (["setup"], ["db-url"], ["db-url", "--analyst"], ["status"]):
        assert main(args) == 0
    printed = capsys.readouterr()
    assert secret not in printed.out + printed.err
    config = platform.settings.dagster_home / "dagster.yaml"
    assert secret not in config.read_text()
    assert stat.S_IMODE(config.stat().st_mode) == 0o600

    log = tmp_path / "up.log"
    with energy_up(free_port(), log, dict(os.environ)):  # the platform fixture's variables
        pass
    banner = log.read_text()
    assert "Warehouse     postgresql://" in banner and ":***@" in banner
    assert secret not in banner
    assert secret not in (platform.settings.home / "logs" / "dagster.log").read_text()


def test_a_stale_pid_file_naming_another_homes_server_is_not_followed():
    """Home B's postmaster.pid names home A's live postmaster (a reused PID): B starts its own
    server on its own port, and A keeps its data to itself."""
    with server_home() as home_a, server_home() as home_b, contextlib.ExitStack() as stack:
        settings_a = settings_for(platform_environ(home_a))
        settings_b = settings_for(platform_environ(home_b))
        db_a = stack.enter_context(platform_database(settings_a))
        with platform_database(settings_b):
            pass  # B initialised, then stopped
        shutil.copy(home_a / "pgdata" / "postmaster.pid", home_b / "pgdata" / "postmaster.pid")
        with platform_database(settings_b) as db_b:
            assert urlsplit(db_b.warehouse_url).port == settings_b.pg_port != settings_a.pg_port
            conn = psycopg2.connect(db_b.warehouse_url)
            with conn.cursor() as cur:
                cur.execute("show data_directory")
                assert Path(cur.fetchone()[0]) == (home_b / "pgdata").resolve()
            conn.close()
        assert db_a.server.running_port() == settings_a.pg_port


def test_a_port_clash_says_why_in_one_line(tmp_path):
    with server_home() as home, socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = energy("setup", env=platform_environ(home, ENERGY_PG_PORT=str(port)))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("energy setup:")]
    assert line.startswith(f"energy setup: PostgreSQL did not start on 127.0.0.1:{port}: ")
    assert "Address already in use" in line and str(home) in line
