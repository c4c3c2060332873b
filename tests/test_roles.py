"""The analyst role after a real `energy run`: reads marts and ml, writes nothing, no Dagster."""

from __future__ import annotations

from urllib.parse import urlsplit

import psycopg2
import pytest
from dagster_runs import views_of_older_models
from meter_files import write_meter_data, write_meter_file

from energy_assets.cli import main
from energy_assets.warehouse.roles import ANALYST_ROLE, LOADER_ROLE, analyst_url

ANALYST_PASSWORD = "analyst-test-password"  # the test server wants one from every role


def connect_as_analyst(url: str):
    conn = psycopg2.connect(analyst_url(url), password=ANALYST_PASSWORD)
    conn.autocommit = True
    return conn


def fails(conn, statement: str) -> bool:
    with conn.cursor() as cur:
        try:
            cur.execute(statement)
        except psycopg2.errors.InsufficientPrivilege:
            return True
    return False


def test_analyst_reads_marts_and_ml_after_dbt_recreates_them_and_nothing_else(platform, capsys):
    dropbox = platform.settings.dropbox
    write_meter_file(dropbox, "M1_2024-01.csv", "2024-01-01", "2024-01-03", 30, 1)
    write_meter_data(dropbox)
    views_of_older_models(platform.settings)  # so this run's views job recreates every view
    view_before = platform.scalar("select 'marts.fct_gaps'::regclass::oid")
    conn = psycopg2.connect(platform.warehouse_url)
    with conn, conn.cursor() as cur:  # as an older model left it: the views run replaces it
        cur.execute("select pg_get_viewdef('marts.fct_gaps'::regclass)")
        definition = cur.fetchone()[0].rstrip().rstrip(";")
        cur.execute(f"create or replace view marts.fct_gaps as {definition} limit 0")
    conn.close()

    assert main(["run"]) == 0
    conn = psycopg2.connect(platform.warehouse_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"alter role {ANALYST_ROLE} password %s", (ANALYST_PASSWORD,))
    conn.close()
    # dbt dropped and recreated the view: the grant must come from default privileges.
    assert platform.scalar("select 'marts.fct_gaps'::regclass::oid") != view_before

    assert main(["db-url", "--analyst"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert printed.startswith(f"postgresql://{ANALYST_ROLE}@") and printed.endswith(
        "/" + platform.warehouse_url.rsplit("/", 1)[1]
    )
    assert urlsplit(platform.warehouse_url).password not in printed

    clean_rows = platform.scalar("select count(*) from marts.fct_intervals_clean")
    assert clean_rows > 0
    conn = connect_as_analyst(platform.warehouse_url)
    try:
        with conn.cursor() as cur:
            cur.execute("select current_user, count(*) from marts.fct_intervals_clean")
            assert cur.fetchone() == (ANALYST_ROLE, clean_rows)
            cur.execute("select count(*) from marts.fct_gaps")  # a view dbt just recreated
            cur.execute("select count(*) from marts.fct_system_intervals")
            assert cur.fetchone()[0] > 0
            cur.execute("select count(*) from ml.customer_segments")
            cur.execute("select count(*) from ml.segment_centroids")
            cur.execute("select count(*) from raw.files")  # the file register is documented
            assert cur.fetchone()[0] == 2

        for statement in (
            "insert into marts.fct_system_intervals (interval_start) values (now())",
            "update marts.fct_intervals_clean set kw_del = 0",
            "delete from marts.fct_meter_daily",
            "drop table marts.fct_feeder_intervals",
            "drop view marts.dim_meter",
            "create table marts.mine (x int)",
            "delete from ml.customer_segments",
            "insert into raw.readings values ('X', now(), 900, 'kw_del', 1, 1)",
            "insert into raw.meters (meter_id) values ('X')",
            "select count(*) from raw.readings",
            "select count(*) from raw.meters",
        ):
            assert fails(conn, statement), statement
    finally:
        conn.close()

    # Dagster's run history lives in its own database, closed to every role but the platform's.
    with pytest.raises(psycopg2.OperationalError, match="permission denied"):
        psycopg2.connect(analyst_url(platform.dagster_url), password=ANALYST_PASSWORD).close()

    # The loader owns the raw schema and its tables.
    owners = platform.query(
        "select pg_get_userbyid(relowner) as owner, count(*) as n from pg_class"
        " where relnamespace = 'raw'::regnamespace and relkind in ('r', 'p')"
        " and not relispartition group by 1"
    )
    assert owners["owner"].tolist() == [LOADER_ROLE]
    raw_owner = "select nspowner::regrole::text from pg_namespace where nspname = 'raw'"
    assert platform.scalar(raw_owner) == LOADER_ROLE
