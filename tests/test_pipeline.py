"""End to end through `energy run`: dropbox -> raw -> dbt marts, checked against pandas."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pandas as pd
import psycopg2
import pytest
from dagster_runs import views_of_older_models
from ingest_runs import ingest_run
from meter_files import expected_marts, three_meters_two_feeders, write_meter_data, write_meter_file

from energy_assets.cli import main
from energy_assets.commands.run import run_once
from energy_assets.settings import DBT_PROJECT_DIR


def test_energy_run_builds_marts_equal_to_pandas(platform, capsys):
    inputs = three_meters_two_feeders(platform.settings.dropbox)
    expected = expected_marts(inputs)
    targets_before = dbt_step_targets()

    assert main(["run"]) == 0
    summary = capsys.readouterr().out
    assert "6 files: 6 loaded" in summary and "0 quarantined" in summary

    assert (
        platform.scalar("select count(*) from marts.fct_intervals_clean") == expected["clean_rows"]
    )
    gaps = platform.query(
        "select meter_id, gap_start, gap_end, missing_intervals as missing"
        " from marts.fct_gaps order by meter_id, gap_start"
    )
    pd.testing.assert_frame_equal(gaps, expected["gaps"], check_dtype=False)
    # The gap across the month boundary is one gap, not two.
    assert ("M1", pd.Timestamp("2024-01-31 22:00", tz="UTC")) in set(
        zip(gaps.meter_id, gaps.gap_start, strict=True)
    )

    feeder = platform.query(
        "select feeder, interval_start, mw_del, mw_rec, mva_del, mva_rec, mw_net, mva_net, pf_net,"
        " meters_reporting, meters_expected from marts.fct_feeder_intervals"
        " order by feeder, interval_start"
    )
    want = expected["feeder"]
    assert len(feeder) == len(want)
    pd.testing.assert_frame_equal(feeder, want[feeder.columns], check_dtype=False, rtol=1e-9)
    assert (feeder["mw_rec"] > 0).any(), "the input has bi-directional intervals"

    system = platform.query(
        "select interval_start, mw_total, mva_total from marts.fct_system_intervals"
        " order by interval_start"
    )
    pd.testing.assert_frame_equal(system, expected["system"], check_dtype=False, rtol=1e-9)

    # The same feeder profile as a file, through the CLI (seed layout: north.csv).
    north = platform.settings.home / "north.csv"
    assert (
        main(
            ["export", "feeder", "north", "--from", "2024-01", "--to", "2024-02", "-o", str(north)]
        )
        == 0
    )
    exported = pd.read_csv(north)
    assert len(exported) == (want["feeder"] == "North").sum()
    assert exported["MW_net"].to_numpy() == pytest.approx(
        want.loc[want["feeder"] == "North", "mw_net"].to_numpy(), nan_ok=True
    )

    # Analysts' documentation of the marts, with the catalog of the built tables.
    assert main(["docs"]) == 0
    catalog = json.loads((platform.settings.home / "dbt-docs" / "catalog.json").read_text())
    assert "model.energy.fct_feeder_intervals" in catalog["nodes"]

    archived = sorted(p.name for p in platform.settings.archive.rglob("*.csv"))
    assert archived == sorted(
        [
            "meter-data.csv",
            *(
                f"{m}.csv"
                for m in ["M1_2024-01", "M1_2024-02", "M2_2024-01", "M2_2024-02", "M3_2024-01-15"]
            ),
        ]
    )
    assert not any(platform.settings.dropbox.iterdir())
    # The dbt steps succeeded: their target folders are gone, none was left in the project.
    assert not any((platform.settings.home / "logs" / "dbt").iterdir())
    assert dbt_step_targets() <= targets_before


def dbt_step_targets() -> set[str]:
    """Folders a dbt step's invocation left in the project's target folder."""
    return {p.name for p in (DBT_PROJECT_DIR / "target").glob("*_marts-*")}


def test_file_spanning_two_months_touches_both_partitions(platform):
    write_meter_file(platform.settings.dropbox, "M9_x.csv", "2024-03-30", "2024-04-02", 10, 0)
    report = run_once(platform.settings)
    assert report.ok
    assert report.files[0]["months"] == ["2024-03", "2024-04"]
    months = platform.query(
        "select distinct tableoid::regclass::text as part from raw.readings order by 1"
    )["part"].tolist()
    assert months == ["raw.readings_2024_03", "raw.readings_2024_04"]
    assert report.steps[1] == ("marts 2024-03..2024-04", True)
    clean_months = platform.query(
        "select date_trunc('month', interval_start, 'UTC') as m, count(*) as n"
        " from marts.fct_intervals_clean group by 1 order by 1"
    )
    assert clean_months["n"].tolist() == [2 * 96, 1 * 96]


def test_same_file_twice_loads_once_and_broken_sequence_is_quarantined(platform):
    dropbox = platform.settings.dropbox
    frame = write_meter_file(dropbox, "M1_2024-01.csv", "2024-01-01", "2024-01-03", 30, 1)
    broken = frame.copy()
    broken.loc[50, "Start Time"] = "2024-01-01 12:37"  # off the 15-minute grid, file line 52
    broken.to_csv(dropbox / "M2_2024-01.csv", index=False)

    first = ingest_run(platform)
    assert [(r["file"], r["status"]) for r in first] == [
        ("M1_2024-01.csv", "loaded"),
        ("M2_2024-01.csv", "quarantined"),
    ]
    frame.to_csv(dropbox / "M1_2024-01 (copy).csv", index=False)  # same content, new name
    second = ingest_run(platform)
    assert [(r["file"], r["status"]) for r in second] == [("M1_2024-01 (copy).csv", "duplicate")]

    assert platform.scalar("select count(*) from raw.readings") == len(frame) * 4
    assert platform.scalar("select count(distinct meter_id) from raw.readings") == 1
    files = platform.query("select name, status, rule, reason from raw.files order by file_id")
    assert files["status"].tolist() == ["loaded", "quarantined", "duplicate"]
    assert files.loc[1, "rule"] == "off_interval_grid"
    assert "line 52" in files.loc[1, "reason"]

    quarantined = platform.settings.quarantine / "M2_2024-01.csv"
    assert quarantined.exists()
    reason = json.loads(Path(f"{quarantined}.reason.json").read_text())
    assert reason["rule"] == "off_interval_grid" and reason["lines"] == [52]
    assert reason["sample"].startswith("2024-01-01 12:37")


def rebuild_january(platform):
    """Run the month job for 2024-01 as the sensor would; the result, failures included."""
    from dagster import DagsterInstance

    from energy_assets.commands.session import platform_session
    from energy_assets.definitions import defs

    with platform_session(platform.settings):
        return defs.resolve_job_def("monthly_marts_job").execute_in_process(
            partition_key="2024-01", instance=DagsterInstance.get(), raise_on_error=False
        )


def test_rematerializing_a_month_leaves_other_months_alone(platform):
    three_meters_two_feeders(platform.settings.dropbox)
    assert run_once(platform.settings).ok
    tables = ["fct_intervals_clean", "fct_feeder_intervals", "fct_system_intervals"]

    def snapshot():
        return {t: platform.query(f"select * from marts.{t} order by 1, 2") for t in tables}

    before = snapshot()
    assert rebuild_january(platform).success
    after = snapshot()
    for table in tables:
        pd.testing.assert_frame_equal(after[table], before[table])


def test_meter_without_metadata_joins_its_feeder_when_metadata_arrives(platform):
    dropbox = platform.settings.dropbox
    write_meter_file(dropbox, "M1_2024-01.csv", "2024-01-01", "2024-01-02", 30, 1)
    assert run_once(platform.settings).ok
    assert platform.scalar("select count(*) from marts.fct_feeder_intervals") == 0
    assert not platform.scalar("select bool_or(has_metadata) from marts.fct_intervals_clean")

    write_meter_data(dropbox)
    report = run_once(platform.settings)
    assert report.ok
    assert report.files[0]["months"] == ["2024-01"]  # the month holding M1's readings
    feeder = platform.query("select feeder, mw_del from marts.fct_feeder_intervals")
    assert len(feeder) == 96 and set(feeder["feeder"]) == {"North"}
    raw_kw = platform.scalar(
        "select sum(value) from raw.readings where channel = 'kw_del' and meter_id = 'M1'"
    )
    assert feeder["mw_del"].sum() == pytest.approx(raw_kw * 120 / 1000)


def test_unusual_reading_warns_and_platform_defect_blocks_downstream(platform):
    """A negative delivered kW (a reversed CT) is a real reading: its check warns and the month
    builds. A power factor of 5, which ingest refuses, is a platform defect: its check fails
    the month and the models below it keep their previous rows."""
    three_meters_two_feeders(platform.settings.dropbox)
    assert run_once(platform.settings).ok
    conn = psycopg2.connect(platform.warehouse_url)
    with conn, conn.cursor() as cur:
        cur.execute(
            "update raw.readings set value = -5 where meter_id = 'M2' and channel = 'kw_del'"
            " and interval_start = '2024-01-05 12:00+00'"
        )
    conn.close()
    result = rebuild_january(platform)
    assert result.success
    warned = {
        e.check_name: (e.passed, e.severity.value) for e in result.get_asset_check_evaluations()
    }
    assert warned["accepted_range_fct_intervals_clean_kw_del__0"] == (False, "WARN")
    feeder_before = platform.query(
        "select * from marts.fct_feeder_intervals order by feeder, interval_start"
    )

    conn = psycopg2.connect(platform.warehouse_url)
    with conn, conn.cursor() as cur:  # a corrupt raw row: a power factor ingest refuses
        cur.execute(
            "insert into raw.readings (meter_id, interval_start, interval_seconds, channel,"
            " value, file_id) select meter_id, interval_start, interval_seconds,"
            " 'power_factor', 5, file_id from raw.readings where meter_id = 'M2'"
            " and channel = 'kw_del' and interval_start = '2024-01-05 12:00+00'"
        )
    conn.close()
    result = rebuild_january(platform)
    assert not result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["accepted_range_fct_intervals_clean_power_factor__1___1"] is False
    built = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "marts/fct_intervals_clean" in built
    assert "marts/fct_feeder_intervals" not in built  # blocked by the failed check
    kept = list((platform.settings.home / "logs" / "dbt").iterdir())  # the failed build's only
    assert [p.name.startswith("monthly_marts-") for p in kept] == [True]
    assert (kept[0] / "run_results.json").exists() and (kept[0] / "compiled").is_dir()
    pd.testing.assert_frame_equal(
        platform.query("select * from marts.fct_feeder_intervals order by feeder, interval_start"),
        feeder_before,
    )


VIEWS_LIMIT_S = 120  # far beyond a views run; reached only when a run waits on a lock


def views_run_beside(platform, analyst):
    """Run the views job while `analyst` (a connection) keeps its transaction open. Should
    the run still be going after VIEWS_LIMIT_S, end the analyst's session so that it can
    finish, and fail: the run waited on the analyst."""
    from dagster import DagsterInstance

    from energy_assets.commands.session import platform_session
    from energy_assets.definitions import defs

    def end_analyst_session():
        waited.set()
        admin = psycopg2.connect(platform.warehouse_url)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("select pg_terminate_backend(%s)", (analyst.get_backend_pid(),))
        admin.close()

    waited = threading.Event()
    watchdog = threading.Timer(VIEWS_LIMIT_S, end_analyst_session)
    with platform_session(platform.settings):
        watchdog.start()
        try:
            result = defs.resolve_job_def("unpartitioned_marts_job").execute_in_process(
                instance=DagsterInstance.get(), raise_on_error=False
            )
        finally:
            watchdog.cancel()
    assert not waited.is_set(), f"the views run waited {VIEWS_LIMIT_S} s on an open transaction"
    return result


def test_views_rebuild_beside_an_analysts_open_transaction(platform):
    """An analyst's open transaction that read marts.fct_gaps and marts.dim_meter: the views
    run finishes with every view left as it is (the definitions have not changed), where it
    used to wait forever to swap them. A view whose definition did change cannot be swapped
    under the reader: the run fails after a few short lock waits, naming the view and the
    analyst's session, whose transaction carries on; once it has ended, the view is rebuilt."""
    write_meter_file(
        platform.settings.dropbox,
        "M1_2024-01.csv",
        "2024-01-01",
        "2024-01-03",
        30,
        1,
        drop=[("2024-01-02 10:00", "2024-01-02 10:45")],
    )
    assert run_once(platform.settings).ok
    readers = "select count(*) from marts.fct_gaps, marts.dim_meter"

    analyst = psycopg2.connect(platform.warehouse_url)
    with analyst.cursor() as cur:
        cur.execute(readers)  # the transaction stays open, holding its locks
    assert views_run_beside(platform, analyst).success
    analyst.rollback()

    conn = psycopg2.connect(platform.warehouse_url)
    with conn, conn.cursor() as cur:  # a view built by an older version of the model
        cur.execute("select pg_get_viewdef('marts.fct_gaps'::regclass)")
        definition = cur.fetchone()[0].rstrip().rstrip(";")
        cur.execute(f"create or replace view marts.fct_gaps as {definition} limit 0")
    conn.close()
    with analyst.cursor() as cur:
        cur.execute(readers)
    result = views_run_beside(platform, analyst)
    assert not result.success
    message = result.get_step_failure_events()[0].event_specific_data.error.message
    assert '"marts"."fct_gaps" was not replaced' in message
    assert f"pid {analyst.get_backend_pid()}" in message
    with analyst.cursor() as cur:
        cur.execute("select count(*) from marts.fct_gaps")
        assert cur.fetchone() == (0,)  # the analyst still reads the view it began with
    analyst.rollback()

    assert views_run_beside(platform, analyst).success
    assert platform.scalar("select missing_intervals from marts.fct_gaps") == 4
    analyst.close()


def test_views_of_older_models_are_rebuilt_before_the_month_runs(platform):
    """After an upgrade the views still hold the older models' definitions until the views
    run, which follows the month runs; yet a month's relationships tests read dim_customer.
    Here dim_customer is as it was (customers from metadata only, so H1, a meter without
    metadata and its own customer, is missing) and the schema records other models: the start
    rebuilds the views first, and the first month run passes. The views run follows, once for
    these models: the next month run has none."""
    conn = psycopg2.connect(platform.warehouse_url)
    with conn, conn.cursor() as cur:
        cur.execute(
            "create or replace view marts.dim_customer as select customer_id,"
            " count(*) as meters, array_agg(meter_id order by meter_id) as meter_ids,"
            " min(tariff) as tariff, jsonb_object_agg(meter_id, attributes) as attributes_by_meter"
            " from raw.meters where customer_id is not null group by customer_id"
        )
        cur.execute("comment on schema marts is 'views built from models 000000000000'")
    conn.close()
    views_of_older_models(platform.settings)
    write_meter_file(platform.settings.dropbox, "H1_2024-01.csv", "2024-01-01", "2024-01-02", 5, 1)
    report = run_once(platform.settings)
    assert report.steps[1:] == [("marts 2024-01..2024-01", True), ("views", True)]
    assert platform.scalar("select meter_ids from marts.dim_customer") == ["H1"]

    write_meter_file(platform.settings.dropbox, "H1_2024-02.csv", "2024-02-01", "2024-02-02", 5, 1)
    assert run_once(platform.settings).steps[1:] == [("marts 2024-02..2024-02", True)]
