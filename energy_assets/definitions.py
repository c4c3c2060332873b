"""The Dagster code location: raw tables, dbt marts, the ingest job and the sensors."""

import os

from dagster import (
    Definitions,
    EnvVar,
    ExecutorDefinition,
    in_process_executor,
    multiprocess_executor,
)
from dagster_dbt import DbtCliResource

from energy_assets.anomaly_assets import anomalies, anomaly_rate_usual
from energy_assets.dbt_project import DBT_EXECUTABLE, dbt_project
from energy_assets.forecast_assets import (
    day_ahead_forecast,
    day_ahead_job,
    day_ahead_schedule,
    forecast_backtest,
)
from energy_assets.marts import monthly_marts, unpartitioned_marts
from energy_assets.ml import customer_segments
from energy_assets.plot_assets import customer_patterns, load_profiles
from energy_assets.raw import ingest_dropbox, raw_specs
from energy_assets.resources import Platform
from energy_assets.sensors import (
    dropbox_sensor,
    forecasts_after_marts,
    loaded_months_sensor,
    monthly_marts_job,
    unpartitioned_marts_job,
)


def run_executor(max_concurrent: str | None) -> ExecutorDefinition:
    """In-process unless ENERGY_MAX_CONCURRENT is set, then that many steps at once.

    Each step process pays the code location's import (3-4 s on 2 cores), more than running a
    month's few steps side by side saves there; on more cores the ML and plot steps, which all
    follow the dbt step, can run in parallel.
    """
    if not max_concurrent:
        return in_process_executor
    return multiprocess_executor.configured({"max_concurrent": int(max_concurrent)})


defs = Definitions(
    assets=[
        *raw_specs,
        monthly_marts,
        unpartitioned_marts,
        customer_segments,
        load_profiles,
        customer_patterns,
        forecast_backtest,
        day_ahead_forecast,
        anomalies,
    ],
    asset_checks=[anomaly_rate_usual],
    jobs=[ingest_dropbox, monthly_marts_job, unpartitioned_marts_job, day_ahead_job],
    sensors=[dropbox_sensor, loaded_months_sensor, forecasts_after_marts],
    schedules=[day_ahead_schedule],
    resources={
        "platform": Platform(
            home=EnvVar("ENERGY_HOME"), warehouse_url=EnvVar("ENERGY_WAREHOUSE_URL")
        ),
        "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE),
    },
    executor=run_executor(os.environ.get("ENERGY_MAX_CONCURRENT")),
)
