"""`energy status` on a real platform: months built, the dropbox backlog, a failing dbt test."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import dagster_runs
import psycopg2
from dagster import DagsterInstance, DagsterRunStatus
from meter_files import write_meter_data, write_meter_file

from energy_assets.automation import RUN_HOST_TAG, this_host
from energy_assets.cli import main
from energy_assets.commands.session import platform_session
from energy_assets.commands.status import (
    SILENT_RUN_SECONDS,
    RunState,
    Status,
    collect_status,
    duration,
    latest_claims,
    latest_month,
    months_label,
    presumed_dead,
    run_line,
)
from energy_assets.definitions import defs
from energy_assets.ingest.assets import RAW_FILE_METERS, RAW_WEATHER
from energy_assets.ingest.dropbox import RETRY_AFTER_SECONDS

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


def test_status_shows_when_weather_and_file_spans_last_loaded(platform, capsys):
    dropbox = platform.settings.dropbox
    write_meter_file(dropbox, "M1_2024-01.csv", "2024-01-01", "2024-01-02", 30, 1)
    (dropbox / "weather.csv").write_text(
        "site_id,timestamp,air_temperature\n0,2024-01-01 00:00:00,4.5\n0,2024-01-01 01:00:00,4.1\n"
    )
    assert main(["run"]) == 0
    capsys.readouterr()

    assert main(["status"]) == 0
    latest = latest_by_asset(capsys.readouterr().out)
    assert latest["raw/weather"].endswith(" UTC") and latest["raw/file_meters"].endswith(" UTC")
    assert latest["raw/meters"] == "never"  # no metadata file was loaded
    with platform_session(platform.settings), DagsterInstance.get() as instance:
        weather = instance.get_latest_materialization_event(RAW_WEATHER).asset_materialization
        spans = instance.get_latest_materialization_event(RAW_FILE_METERS).asset_materialization
    assert weather.metadata["files"].value == ["weather.csv"]
    assert weather.metadata["rows"].value == 2
    assert spans.metadata["files"].value == ["M1_2024-01.csv"]
    assert spans.metadata["file_rows"].value == 96 * 4  # a day of 15-minute intervals, 4 channels


def test_status_counts_quarantined_files(platform, capsys):
    dropbox = platform.settings.dropbox
    write_meter_file(dropbox, "M1_2024-01.csv", "2024-01-01", "2024-01-02", 30, 1)
    (dropbox / "notes.csv").write_text("what,ever\n1,2\n")
    (dropbox / "empty.csv").write_text("")
    for age, name in enumerate(["empty.csv", "notes.csv", "M1_2024-01.csv"]):  # load order
        os.utime(dropbox / name, (time.time() - 60 - age, time.time() - 60 - age))
    assert main(["run"]) == 0
    capsys.readouterr()

    assert main(["status"]) == 0
    report = capsys.readouterr().out
    assert "quarantined files: 2 in the last 24 h, 2 in total" in report
    latest = report.split("quarantined files:", 1)[1].splitlines()[1:3]
    assert [line.split(" ")[2:4] for line in latest] == [
        ["empty.csv", "(empty_file)"],  # the latest first
        ["notes.csv", "(unknown_header)"],
    ]
    assert report.rstrip().endswith("OK")  # quarantine is the platform at work, not a failure

    with status_of(platform, time.time() + 2 * 24 * 3600) as status:
        assert (status.quarantined.recent, status.quarantined.total) == (0, 2)


@contextlib.contextmanager
def status_of(platform, now: float | None = None):
    """The status as of `now`, read as `energy status` reads it."""
    with (
        platform_session(platform.settings),
        DagsterInstance.get() as instance,
        contextlib.closing(psycopg2.connect(platform.warehouse_url)) as conn,
    ):
        yield collect_status(instance, conn, platform.settings.dropbox, now)


def test_status_shows_runs_waiting_and_under_way_and_fails_on_a_dead_one(platform, capsys):
    here = {RUN_HOST_TAG: this_host()}
    with platform_session(platform.settings), DagsterInstance.get() as instance:
        queued = dagster_runs.create(instance, {**here, "dagster/partition": "2024-03"})
        dagster_runs.enqueue(instance, queued)
        running = dagster_runs.create(instance, {**here, "dagster/partition": "2024-02"})
        dagster_runs.start(instance, running, pid=os.getpid())

    assert main(["status"]) == 0
    report = capsys.readouterr().out
    assert "runs waiting or in progress: 2" in report
    assert f"  monthly_marts_job [2024-03] run {queued.run_id[:8]} queued for" in report
    assert f"  monthly_marts_job [2024-02] run {running.run_id[:8]} started, running for" in report
    assert report.rstrip().endswith("PENDING: 1 run waiting, 1 run in progress")

    # A month run on this host whose process has exited: failing at once.
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    gone = int(finished.stdout)
    with platform_session(platform.settings), DagsterInstance.get() as instance:
        dead = dagster_runs.create(instance, {**here, "dagster/partition": "2024-01"})
        dagster_runs.start(instance, dead, pid=gone)
    assert main(["status"]) == 1
    report = capsys.readouterr().out
    assert "failed runs: 1" in report
    assert re.search(
        rf"  monthly_marts_job \[2024-01\] run {dead.run_id[:8]} started \d+ s ago:"
        rf" its process \(pid {gone}\) is gone\n",
        report,
    )
    assert "runs waiting or in progress: 2" in report
    assert report.rstrip().endswith("FAILING")


def test_status_takes_a_silent_run_it_cannot_look_at_for_dead(platform):
    with platform_session(platform.settings), DagsterInstance.get() as instance:
        elsewhere = dagster_runs.create(instance, {"dagster/partition": "2024-01"})
        dagster_runs.start(instance, elsewhere, pid=os.getpid())  # not tagged with this host

    with status_of(platform) as status:
        assert [r.run_id for r in status.active] == [elsewhere.run_id]
        assert not status.failing
    later = time.time() + SILENT_RUN_SECONDS + 120
    with status_of(platform, later) as status:
        [(run, months)] = status.failed_runs
        assert (run.run_id, months) == (elsewhere.run_id, [date(2024, 1, 1)])
        assert run.dead == "nothing heard of it for 32 min"
        assert status.failing and status.active == []


def test_status_fails_while_a_file_waits_past_its_retry_time(platform):
    (platform.settings.dropbox / "M1_2024-01.csv").write_text("Start Time,kW del\n")
    with status_of(platform) as status:
        assert [f.name for f in status.backlog] == ["M1_2024-01.csv"]
        assert status.verdict() == "PENDING: 1 file in the dropbox"
    later = time.time() + RETRY_AFTER_SECONDS + 60
    with status_of(platform, later) as status:
        assert status.failing
        assert "  M1_2024-01.csv waiting 11 min, past the 10 min after which it is retried" in (
            status.report()
        )


def test_the_latest_run_of_each_month_decides():
    jan, feb, mar = date(2024, 1, 1), date(2024, 2, 1), date(2024, 3, 1)
    runs = [  # newest first
        RunState("m", (feb,), DagsterRunStatus.SUCCESS, "d", 0.0),
        RunState("m", (jan, feb, mar), DagsterRunStatus.FAILURE, "c", 0.0),
        RunState("views", (), DagsterRunStatus.FAILURE, "b", 0.0),
        RunState("m", (jan,), DagsterRunStatus.SUCCESS, "a", 0.0),
    ]
    assert latest_claims(runs) == {"d": [feb], "c": [jan, mar], "b": [None]}
    status = Status(now=0.0, runs=runs)
    assert [(r.run_id, months) for r, months in status.failed_runs] == [
        ("c", [jan, mar]),
        ("b", [None]),
    ]
    assert run_line(runs[1], [jan, mar], 0.0) == (
        "m [2024-01, 2024-03] run c ended 1970-01-01 00:00 UTC (failure)"
    )
    # A retry waiting in the queue does not hide the failure; one under way does.
    retry = RunState("views", (), DagsterRunStatus.QUEUED, "e", 0.0)
    assert len(Status(now=0.0, runs=[retry, *runs]).failed_runs) == 2
    under_way = RunState("views", (), DagsterRunStatus.STARTED, "e", 0.0)
    assert len(Status(now=0.0, runs=[under_way, *runs]).failed_runs) == 1


def test_durations_and_month_labels():
    assert [duration(s) for s in (0, 59, 60, 3599, 3600, 3660 * 24, 90000)] == [
        "0 s",
        "59 s",
        "1 min",
        "59 min",
        "1 h 0 min",
        "1 d 0 h",
        "1 d 1 h",
    ]
    months = [date(2024, 1, 1), date(2024, 2, 1), date(2024, 5, 1)]
    assert months_label(months) == "2024-01..2024-02, 2024-05"
    assert latest_month(["2024-02", "2023-12", "2024-01"]) == "2024-02"
    assert latest_month([]) is None


def test_a_run_is_dead_when_its_process_is_gone_or_it_is_long_silent():
    assert presumed_dead(42, True, SILENT_RUN_SECONDS * 10) is None  # alive, merely quiet
    assert presumed_dead(42, False, 0) == "its process (pid 42) is gone"
    assert presumed_dead(None, None, SILENT_RUN_SECONDS - 1) is None
    assert presumed_dead(None, None, SILENT_RUN_SECONDS + 1) == "nothing heard of it for 30 min"
