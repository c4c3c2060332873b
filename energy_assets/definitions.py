"""The Dagster code location: raw tables, dbt marts, the ingest job and the sensors."""

from dagster import Definitions, EnvVar, in_process_executor
from dagster_dbt import DbtCliResource

from energy_assets.dbt_project import DBT_EXECUTABLE, dbt_project
from energy_assets.marts import monthly_marts, unpartitioned_marts
from energy_assets.ml import customer_segments
from energy_assets.plot_assets import customer_patterns, load_profiles
from energy_assets.raw import ingest_dropbox, raw_specs
from energy_assets.resources import Platform
from energy_assets.sensors import (
    dropbox_sensor,
    loaded_months_sensor,
    monthly_marts_job,
    unpartitioned_marts_job,
)

defs = Definitions(
    assets=[
        *raw_specs,
        monthly_marts,
        unpartitioned_marts,
        customer_segments,
        load_profiles,
        customer_patterns,
    ],
    jobs=[ingest_dropbox, monthly_marts_job, unpartitioned_marts_job],
    sensors=[dropbox_sensor, loaded_months_sensor],
    resources={
        "platform": Platform(
            home=EnvVar("ENERGY_HOME"), warehouse_url=EnvVar("ENERGY_WAREHOUSE_URL")
        ),
        "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE),
    },
    # Each job is one step; running it in the run's own process saves a process start per run.
    executor=in_process_executor,
)
