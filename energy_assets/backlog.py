"""How a backlog of months drains: which month runs go first, and how `energy run` orders them.
Pure functions, no database, no Dagster.

A year of history dropped at once queues a dozen month runs; a corrected file dropped after it
should not wait behind them all. So month runs carry a priority (Dagster's run queue starts the
highest first, in order of creation among equals): the newest months before older history, and
corrections (files whose readings overlap readings already loaded) before any history.

A run per month pays a run process and a dbt build per month; a backlog of history is cheaper
as single-run backfills over its consecutive months (one process, one dbt build), while the
newest month and each correction keep a run of their own so that they are not held behind it.
"""

from __future__ import annotations

from datetime import date

from energy_assets.months import month_ranges

CORRECTION_PRIORITY = 120_000
"""Added to a corrected month's priority: more than any month's rank (below the year 10000)."""


def month_priority(month: date, corrected: bool) -> int:
    """The run priority of a month run: its month's rank, so newer months go first, raised
    above every month's rank when the month is corrected.

    >>> month_priority(date(2024, 3, 1), False), month_priority(date(2024, 3, 1), True)
    (24290, 144290)
    """
    rank = month.year * 12 + month.month - 1
    return rank + (CORRECTION_PRIORITY if corrected else 0)


def run_order(months: list[date], corrected: set[date]) -> list[tuple[date, date]]:
    """The [first, last] month ranges `energy run` builds, one run each, in turn: each corrected
    month alone, newest first, then the other months in runs of consecutive months, newest range
    first.

    >>> jan, feb, mar = date(2024, 1, 1), date(2024, 2, 1), date(2024, 3, 1)
    >>> run_order([jan, feb, mar], {jan})
    [(datetime.date(2024, 1, 1), datetime.date(2024, 1, 1)), (datetime.date(2024, 2, 1), \
datetime.date(2024, 3, 1))]
    """
    first = sorted(set(months) & corrected, reverse=True)
    rest = month_ranges([m for m in months if m not in corrected])
    return [(m, m) for m in first] + sorted(rest, reverse=True)


def sensor_runs(
    months: list[date], corrected: set[date], range_from: int
) -> list[tuple[date, date]]:
    """The [first, last] month ranges the months sensor requests, one run each, for `months`
    (none of them waiting in the queue): one run per month, unless at least `range_from` of
    them are history (neither the newest month nor corrected; `range_from` 0: never), which
    then go as one run per range of consecutive months beside the newest and corrected months
    alone.

    >>> year = [date(2024, m, 1) for m in range(1, 13)]
    >>> [f"{a:%m}-{b:%m}" for a, b in sensor_runs(year, {date(2024, 3, 1)}, 4)]
    ['12-12', '03-03', '04-11', '01-02']
    >>> len(sensor_runs(year[:4], set(), 4)), len(sensor_runs(year, set(), 0))
    (4, 12)
    """
    if not months:
        return []
    alone = corrected | {max(months)}
    if range_from and len(set(months) - alone) >= range_from:
        return run_order(months, alone)
    return [(m, m) for m in sorted(set(months), reverse=True)]


def range_priority(months: list[date], corrected: set[date]) -> int:
    """A run's priority from the months it builds: that of its highest-ranked month."""
    return max(month_priority(m, m in corrected) for m in months)
