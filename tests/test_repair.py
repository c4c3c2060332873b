"""A month run killed halfway: `energy status` says so, and the next `energy run` rebuilds
exactly that month, to the rows a clean build gives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import psycopg2
from meter_files import METERS, STEP, expected_marts, write_meter_data, write_meter_file

from energy_assets.commands.run import run_once
from energy_assets.marts.dbt_project import ensure_relations, relations

ENERGY = str(Path(sys.executable).with_name("energy"))
FEBRUARY = "interval_start >= '2024-02-01 00:00+00'"


def wait_for(condition: Callable[[], bool], what: str, limit: float = 300.0) -> None:
    """Poll until `condition` holds; fail naming `what` if it never does."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.2)


def month_files(dropbox: Path, month: str, end: str) -> dict[str, pd.DataFrame]:
    return {
        meter: write_meter_file(dropbox, f"{meter}_{month}.csv", f"{month}-01", end, 30, seed)
        for seed, meter in enumerate(METERS, start=1 if month.endswith("01") else 10)
    }


def energy_status() -> subprocess.CompletedProcess:
    return subprocess.run([ENERGY, "status"], capture_output=True, text=True, timeout=600)


def kill_while_building_february_feeders(platform) -> None:
    """`energy run` loads February and starts its month run, which builds the clean grid and
    then waits on the feeder table, locked here; the whole process group is killed there."""
    blocker = psycopg2.connect(platform.warehouse_url)
    try:
        with blocker.cursor() as cur:
            cur.execute("lock table marts.fct_feeder_intervals in share mode")
        run = subprocess.Popen(
            [ENERGY, "run"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_for(
                lambda: (
                    platform.scalar(
                        f"select count(*) from marts.fct_intervals_clean where {FEBRUARY}"
                    )
                    > 0
                    and platform.scalar(
                        "select count(*) from pg_locks l join pg_class c on c.oid = l.relation"
                        " where not l.granted and c.relname = 'fct_feeder_intervals'"
                    )
                    > 0
                ),
                "February's clean grid built and its feeder build waiting on the lock",
            )
        finally:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    finally:
        blocker.close()
    # The killed run's backend, released, finds its client gone and rolls back.
    wait_for(
        lambda: (
            platform.scalar(
                "select count(*) from pg_stat_activity"
                " where datname = current_database() and pid <> pg_backend_pid()"
            )
            == 0
        ),
        "the killed run's database sessions ended",
    )


def expected_counts(inputs: dict[str, pd.DataFrame]) -> dict[str, int]:
    """Rows of each month-built mart for `inputs`, computed from the files alone."""
    expected = expected_marts(inputs)
    grids = [
        pd.date_range(times.min(), times.max(), freq=STEP)
        for times in (
            pd.to_datetime(f["Start Time"]).dt.tz_localize("UTC") for f in inputs.values()
        )
    ]
    return {
        "fct_intervals_clean": expected["clean_rows"],
        "fct_feeder_intervals": len(expected["feeder"]),
        "fct_system_intervals": len(expected["system"]),
        "fct_meter_hourly": sum(grid.floor("h").nunique() for grid in grids),
        "fct_meter_daily": sum(grid.floor("D").nunique() for grid in grids),
    }


def test_energy_run_repairs_the_month_a_killed_run_left_half_built(platform):
    dropbox = platform.settings.dropbox
    january = month_files(dropbox, "2024-01", "2024-02-01")
    write_meter_data(dropbox)
    assert run_once(platform.settings).ok
    february = month_files(dropbox, "2024-02", "2024-02-08")

    kill_while_building_february_feeders(platform)
    assert platform.scalar("select count(*) from raw.files where status = 'loaded'") == 7
    assert platform.scalar(f"select count(*) from marts.fct_feeder_intervals where {FEBRUARY}") == 0
    assert platform.scalar(f"select count(*) from marts.fct_system_intervals where {FEBRUARY}") == 0

    # The killed run stays STARTED (nothing marks it failed without run monitoring): status
    # sees that its process is gone, and which month needs rebuilding.
    status = energy_status()
    assert status.returncode == 1, status.stdout + status.stderr
    [failed] = [line for line in status.stdout.splitlines() if "is gone" in line]
    assert failed.startswith("  monthly_marts_job [2024-02] run ") and " started " in failed
    assert "months to rebuild: 1\n  2024-02\n" in status.stdout
    assert status.stdout.rstrip().endswith("FAILING")

    report = run_once(platform.settings)  # nothing in the dropbox
    assert report.files == []
    assert report.steps == [
        ("ingest 0 files", True),
        ("marts 2024-02..2024-02", True),
    ]
    inputs = {m: pd.concat([january[m], february[m]], ignore_index=True) for m in METERS}
    counts = {
        table: platform.scalar(f"select count(*) from marts.{table}")
        for table in expected_counts(inputs)
    }
    assert counts == expected_counts(inputs)
    feeder = platform.query(
        "select feeder, interval_start, mw_net from marts.fct_feeder_intervals"
        " order by feeder, interval_start"
    )
    want = expected_marts(inputs)["feeder"]
    pd.testing.assert_frame_equal(feeder, want[feeder.columns], check_dtype=False, rtol=1e-9)

    again = run_once(platform.settings)  # built: nothing left to repair
    assert again.steps == [("ingest 0 files", True)]
    status = energy_status()  # the dead run is superseded by the repair
    assert status.returncode == 0, status.stdout + status.stderr
    assert "failed runs: 0" in status.stdout and status.stdout.rstrip().endswith("OK")


def test_a_month_table_new_to_the_warehouse_comes_empty_and_the_others_keep_their_rows(platform):
    """A release that adds a month-partitioned model starts on a warehouse without its table:
    the start creates that table alone, empty (its months are then to build), and the other
    marts keep every row (building them all `--empty` ran their pre-hooks' delete of the
    default window, the whole history)."""
    month_files(platform.settings.dropbox, "2024-01", "2024-02-01")
    write_meter_data(platform.settings.dropbox)
    assert run_once(platform.settings).ok
    tables = [name for _, name in relations(monthly=True)]
    before = {t: platform.scalar(f"select count(*) from marts.{t}") for t in tables}
    assert before["fct_meter_daily"] == 3 * 31 and before["fct_intervals_clean"] > 0
    conn = psycopg2.connect(platform.warehouse_url)
    with conn, conn.cursor() as cur:
        cur.execute("drop table marts.fct_meter_daily")  # as a release without the model left it
    conn.close()

    ensure_relations(platform.warehouse_url)
    after = {t: platform.scalar(f"select count(*) from marts.{t}") for t in tables}
    assert after == {**before, "fct_meter_daily": 0}
