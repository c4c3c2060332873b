"""`energy status` on a real platform: months built, the dropbox backlog, a failing dbt test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg2
from dagster import DagsterInstance
from meter_files import write_meter_data, write_meter_file

from energy_assets.cli import main
from energy_assets.commands.session import platform_session
from energy_assets.commands.status import RunResult, latest_month, latest_runs, run_partition
from energy_assets.definitions import defs

ENERGY = str(Path(sys.executable).with_name("energy"))


def latest_by_asset(report: str) -> dict[str, str]:
    lines = report.split("\n\n", 1)[0].splitlines()[1:]
    return dict(line.split(maxsplit=1) for line in lines)


def test_status_reports_latest_months_backlog_and_a_failing_check(platform, capsys):
    dropbox = platform.settings.dropbox
    write_meter_file(dropbox, "M1_2024-01.csv", "2024-01-30", "2024-02-02", 30, 1)
    write_meter_data(dropbox)
    assert main(["run"]) == 0
    capsys.readouterr()

    assert main(["status"]) == 0
    report = capsys.readouterr().out
    latest = latest_by_asset(report)
    for asset in (
        "raw/readings",
        "marts/fct_intervals_clean",
        "marts/fct_system_intervals",
        "ml/customer_segments",
        "plots/load_profiles",
    ):
        assert latest[asset] == "2024-02", (asset, report)
    assert latest["marts/fct_gaps"].endswith("UTC")  # a view: when it was last built
    assert "failing checks: 0" in report and "failed runs: 0" in report
    assert "dropbox backlog: 0 file(s)" in report and report.rstrip().endswith("OK")

    # A file nobody has loaded yet is backlog, not a failure.
    (dropbox / "M2_2024-03.csv").write_text("Start Time,kW del\n2024-03-01 00:00,1\n")
    assert main(["status"]) == 0
    report = capsys.readouterr().out
    assert "dropbox backlog: 1 file(s)\n  M2_2024-03.csv" in report

    # A power factor of 5 (one ingest refuses) in February's raw rows: dbt's range test fails.
    conn = psycopg2.connect(platform.warehouse_url)
    with conn, conn.cursor() as cur:
        cur.execute(
            "insert into raw.readings (meter_id, interval_start, interval_seconds, channel,"
            " value, file_id) select meter_id, interval_start, interval_seconds,"
            " 'power_factor', 5, file_id from raw.readings where meter_id = 'M1'"
            " and channel = 'kw_del' and interval_start = '2024-02-01 12:00+00'"
        )
    conn.close()
    with platform_session(platform.settings), DagsterInstance.get() as instance:
        result = defs.resolve_job_def("monthly_marts_job").execute_in_process(
            partition_key="2024-02", instance=instance, raise_on_error=False
        )
    assert not result.success

    status = subprocess.run([ENERGY, "status"], capture_output=True, text=True, timeout=300)
    assert status.returncode == 1, status.stdout + status.stderr
    report = status.stdout
    failed = [line for line in report.splitlines() if line.startswith("  FAILED")]
    assert len(failed) == 1, report
    assert "marts/fct_intervals_clean" in failed[0] and "power_factor" in failed[0]
    assert "monthly_marts_job [2024-02-01]" in report or "monthly_marts_job [2024-02]" in report
    assert latest_by_asset(report)["raw/readings"] == "2024-02"
    assert report.rstrip().endswith("FAILING")


def test_latest_month_and_runs_are_read_newest_first():
    assert latest_month(["2024-02", "2023-12", "2024-01"]) == "2024-02"
    assert latest_month([]) is None
    assert run_partition({"dagster/partition": "2024-03"}) == "2024-03"
    assert (
        run_partition(
            {
                "dagster/asset_partition_range_start": "2024-01",
                "dagster/asset_partition_range_end": "2024-02",
            }
        )
        == "2024-01..2024-02"
    )
    runs = [
        RunResult("j", "2024-01", "SUCCESS", "b", None),
        RunResult("j", "2024-01", "FAILURE", "a", None),
        RunResult("j", "2024-02", "FAILURE", "c", None),
    ]
    assert [r.run_id for r in latest_runs(runs)] == ["b", "c"]
