"""Jobs and sensors that span domains: the month run from the raw layer to the anomalies, the
sensor that requests it for newly loaded months, and the live-forecast refresh after it; and
which months need a month run (built from older files than they hold, or never fully built).

The sensors stay cheap (one indexed query or a run lookup, a diff against the cursor, return);
only a first start, with no cursor yet, compares every month's files with its materializations.
"""

import json
import os
import socket
import time
from collections.abc import Mapping
from datetime import date, datetime

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
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
from psycopg2.extensions import connection

from energy_assets.anomalies.assets import anomalies
from energy_assets.backlog import month_priority, range_priority, sensor_runs
from energy_assets.forecasts.assets import forecast_backtest
from energy_assets.forecasts.schedules import day_ahead_job
from energy_assets.ingest.assets import ingest_dropbox
from energy_assets.ingest.raw_tables import corrected_months, loaded_months, month_load_times
from energy_assets.marts.assets import monthly_marts, unpartitioned_marts
from energy_assets.marts.dbt_project import models_version
from energy_assets.months import months_between, next_month
from energy_assets.partitions import (
    MONTH_RUN_TAG,
    PRIORITY_TAG,
    month_of_key,
    partition_key,
    range_tags,
    run_months,
)
from energy_assets.plots.assets import customer_patterns, load_profiles
from energy_assets.resources import Platform
from energy_assets.segments.assets import customer_segments

MONTH_ASSETS = [
    monthly_marts,
    customer_segments,
    load_profiles,
    customer_patterns,
    forecast_backtest,
    anomalies,
]
WAITING = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED]
"""Run states before a run's process starts: such a run reads every file loaded until then."""
UNFINISHED = [*WAITING, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]
PENDING_FILE_SECONDS = 24 * 3600
"""How long the months sensor looks for a file id it skipped: a load still in progress commits
within it, one rolled back never does."""
RUN_HOST_TAG = "energy/host"
"""Where a run executes (see `this_host`): there, a run whose process is gone can be told."""
MODELS_TAG = "energy/models"
"""The version of the dbt models a views run built (`models_version`)."""
HISTORY_KEY = AssetKey(["marts", "fct_intervals_clean"])
"""The mart a month's backtest reads the weeks before the month from."""
BACKTEST_KEYS = [forecast_backtest.key, anomalies.key]
"""What a month rebuilds when the month before it is built later: the backtest, and the
anomalies that judge its residuals."""


def this_host() -> str:
    """This machine and its process namespace (a container has its own), to tag runs with."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:  # no /proc: the machine alone
        namespace = ""
    return f"{socket.gethostname()} {namespace}".strip()


monthly_marts_job = define_asset_job(
    "monthly_marts_job",
    selection=MONTH_ASSETS,
    tags={MONTH_RUN_TAG: "true"},
    description="Rebuild one month from the raw layer: the dbt marts, then segments, plots and "
    "the forecast backtest, then the anomalies (which judge the backtest's residuals).",
)
unpartitioned_marts_job = define_asset_job(
    "unpartitioned_marts_job",
    selection=[unpartitioned_marts],
    description="Build the dbt views (dimensions, gaps).",
)


def latest_builds(instance: DagsterInstance) -> list[dict[date, float]]:
    """Per month asset, when it was last materialized, per month (a Unix time)."""
    builds = []
    for key in (key for assets in MONTH_ASSETS for key in assets.keys):
        latest = instance.get_latest_storage_id_by_partition(
            key, DagsterEventType.ASSET_MATERIALIZATION
        )
        records = (
            instance.fetch_materializations(
                AssetRecordsFilter(asset_key=key, storage_ids=list(latest.values())),
                limit=len(latest),
            ).records
            if latest
            else []
        )
        built: dict[date, float] = {}
        for record in records:
            month = month_of_key(record.partition_key)
            built[month] = max(built.get(month, 0.0), record.timestamp)
        builds.append(built)
    return builds


def stale_months(loaded: Mapping[date, datetime], builds: list[dict[date, float]]) -> list[date]:
    """Months with a month asset never materialized, or materialized before the month's newest
    loaded file: a month run killed halfway leaves its later assets behind.

    `loaded` maps each month to when its newest file loaded; both times are the platform's
    clock (its PostgreSQL and its processes run on one machine, or agree on the time).
    """
    return sorted(
        month
        for month, at in loaded.items()
        if any(built.get(month, float("-inf")) < at.timestamp() for built in builds)
    )


def months_to_build(instance: DagsterInstance, conn: connection) -> list[date]:
    """Months holding loaded data that their month assets do not reflect yet."""
    return stale_months(month_load_times(conn), latest_builds(instance))


def latest_build(instance: DagsterInstance, key: AssetKey, month: date) -> float | None:
    """When `key` was last materialized for `month` (a Unix time), or None."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, asset_partitions=[partition_key(month)]), limit=1
    ).records
    return records[0].timestamp if records else None


def backtest_behind(instance: DagsterInstance, month: date) -> date | None:
    """The month after `month` when its backtest ran before `month` was last built: its first
    weeks were forecast without, or trained on an older copy of, that history (a backlog built
    newest first; a correction). None when it is current or not built."""
    following = next_month(month)
    backtested = latest_build(instance, forecast_backtest.key, following)
    built = latest_build(instance, HISTORY_KEY, month)
    if backtested is None or built is None or backtested >= built:
        return None
    return following


def views_built(instance: DagsterInstance, version: str) -> bool:
    """Whether a views run of these models has succeeded. Views are always current, so one run
    per version of the models materializes them; running them after every month run would
    only retest the whole history."""
    done = RunsFilter(
        job_name=unpartitioned_marts_job.name,
        statuses=[DagsterRunStatus.SUCCESS],
        tags={MODELS_TAG: version},
    )
    return instance.get_runs_count(done) > 0


def waiting_runs(instance: DagsterInstance) -> dict[date, list[DagsterRun]]:
    """The month runs waiting to build each month: they will read every file loaded before
    they start."""
    runs = instance.get_runs(RunsFilter(job_name=monthly_marts_job.name, statuses=WAITING))
    waiting: dict[date, list[DagsterRun]] = {}
    for run in runs:
        for month in run_months(run.tags):
            waiting.setdefault(month, []).append(run)
    return waiting


def make_way(instance: DagsterInstance, runs: list[DagsterRun], corrected: set[date]) -> set[date]:
    """Let corrections of months waiting in `runs` leave the queue before the history beside
    them. A queued run of several months is cancelled and its months returned, to be requested
    again with each corrected month in a run of its own; any other run rides along, raised to
    its correction's priority."""
    released: set[date] = set()
    for run in runs:
        months = run_months(run.tags)
        if len(months) > 1 and instance.run_coordinator.cancel_run(run.run_id):
            released.update(months)
            continue
        priority = range_priority(months, corrected)
        if int(run.tags.get(PRIORITY_TAG, "0")) < priority:
            instance.add_run_tags(run.run_id, {PRIORITY_TAG: str(priority)})
    return released


def loading(instance: DagsterInstance) -> bool:
    """Whether an ingest run waits or is under way: its files commit one by one."""
    runs = RunsFilter(job_name=ingest_dropbox.name, statuses=UNFINISHED)
    return instance.get_runs_count(runs) > 0


def read_cursor(text: str | None) -> tuple[int, dict[int, float]]:
    """The months sensor's cursor: the newest file id handled, and the ids below it not seen
    yet, with when they were first missed. A bare id is a cursor from before pending ids."""
    if text is None or text.isdigit():
        return int(text or 0), {}
    cursor = json.loads(text)
    return cursor["after"], {int(k): since for k, since in cursor["pending"].items()}


def advance(
    after: int, pending: dict[int, float], newest: int, found: list[int], now: float
) -> tuple[int, dict[int, float]]:
    """The cursor after a tick that found the file ids `found`, the newest `newest`.

    An id is handed out when a file's load begins and seen when it commits, so a long load may
    show up after shorter ones with higher ids: the ids skipped below the newest are looked for
    again until they appear, or PENDING_FILE_SECONDS have passed.
    """
    seen = set(found)
    kept = {i: since for i, since in pending.items() if i not in seen}
    kept.update({i: now for i in range(after + 1, newest) if i not in seen})
    return max(after, newest), {i: s for i, s in kept.items() if now - s < PENDING_FILE_SECONDS}


def month_request(
    first: date, last: date, corrected: set[date], key: str, tags: dict[str, str]
) -> RunRequest:
    """A month run of the months first..last: one partition, or a single-run backfill."""
    priority = {PRIORITY_TAG: str(range_priority(months_between(first, last), corrected))}
    if first == last:
        return RunRequest(
            job_name=monthly_marts_job.name,
            partition_key=partition_key(first),
            run_key=f"month-{partition_key(first)}-{key}",
            tags={**tags, **priority},
        )
    return RunRequest(
        job_name=monthly_marts_job.name,
        run_key=f"months-{partition_key(first)}-{partition_key(last)}-{key}",
        tags={**tags, **range_tags(first, last), **priority},
    )


@sensor(
    jobs=[monthly_marts_job, unpartitioned_marts_job],
    minimum_interval_seconds=2,
    default_status=DefaultSensorStatus.RUNNING,
    description="Requests marts runs for the months touched by newly loaded files, unless one "
    "is already waiting for that month: a run per month, a backlog of history as single-run "
    "backfills; newer months and corrections leave the queue first.",
)
def loaded_months_sensor(
    context: SensorEvaluationContext, platform: Platform
) -> SensorResult | SkipReason:
    """A month with a run waiting gets no other: that run reads the new files too, and a
    correction raises its priority (or, waiting in a backfill of several months, takes its
    month out of it into a run of its own). A month whose run is under way gets one more, to
    run after it. A backlog of history goes as single-run backfills (`sensor_runs`). On a
    first start (no cursor) the months already built from their files are adopted:
    only months that need a run get one. While files are loading it waits, so that one tick
    sees a whole drop and a backlog is not cut into the pieces that happened to be loaded."""
    if loading(context.instance):
        return SkipReason("files are loading; their months are requested once the ingest ends")
    after, pending = read_cursor(context.cursor)
    with platform.connection() as conn:
        months, newest, found = loaded_months(conn, after, list(pending))
        if context.cursor is None:
            months, corrected = months_to_build(context.instance, conn), set()
        else:
            corrected = corrected_months(conn, found) if months else set()
    after, pending = advance(after, pending, newest, found, time.time())
    waiting = waiting_runs(context.instance) if months else {}
    holding = {run.run_id: run for month in corrected & waiting.keys() for run in waiting[month]}
    released = make_way(context.instance, list(holding.values()), corrected)
    wanted = sorted({m for m in months if m not in waiting} | released)
    settings = platform.settings()
    # The run queue's per-month limit cannot see a backfill's months: backfills only where
    # month runs go one at a time (more at once run the months side by side instead).
    range_from = settings.backlog_range_months if settings.month_run_concurrency == 1 else 0
    tags = {RUN_HOST_TAG: this_host()}
    # A file id is found once, so the newest one found names this tick's requests.
    requests = [
        month_request(first, last, corrected, f"upto-{max(found)}", tags)
        for first, last in sensor_runs(wanted, corrected, range_from)
    ]
    if requests:
        # The views need building once per version of the models, after month runs (same
        # tag, lowest priority, so the queue runs it after them); the run key makes repeats
        # no-ops.
        version = models_version()
        requests.append(
            RunRequest(
                job_name=unpartitioned_marts_job.name,
                run_key=f"views-{version}",
                tags={MONTH_RUN_TAG: "true", MODELS_TAG: version, **tags},
            )
        )
    cursor = json.dumps({"after": after, "pending": pending})
    return SensorResult(run_requests=requests, cursor=cursor)


def after_month_runs(request_job):
    """A sensor evaluated after each successful month run, which may request `request_job`."""
    return run_status_sensor(
        run_status=DagsterRunStatus.SUCCESS,
        monitored_jobs=[monthly_marts_job],
        request_job=request_job,
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=5,
    )


@after_month_runs(day_ahead_job)
def forecasts_after_marts(context: RunStatusSensorContext, platform: Platform):
    """Once a month run (its backtest included) has succeeded, refresh the live forecast,
    unless a refresh is already waiting or the run rebuilt no marts (a month backtested again,
    `backtest_after_its_history`: the live forecast reads the marts, not the backtest)."""
    if not platform.settings().forecasts:
        return SkipReason("forecasts are off (ENERGY_FORECASTS)")
    selected = context.dagster_run.asset_selection  # None or empty: the whole job
    if selected and HISTORY_KEY not in selected:
        return SkipReason("the run rebuilt no marts: the live forecast stands")
    waiting = context.instance.get_runs_count(
        RunsFilter(job_name=day_ahead_job.name, statuses=WAITING)
    )
    if waiting:
        return SkipReason("a live forecast refresh is already queued")
    return RunRequest(
        run_key=f"live-{context.dagster_run.run_id}", tags={RUN_HOST_TAG: this_host()}
    )


@after_month_runs(monthly_marts_job)
def backtest_after_its_history(context: RunStatusSensorContext, platform: Platform):
    """Once a month run has succeeded, backtest the month after it again if that month's
    backtest ran before it (`backtest_behind`), unless a run of that month is waiting."""
    if not platform.settings().forecasts:
        return SkipReason("forecasts are off (ENERGY_FORECASTS)")
    months = run_months(context.dagster_run.tags)
    behind = backtest_behind(context.instance, months[-1]) if months else None
    if behind is None:
        return SkipReason("the month after it was backtested with its history, or not yet")
    if behind in waiting_runs(context.instance):
        return SkipReason(f"a run of {behind:%Y-%m} is waiting: it backtests the month again")
    return RunRequest(
        run_key=f"backtest-{context.dagster_run.run_id}",
        partition_key=partition_key(behind),
        asset_selection=BACKTEST_KEYS,
        tags={RUN_HOST_TAG: this_host(), PRIORITY_TAG: str(month_priority(behind, False))},
    )
