"""The platform's own DDL (`sql/*.sql`) beside analysts who keep transactions open."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor

import psycopg2
import pytest

from energy_assets.settings import SQL_DIR
from energy_assets.warehouse import database
from energy_assets.warehouse.database import SchemaLocked, apply_schema

READERS = "select count(*) from raw.files, raw.file_meters, raw.readings"


def open_reader(url: str):
    """An analyst's session whose transaction read the raw tables and stays open."""
    analyst = psycopg2.connect(url)
    with analyst.cursor() as cur:
        cur.execute(READERS)
    return analyst


def test_a_start_beside_an_open_transaction_applies_unchanged_ddl_without_waiting(platform):
    """`alter table ... add column if not exists` takes an exclusive lock even when the column
    exists: run at every start, it waited forever behind an analyst's open transaction."""
    analyst = open_reader(platform.warehouse_url)
    applying = ThreadPoolExecutor(max_workers=1).submit(apply_schema, platform.warehouse_url)
    try:
        applying.result(timeout=20)  # a wait on the open transaction is a TimeoutError here
    finally:
        analyst.close()  # lets a waiting apply finish


def test_changed_ddl_waits_a_bounded_time_names_the_holder_then_applies(
    platform, tmp_path, monkeypatch
):
    sql_dir = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql_dir)
    (sql_dir / "010_upgrade.sql").write_text(
        "alter table raw.files add column if not exists upgraded text;\n"
    )
    monkeypatch.setattr(database, "SQL_DIR", sql_dir)
    monkeypatch.setattr(database, "SCHEMA_LOCK_TIMEOUT", "1s")
    analyst = open_reader(platform.warehouse_url)

    with pytest.raises(SchemaLocked, match=f"pid {analyst.get_backend_pid()}, "):
        apply_schema(platform.warehouse_url)
    with analyst.cursor() as cur:  # the analyst's transaction carries on
        cur.execute(READERS)
    analyst.rollback()

    apply_schema(platform.warehouse_url)
    columns = "select count(*) from information_schema.columns where column_name = 'upgraded'"
    assert platform.scalar(columns) == 1
    with analyst.cursor() as cur:  # applied now: the next start does not wait again
        cur.execute(READERS)
    apply_schema(platform.warehouse_url)
    analyst.close()
