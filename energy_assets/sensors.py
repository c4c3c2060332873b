"""Sensors: dropped files -> ingest runs; loaded files -> month runs through the marts;
finished month runs -> a refresh of the live forecast.

They stay cheap (a directory listing or one indexed query, a diff against the cursor, return);
all parsing happens inside the runs they request.
"""

import hashlib
import json
import os
import time
from pathlib import Path

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    RunStatusSensorContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    run_status_sensor,
    sensor,
)

from energy_assets import warehouse
from energy_assets.anomaly_assets import anomalies
from energy_assets.dbt_project import dbt_project
from energy_assets.forecast_assets import day_ahead_job, forecast_backtest
from energy_assets.marts import monthly_marts, unpartitioned_marts
from energy_assets.ml import customer_segments
from energy_assets.partitions import partition_key
from energy_assets.platform import MONTH_RUN_TAG
from energy_assets.plot_assets import customer_patterns, load_profiles
from energy_assets.raw import ingest_dropbox
from energy_assets.resources import Platform
from energy_assets.settings import Settings

RETRY_AFTER_SECONDS = 600  # a requested file still in the dropbox after this is requested again

monthly_marts_job = define_asset_job(
    "monthly_marts_job",
    selection=[monthly_marts, customer_segments, load_profiles, customer_patterns,
               forecast_backtest, anomalies],  # fmt: skip
    tags={MONTH_RUN_TAG: "true"},
    description="Rebuild one month from the raw layer: the dbt marts, then segments, plots and "
    "the forecast backtest, then the anomalies (which judge the backtest's residuals).",
)
unpartitioned_marts_job = define_asset_job(
    "unpartitioned_marts_job",
    selection=[unpartitioned_marts],
    description="Build the dbt views (dimensions, gaps).",
)


def dropbox_listing(dropbox: Path) -> dict[str, list[float]]:
    """name -> [size, mtime] for every entry waiting in the dropbox (symlinks not followed)."""
    listing = {}
    with os.scandir(dropbox) as entries:
        for entry in entries:
            if entry.name.startswith(".") or entry.is_dir(follow_symlinks=False):
                continue
            stat = entry.stat(follow_symlinks=False)
            listing[entry.name] = [stat.st_size, stat.st_mtime]
    return listing


def plan_dropbox_tick(
    listing: dict[str, list[float]], cursor: dict, now: float, stable_seconds: float
) -> tuple[list[str], dict]:
    """Which files to ingest now, and the next cursor.

    A file is ready once two looks in a row found the same size and modification time and it
    has been left alone for `stable_seconds`; it is then requested once (again only if it is
    still waiting after `RETRY_AFTER_SECONDS`, e.g. after a failed run).
    """
    seen = cursor.get("seen", {})
    requested = cursor.get("requested", {})
    ready = []
    for name, signature in sorted(listing.items()):
        previous = requested.get(name)
        if previous and previous[:2] == signature and now - previous[2] < RETRY_AFTER_SECONDS:
            continue
        if seen.get(name) == signature and now - signature[1] >= stable_seconds:
            ready.append(name)
    next_requested = {
        name: sig for name, sig in requested.items() if name in listing and name not in ready
    }
    next_requested.update({name: [*listing[name], now] for name in ready})
    return ready, {"seen": listing, "requested": next_requested}


@sensor(
    job=ingest_dropbox,
    minimum_interval_seconds=2,
    default_status=DefaultSensorStatus.RUNNING,
    description="Watches the dropbox and requests one ingest run per batch of stable files.",
)
def dropbox_sensor(context: SensorEvaluationContext, platform: Platform) -> SensorResult:
    settings = platform.settings()
    settings.dropbox.mkdir(parents=True, exist_ok=True)
    cursor = json.loads(context.cursor) if context.cursor else {}
    listing = dropbox_listing(settings.dropbox)
    ready, next_cursor = plan_dropbox_tick(
        listing, cursor, time.time(), settings.file_stable_seconds
    )
    requests = []
    if ready:
        key = hashlib.sha1(json.dumps([[n, *listing[n]] for n in ready]).encode()).hexdigest()
        requests.append(
            RunRequest(
                run_key=f"ingest-{key}",
                run_config={"ops": {"ingest_files": {"config": {"files": ready}}}},
                tags={"energy/files": str(len(ready))},
            )
        )
    return SensorResult(run_requests=requests, cursor=json.dumps(next_cursor))


def loaded_months(warehouse_url: str, after_file_id: int) -> tuple[list, int]:
    """Months touched by files loaded after `after_file_id`, and the newest file id seen."""
    conn = warehouse.connect(warehouse_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "select coalesce(max(file_id), %s),"
                " coalesce(array_agg(distinct m order by m)"
                "   filter (where status = 'loaded' and m is not null), '{}')"
                " from raw.files left join lateral unnest(months) m on true where file_id > %s",
                (after_file_id, after_file_id),
            )
            last, months = cur.fetchone()
    finally:
        conn.close()
    return months, last


@sensor(
    jobs=[monthly_marts_job, unpartitioned_marts_job],
    minimum_interval_seconds=2,
    default_status=DefaultSensorStatus.RUNNING,
    description="Requests one marts run per month touched by newly loaded files.",
)
def loaded_months_sensor(context: SensorEvaluationContext, platform: Platform) -> SensorResult:
    last_file_id = int(context.cursor or 0)
    months, newest = loaded_months(platform.warehouse_url, last_file_id)
    requests = [
        RunRequest(
            job_name=monthly_marts_job.name,
            partition_key=partition_key(month),
            run_key=f"month-{partition_key(month)}-upto-{newest}",
        )
        for month in months
    ]
    if months:
        # The views need building once per version of the models, after the first month run
        # (same tag, so the queue runs it after the month runs); the run key makes repeats no-ops.
        version = hashlib.sha1(dbt_project.manifest_path.read_bytes()).hexdigest()[:12]
        requests.append(
            RunRequest(
                job_name=unpartitioned_marts_job.name,
                run_key=f"views-{version}",
                tags={MONTH_RUN_TAG: "true"},
            )
        )
    return SensorResult(run_requests=requests, cursor=str(newest))


@run_status_sensor(
    run_status=DagsterRunStatus.SUCCESS,
    monitored_jobs=[monthly_marts_job],
    request_job=day_ahead_job,
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=5,
)
def forecasts_after_marts(context: RunStatusSensorContext):
    """Once a month run (its backtest included) has succeeded, refresh the live forecast,
    unless a refresh is already waiting."""
    if not Settings.from_env().forecasts:
        return SkipReason("forecasts are off (ENERGY_FORECASTS)")
    waiting = context.instance.get_runs_count(RunsFilter(
        job_name=day_ahead_job.name,
        statuses=[DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED],
    ))  # fmt: skip
    if waiting:
        return SkipReason("a live forecast refresh is already queued")
    return RunRequest(run_key=f"live-{context.dagster_run.run_id}")
