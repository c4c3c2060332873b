"""Test fixtures: a real PostgreSQL server, and a fresh platform (home + databases) per test.

The server is the embedded one, started once per session in a temporary directory, unless
`ENERGY_DATABASE_URL` points at an existing server, which is then used instead. Each test gets
its own warehouse and Dagster databases on that server, dropped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pandas as pd
import psycopg2
import pytest
from psycopg2 import sql

from energy_assets.marts.dbt_project import ensure_manifest
from energy_assets.settings import VARIABLES, Settings
from energy_assets.warehouse.postgres import SUPERUSER, EmbeddedPostgres, ensure_database

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PLATFORM_ENV = VARIABLES  # cleared for every platform under test


DISPOSABLE_SERVER = ("fsync", "synchronous_commit", "full_page_writes")
"""Turned off on the tests' own server, whose data is thrown away at the end: no test needs it to
survive a power cut, and every commit, database copy and drop waited on the disk for it."""
LONGEST_FIRST = (
    "test_lifecycle.py",
    "test_forecast_assets.py",
    "test_pipeline.py",
    "test_dashboard.py",
    "test_marts.py",
    "test_repair.py",
    "test_up.py",
    "test_celery.py",
    "test_concurrency.py",
    "test_plots.py",
    "test_ingest_faults.py",
    "test_quiet_commands.py",
    "test_forecasting.py",
    "test_security.py",
    "test_collection.py",
    "test_months_sensor.py",
    "test_status.py",
    "test_readers.py",
    "test_deployment.py",
    "test_hostile_values.py",
    "test_anomalies.py",
    "test_roles.py",
    "test_hostile.py",
    "test_formats.py",
    "test_home.py",
    "test_exports.py",
)
"""Test modules by their total time, longest first. The two workers take a module each at a time
in this order (`--no-loadscope-reorder`), so the last module to start is a short one and neither
worker waits long on the other at the end."""
DB_FIXTURES = {"pg_server", "up"}
"""Fixtures behind which a PostgreSQL server runs: a test using any of them is marked `db`."""


def pytest_configure(config: pytest.Config) -> None:
    """The dbt manifest must exist before the code location is imported (at collection)."""
    ensure_manifest()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `db` every test that needs a PostgreSQL server, so `pytest -m "not db"` runs the
    pure tests alone, in seconds; then put the longest modules first (`LONGEST_FIRST`)."""
    for item in items:
        if DB_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.db)
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: same ids, same order


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + database))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """URL of a PostgreSQL server (its `postgres` database) that tests may create databases on."""
    existing = os.environ.get("ENERGY_DATABASE_URL")
    if existing:
        yield with_database(existing, "postgres")
        return
    with server_home() as home:
        server = EmbeddedPostgres(home / "pgdata", free_port())
        port = server.start()
        try:
            url = server_url(server, port)
            for name in DISPOSABLE_SERVER:
                admin(url, sql.SQL("alter system set {} = off").format(sql.Identifier(name)))
            admin(url, sql.SQL("select pg_reload_conf()"))
            yield url
        finally:
            server.stop()


def server_url(server: EmbeddedPostgres, port: int) -> str:
    """The superuser's URL with its password inline: tests build other databases' URLs from it
    by replacing the path, which a `?passfile=` query would not survive."""
    password = server.secrets.password(SUPERUSER)
    return f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{port}/postgres"


@contextlib.contextmanager
def server_home() -> Iterator[Path]:
    """A home for an embedded server outside pytest's temporary root, open to other users for
    traversal (0755) as a folder made with mkdir is: the server's data stays inside it.

    pytest's root is 0700, and as root the server runs as an unprivileged user, which could not
    reach it (the data directory would then live under ENERGY_SERVER_ROOT, linked from the home).
    """
    home = Path(tempfile.mkdtemp(prefix="energy-test-"))
    os.chmod(home, 0o755)
    try:
        yield home
    finally:
        pgdata = home / "pgdata"
        if pgdata.is_symlink():
            shutil.rmtree(pgdata.resolve().parent, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)


@dataclass
class PlatformUnderTest:
    settings: Settings
    warehouse_url: str
    dagster_url: str

    def query(self, sql: str, params: tuple = ()) -> pd.DataFrame:
        conn = psycopg2.connect(self.warehouse_url)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                columns = [c.name for c in cur.description]
                return pd.DataFrame(cur.fetchall(), columns=columns)
        finally:
            conn.close()

    def scalar(self, sql: str, params: tuple = ()):
        return self.query(sql, params).iat[0, 0]


def admin(server_url: str, statement: sql.Composable, params: tuple = ()) -> None:
    conn = psycopg2.connect(server_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
    finally:
        conn.close()


@pytest.fixture(scope="session")
def templates(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prefix of a warehouse and a Dagster database prepared once per session (raw schema, mart
    relations, Dagster's tables, the views run); each test copies them with CREATE DATABASE ...
    TEMPLATE, which takes a fraction of a second instead of a dbt build and Dagster's migrations."""
    from dagster import DagsterInstance

    from energy_assets.commands.run import build_views
    from energy_assets.commands.session import platform_session

    prefix = f"tmpl_{uuid.uuid4().hex[:8]}"
    saved = dict(os.environ)
    try:
        for role in ("warehouse", "dagster"):
            ensure_database(pg_server, f"{prefix}_{role}")
        os.environ.update(
            {
                "ENERGY_HOME": str(tmp_path_factory.mktemp("template-home")),
                "ENERGY_DATABASE_URL": with_database(pg_server, f"{prefix}_warehouse"),
                "ENERGY_DAGSTER_DATABASE_URL": with_database(pg_server, f"{prefix}_dagster"),
            }
        )
        settings = Settings.from_env()
        with platform_session(settings), DagsterInstance.get() as instance:
            # As on a platform that has built a month: the views materialized for these models
            # (`energy run` builds them once per version of the models).
            assert build_views(instance, settings, {})
    finally:
        os.environ.clear()
        os.environ.update(saved)
    admin(
        pg_server,
        sql.SQL("select pg_terminate_backend(pid) from pg_stat_activity where datname like %s"),
        (f"{prefix}_%",),
    )
    yield prefix
    for role in ("warehouse", "dagster"):
        admin(
            pg_server,
            sql.SQL("drop database if exists {} with (force)").format(
                sql.Identifier(f"{prefix}_{role}")
            ),
        )


@contextlib.contextmanager
def copied_databases(pg_server: str, templates: str) -> Iterator[dict[str, str]]:
    """A warehouse and a Dagster database copied from the session's templates, dropped after."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    urls = {}
    for role in ("warehouse", "dagster"):
        admin(
            pg_server,
            sql.SQL("create database {} template {} strategy file_copy").format(
                sql.Identifier(f"{name}_{role}"), sql.Identifier(f"{templates}_{role}")
            ),
        )
        urls[role] = with_database(pg_server, f"{name}_{role}")
    try:
        yield urls
    finally:
        for role in ("warehouse", "dagster"):
            admin(
                pg_server,
                sql.SQL("drop database if exists {} with (force)").format(
                    sql.Identifier(f"{name}_{role}")
                ),
            )


@pytest.fixture
def platform(pg_server: str, templates: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fresh `$ENERGY_HOME` with its own warehouse and Dagster databases on the test server."""
    for key in PLATFORM_ENV:  # remembered by monkeypatch, restored after the test
        monkeypatch.delenv(key, raising=False)
    with copied_databases(pg_server, templates) as urls:
        yield configured_platform(monkeypatch, tmp_path / "home", urls)


def configured_platform(monkeypatch: pytest.MonkeyPatch, home: Path, urls: dict[str, str]):
    monkeypatch.setenv("ENERGY_HOME", str(home))
    monkeypatch.setenv("ENERGY_DATABASE_URL", urls["warehouse"])
    monkeypatch.setenv("ENERGY_DAGSTER_DATABASE_URL", urls["dagster"])
    monkeypatch.setenv("ENERGY_FILE_STABLE_SECONDS", "0")
    # Forecasting adds a minute per loaded month; the tests that exercise it turn it back on.
    monkeypatch.setenv("ENERGY_FORECASTS", "off")
    settings = Settings.from_env()
    settings.ensure_dirs()
    return PlatformUnderTest(settings, urls["warehouse"], urls["dagster"])
