"""The one month partitioning shared by raw, dbt and ML assets, and the months a run covers."""

import warnings
from collections.abc import Callable, Mapping
from datetime import date

from dagster import (
    AssetChecksDefinition,
    AssetKey,
    BackfillPolicy,
    BetaWarning,
    MonthlyPartitionsDefinition,
    PreviewWarning,
    TimeWindow,
    asset,
    asset_check,
)

from energy_assets.months import months_between, next_month
from energy_assets.scaleout import ML, step_tags
from energy_assets.settings import Settings

MONTH_RUN_TAG = "energy/month-run"
"""Tag of the runs that rebuild months: the run queue limits how many run at once."""
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PRIORITY_TAG = "dagster/priority"
"""Runs with a higher value leave the run queue first (`backlog.month_priority`)."""
# Dagster needs the partition set when the assets are defined, so the first month is read here.
FIRST_MONTH = Settings.from_env().first_month
KEY_FORMAT = "%Y-%m"

monthly_partitions = MonthlyPartitionsDefinition(
    start_date=f"{FIRST_MONTH:{KEY_FORMAT}}", fmt=KEY_FORMAT, end_offset=1
)


def partition_key(month: date) -> str:
    """The partition key of the month that holds `month` (keys look like 2024-01)."""
    return f"{month:{KEY_FORMAT}}"


def range_tags(first: date, last: date) -> dict[str, str]:
    """Tags that make one run cover the months first..last (a single-run backfill)."""
    return {RANGE_START_TAG: partition_key(first), RANGE_END_TAG: partition_key(last)}


def month_of_key(key: str) -> date:
    """The month of a partition key: `2024-01`, or `2024-01-01` in homes from before keys were
    months."""
    return date.fromisoformat(key[:7] + "-01")


def run_months(tags: Mapping[str, str]) -> list[date]:
    """The months a run builds, from its tags: its partition, or its range of them (a single-run
    backfill); none for a run that is not partitioned."""
    if PARTITION_TAG in tags:
        return [month_of_key(tags[PARTITION_TAG])]
    if RANGE_START_TAG not in tags:
        return []
    return months_between(month_of_key(tags[RANGE_START_TAG]), month_of_key(tags[RANGE_END_TAG]))


def months_in(window: TimeWindow) -> list[tuple[date, date]]:
    """[start, end) of each month in a run's partition window (one month, or a backfill range)."""
    months, month = [], window.start.date()
    while month < window.end.date():
        following = next_month(month)
        months.append((month, following))
        month = following
    return months


def monthly_asset(key: list[str], deps: list[list[str]], description: str):
    """Decorator for a Python asset partitioned by month like the marts it reads.

    A backfill runs once over its whole range (the asset loops over `months_in`); the group is
    the key's first part (`ml`, `plots`); on Celery workers it runs from the ML queue.
    """
    with warnings.catch_warnings():
        # `backfill_policy` is a beta parameter of `asset`; the single run is what is meant.
        warnings.simplefilter("ignore", BetaWarning)
        return asset(
            key=AssetKey(key),
            deps=[AssetKey(dep) for dep in deps],
            partitions_def=monthly_partitions,
            backfill_policy=BackfillPolicy.single_run(),
            group_name=key[0],
            description=description,
            op_tags=step_tags(ML),
        )


def monthly_asset_check(
    key: list[str], description: str
) -> Callable[[Callable], AssetChecksDefinition]:
    """Decorator for an asset check evaluated per month of the monthly asset `key`."""

    def decorate(fn: Callable) -> AssetChecksDefinition:
        with warnings.catch_warnings():
            # Partitioned asset checks are a preview feature of Dagster; the check is per month.
            warnings.simplefilter("ignore", PreviewWarning)
            return asset_check(
                asset=AssetKey(key), partitions_def=monthly_partitions, description=description
            )(fn)

    return decorate
