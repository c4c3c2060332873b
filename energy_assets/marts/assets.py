"""dbt models as Dagster assets: month-partitioned incremental models, and the rest."""

import importlib.metadata
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, AssetKey, BackfillPolicy
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets
from packaging.version import Version

from energy_assets.marts.dbt_project import (
    DBT_BUILD,
    MANIFEST,
    month_environment,
    restore_parse,
    save_parse,
)
from energy_assets.partitions import monthly_partitions
from energy_assets.resources import Platform
from energy_assets.scaleout import DBT, WAREHOUSE_POOL, step_tags
from energy_assets.settings import DBT_PROJECT_DIR, environment_added

MONTHLY = "tag:monthly"

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


class EnergyDbtTranslator(DagsterDbtTranslator):
    """Models keyed by their schema (`marts/fct_gaps`); sources stay `raw/<table>`."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return super().get_asset_key(dbt_resource_props)
        return AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return dbt_resource_props["schema"]


translator = EnergyDbtTranslator()


class PlatformDbt(DbtCliResource):
    """dagster-dbt's resource, without the two things it does before every command that the
    platform does not need: `dbt --version` in a subprocess (which imports all of dbt), and an
    adapter opened in this process for row counts and column metadata, never fetched here.
    Together 4 s of every dbt step; the platform's dbt is the package beside this one."""

    @cached_property
    def _cli_version(self) -> Version:
        return Version(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Any) -> None:
        return None

    def build(
        self,
        context: AssetExecutionContext,
        home: Path,
        environment: Mapping[str, str] | None = None,
    ) -> Iterator:
        """`dbt build` for the step, `environment` added to dbt's, its events streamed, in a
        target folder of its own under `home/logs/dbt` that starts from the home's last parse:
        removed once the build succeeds, kept (compiled SQL, dbt.log, run_results.json) when
        it fails. dagster-dbt's default target folders, in the project, were never removed:
        3 MB for every dbt step."""
        folders = home / "logs" / "dbt"
        folders.mkdir(parents=True, exist_ok=True)
        name = f"{context.op_execution_context.op.name}-{context.run.run_id[:8]}-"
        target = Path(tempfile.mkdtemp(prefix=name, dir=folders))
        restore_parse(home, target)
        with environment_added(environment or {}):  # dagster-dbt copies it as dbt starts
            invocation = self.cli(list(DBT_BUILD), context=context, target_path=target)
        yield from invocation.stream()
        save_parse(target, home)
        shutil.rmtree(target)


@dbt_assets(
    manifest=MANIFEST,
    select=MONTHLY,
    partitions_def=monthly_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    dagster_dbt_translator=translator,
    name="monthly_marts",
    op_tags=step_tags(DBT),
    pool=WAREHOUSE_POOL,
)
def monthly_marts(context: AssetExecutionContext, dbt: PlatformDbt, platform: Platform) -> Iterator:
    """Rebuild exactly the partition's months (delete + insert of that window) and test them.

    A backfill of several months runs as one dbt build over their joint window.
    """
    window = context.partition_time_window
    settings = platform.settings()
    estimate = (settings.estimate_linear_intervals, settings.estimate_max_intervals)
    environment = month_environment(
        window.start.isoformat(), window.end.isoformat(), settings.default_timezone, estimate
    )
    yield from dbt.build(context, settings.home, environment)


@dbt_assets(
    manifest=MANIFEST,
    exclude=MONTHLY,
    dagster_dbt_translator=translator,
    name="unpartitioned_marts",
    op_tags=step_tags(DBT),
    pool=WAREHOUSE_POOL,
)
def unpartitioned_marts(
    context: AssetExecutionContext, dbt: PlatformDbt, platform: Platform
) -> Iterator:
    """Views over raw metadata and over the monthly models; cheap to rebuild, always current."""
    yield from dbt.build(context, platform.settings().home)
