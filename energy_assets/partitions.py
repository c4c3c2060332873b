"""The one month partitioning shared by raw, dbt and ML assets."""

from datetime import date

from dagster import AssetKey, BackfillPolicy, MonthlyPartitionsDefinition, TimeWindow, asset

from energy_assets.months import next_month
from energy_assets.settings import Settings

MONTH_RUN_TAG = "energy/month-run"
"""Tag of the runs that rebuild months: the run queue limits how many run at once."""
# Dagster needs the partition set when the assets are defined, so the first month is read here.
FIRST_MONTH = Settings.from_env().first_month
KEY_FORMAT = "%Y-%m"

monthly_partitions = MonthlyPartitionsDefinition(
    start_date=f"{FIRST_MONTH:{KEY_FORMAT}}", fmt=KEY_FORMAT, end_offset=1
)


def partition_key(month: date) -> str:
    """The partition key of the month that holds `month` (keys look like 2024-01)."""
    return f"{month:{KEY_FORMAT}}"


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
    the key's first part (`ml`, `plots`).
    """
    return asset(
        key=AssetKey(key),
        deps=[AssetKey(dep) for dep in deps],
        partitions_def=monthly_partitions,
        backfill_policy=BackfillPolicy.single_run(),
        group_name=key[0],
        description=description,
    )
