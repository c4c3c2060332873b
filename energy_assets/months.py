"""Month arithmetic on calendar months (first days, UTC): pure functions, no database, no Dagster.

The platform's unit of work is the month: raw partitions, dbt windows and Python assets all
follow it, so every module counts months the same way through these functions.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd


def month_start(ts: pd.Timestamp | date) -> date:
    """The first day of the month holding `ts`."""
    return date(ts.year, ts.month, 1)


def next_month(month: date) -> date:
    """The first day of the month after `month`.

    >>> next_month(date(2024, 12, 1))
    datetime.date(2025, 1, 1)
    """
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def months_between(first: pd.Timestamp | date, last: pd.Timestamp | date) -> list[date]:
    """Every month from the one holding `first` to the one holding `last` (UTC)."""
    months, month, end = [], month_start(first), month_start(last)
    while month <= end:
        months.append(month)
        month = next_month(month)
    return months


def months_of(times: pd.Series) -> set[date]:
    """The months (first days, UTC) that `times` fall in."""
    naive = times.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    return {date.fromisoformat(f"{m}-01") for m in np.unique(naive.astype("datetime64[M]"))}


def month_ranges(months: list[date]) -> list[tuple[date, date]]:
    """Consecutive months grouped into [first, last] ranges, so each range is one dbt build."""
    ranges: list[tuple[date, date]] = []
    for month in sorted(set(months)):
        if ranges and next_month(ranges[-1][1]) == month:
            ranges[-1] = (ranges[-1][0], month)
        else:
            ranges.append((month, month))
    return ranges


def days_between(first: date, end: date) -> list[date]:
    """Every day from `first` up to, not including, `end`."""
    return [first + timedelta(days=k) for k in range((end - first).days)]
