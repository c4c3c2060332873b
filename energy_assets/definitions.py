"""The Dagster code location: every asset, check, job, sensor and schedule, and the resources.

Built from the settings read once here; nothing else happens at import (the dbt manifest is
prepared beforehand, see `marts.dbt_project.ensure_manifest`) but binding the resources, which
every user of the definitions does first anyway.
"""

import warnings

from dagster import (
    BetaWarning,
    Definitions,
    EnvVar,
    ExecutorDefinition,
    in_process_executor,
    multiprocess_executor,
)

from energy_assets.anomalies.assets import anomalies
from energy_assets.anomalies.checks import anomaly_rate_usual
from energy_assets.automation import (
    backtest_after_its_history,
    forecasts_after_marts,
    loaded_months_sensor,
    monthly_marts_job,
    unpartitioned_marts_job,
)
from energy_assets.forecasts.assets import day_ahead_forecast, forecast_backtest
from energy_assets.forecasts.checks import forecast_data_sufficient
from energy_assets.forecasts.schedules import (
    day_ahead_job,
    day_ahead_schedule,
    weather_job,
    weather_schedule,
)
from energy_assets.ingest.assets import ingest_dropbox, raw_specs
from energy_assets.ingest.sensors import dropbox_sensor
from energy_assets.marts.assets import PlatformDbt, dbt_project, monthly_marts, unpartitioned_marts
from energy_assets.marts.dbt_project import DBT_EXECUTABLE
from energy_assets.plots.assets import customer_patterns, load_profiles
from energy_assets.resources import Platform
from energy_assets.scaleout import celery_config
from energy_assets.segments.assets import customer_segments
from energy_assets.settings import Settings
from energy_assets.weather.assets import open_meteo_weather


def run_executor(settings: Settings) -> ExecutorDefinition:
    """In-process unless ENERGY_MAX_CONCURRENT is set, then that many steps at once; with
    ENERGY_EXECUTOR=celery, each step on a Celery worker (`energy worker`).

    Each step process pays the code location's import (3-4 s on 2 cores), more than running a
    month's few steps side by side saves there; on more cores the ML and plot steps, which all
    follow the dbt step, can run in parallel.
    """
    if settings.executor == "celery":
        from dagster_celery import celery_executor

        return celery_executor.configured(celery_config(settings))
    if not settings.max_concurrent:
        return in_process_executor
    return multiprocess_executor.configured({"max_concurrent": settings.max_concurrent})


settings = Settings.from_env()

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
        open_meteo_weather,
    ],
    asset_checks=[anomaly_rate_usual, forecast_data_sufficient],
    jobs=[ingest_dropbox, monthly_marts_job, unpartitioned_marts_job, day_ahead_job, weather_job],
    sensors=[
        dropbox_sensor,
        loaded_months_sensor,
        forecasts_after_marts,
        backtest_after_its_history,
    ],
    schedules=[
        day_ahead_schedule(settings.default_timezone),
        weather_schedule(settings.default_timezone),
    ],
    resources={
        "platform": Platform(
            home=EnvVar("ENERGY_HOME"), warehouse_url=EnvVar("ENERGY_WAREHOUSE_URL")
        ),
        "dbt": PlatformDbt(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE),
    },
    executor=run_executor(settings),
)

with warnings.catch_warnings():
    # Binding the resources copies each sensor with its empty owner list, which Dagster passes
    # to its beta `owners` parameter, and that warns; the repository it builds is cached.
    warnings.simplefilter("ignore", BetaWarning)
    defs.get_repository_def()
