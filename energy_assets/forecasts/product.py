"""The forecast product: when forecasts are issued and which intervals each one covers.

`ENERGY_FORECAST_ISSUE` names it: `D-1 10:00` issues at 10:00 local time on the day before and
covers the whole local day (day-ahead markets close around noon), `D-0 00:00` at midnight
for the day that starts then; `every 6h` issues every 6 hours from local midnight and covers
the next `ENERGY_FORECAST_HORIZON_HOURS` (`every 1h` with a horizon of 1 is a next-hour forecast).

Pure functions and values: no database, no Dagster.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd

DAILY = re.compile(r"^D-(\d+)\s+(\d{1,2}):(\d{2})$", re.IGNORECASE)
EVERY = re.compile(r"^every\s+(\d+)\s*h$", re.IGNORECASE)
DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class Issue:
    """One forecast: issued at `issued_at`, covering the intervals starting in [start, end)
    (all UTC). Only readings before `issued_at` may shape it."""

    issued_at: pd.Timestamp
    start: pd.Timestamp
    end: pd.Timestamp


def _local(day: date, offset: pd.Timedelta, tz: str) -> pd.Timestamp:
    """Local wall-clock time `offset` after the local midnight of `day`, in UTC (a time skipped
    by DST moves forward, a repeated one is read as summer time)."""
    naive = pd.Timestamp(day) + offset
    return naive.tz_localize(tz, ambiguous=True, nonexistent="shift_forward").tz_convert("UTC")


@dataclass(frozen=True)
class Product:
    """Daily (`days_before` set): issued `days_before` days ahead at local time `at`, covering
    one local day. Intraday (`every` set): issued every `every` from local midnight, covering
    `horizon` from the issue."""

    days_before: int | None = 1
    at: pd.Timedelta = pd.Timedelta(hours=10)
    every: pd.Timedelta | None = None
    horizon: pd.Timedelta = DAY

    @classmethod
    def parse(cls, text: str, horizon_hours: float = 24.0) -> Product:
        """`D-1 10:00`, `D-0 23:00` or `every 6h`.

        >>> Product.parse("D-1 10:00").describe()
        'D-1 10:00'
        >>> Product.parse("every 1h", horizon_hours=1).describe()
        'every 1h, 1h ahead'
        """
        text = text.strip()
        if match := DAILY.match(text):
            days, hour, minute = (int(g) for g in match.groups())
            if hour > 23 or minute > 59:
                raise ValueError(f"{text!r}: not a time of day")
            if days == 0 and (hour or minute):
                raise ValueError(f"{text!r}: issued after the day it covers has begun")
            return cls(days, pd.Timedelta(hours=hour, minutes=minute))
        if match := EVERY.match(text):
            every = pd.Timedelta(hours=int(match.group(1)))
            if not pd.Timedelta(0) < every <= DAY or DAY % every:
                raise ValueError(f"{text!r}: the hours must divide a day")
            return cls(None, pd.Timedelta(0), every, pd.Timedelta(hours=horizon_hours))
        raise ValueError(f"{text!r}: expected `D-1 10:00` (daily) or `every 6h` (intraday)")

    def describe(self) -> str:
        if self.every is None:
            hours, rest = divmod(int(self.at.total_seconds()) // 60, 60)
            return f"D-{self.days_before} {hours:02d}:{rest:02d}"
        every, ahead = (t / pd.Timedelta(hours=1) for t in (self.every, self.horizon))
        return f"every {every:g}h, {ahead:g}h ahead"

    def issues_on(self, day: date, tz: str) -> list[Issue]:
        """The issues whose window starts on local `day` (daily: the one covering it)."""
        if self.every is None:
            issued = _local(day - timedelta(days=self.days_before), self.at, tz)
            return [Issue(issued, _local(day, pd.Timedelta(0), tz), _local(day, DAY, tz))]
        starts = [_local(day, k * self.every, tz) for k in range(DAY // self.every)]
        return [Issue(t, t, t + self.horizon) for t in dict.fromkeys(starts)]

    def issues(self, days: list[date], tz: str) -> list[Issue]:
        return [issue for day in days for issue in self.issues_on(day, tz)]

    def next_after(self, latest: pd.Timestamp, step: pd.Timedelta, tz: str) -> Issue:
        """The live forecast: the first window that starts after the latest reading (at
        `latest`, `step` long), issued when that reading is complete if that is later than the
        product's own issue time (readings end there either way)."""
        known = latest + step
        day = known.tz_convert(tz).date() - timedelta(days=1)
        while True:
            for issue in self.issues_on(day, tz):
                if issue.start >= known:
                    issued = max(issue.issued_at, known)
                    return Issue(issued, issue.start, issue.end)
            day += timedelta(days=1)
