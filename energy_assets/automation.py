"""Jobs and sensors that span domains: the month run from the raw layer to the anomalies, the
sensor that requests it for newly loaded months, and the live-forecast refresh after it.

The sensors stay cheap (one indexed query or a run lookup, a diff against the cursor, return).
"""

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

from energy_assets.anomalies.assets import anomalies
from energy_assets.forecasts.assets import forecast_backtest
from energy_assets.forecasts.schedules import day_ahead_job
from energy_assets.ingest.raw_tables import loaded_months
from energy_assets.marts.assets import monthly_marts, unpartitioned_marts
from energy_assets.marts.dbt_project import models_version
from energy_assets.partitions import MONTH_RUN_TAG, partition_key
from energy_assets.plots.assets import customer_patterns, load_profiles
from energy_assets.resources import Platform
from energy_assets.segments.assets import customer_segments

monthly_marts_job = define_asset_job(
    "monthly_marts_job",
    selection=[
        monthly_marts,
        customer_segments,
        load_profiles,
        customer_patterns,
        forecast_backtest,
        anomalies,
    ],
    tags={MONTH_RUN_TAG: "true"},
    description="Rebuild one month from the raw layer: the dbt marts, then segments, plots and "
    "the forecast backtest, then the anomalies (which judge the backtest's residuals).",
)
unpartitioned_marts_job = define_asset_job(
    "unpartitioned_marts_job",
    selection=[unpartitioned_marts],
    description="Build the dbt views (dimensions, gaps).",
)


@sensor(
    jobs=[monthly_marts_job, unpartitioned_marts_job],
    minimum_interval_seconds=2,
    default_status=DefaultSensorStatus.RUNNING,
    description="Requests one marts run per month touched by newly loaded files.",
)
def loaded_months_sensor(context: SensorEvaluationContext, platform: Platform) -> SensorResult:
    last_file_id = int(context.cursor or 0)
    with platform.connection() as conn:
        months, newest = loaded_months(conn, last_file_id)
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
        version = models_version()
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
def forecasts_after_marts(context: RunStatusSensorContext, platform: Platform):
    """Once a month run (its backtest included) has succeeded, refresh the live forecast,
    unless a refresh is already waiting."""
    if not platform.settings().forecasts:
        return SkipReason("forecasts are off (ENERGY_FORECASTS)")
    waiting = context.instance.get_runs_count(
        RunsFilter(
            job_name=day_ahead_job.name,
            statuses=[DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED],
        )
    )
    if waiting:
        return SkipReason("a live forecast refresh is already queued")
    return RunRequest(run_key=f"live-{context.dagster_run.run_id}")
