"""Feature rows for day-ahead forecasts: lags, rolling statistics, calendar and weather.

A forecast is issued at a cutoff (by default 00:00 local the day before the target day) and
covers one local day. Every feature except the calendar and the weather (observed weather stands
in for the forecast of it a live system would use) is computed from rows strictly before the
cutoff, so backtests cannot peek. Targets and lag features are divided by the target's own
recent level (`scale`), so one model serves targets of any size.

Pure functions, data frames in and out: no database, no Dagster.
"""

from __future__ import annotations

import zlib
from datetime import date

import numpy as np
import pandas as pd

BASE_FEATURES = [
    "target_code",
    "log_scale",
    "lag_1d",
    "lag_last",
    "lag_7d",
    "lag_14d",
    "mean_1d",
    "std_1d",
    "std_7d",
    "tod_sin",
    "tod_cos",
    "dow_sin",
    "dow_cos",
    "month_sin",
    "month_cos",
    "weekend",
    "holiday",
]
WEATHER_PREFIX = "weather_"  # weather_temperature, weather_wind_speed, ...
WEEK = pd.Timedelta(days=7)


def _resolution(series: pd.DataFrame) -> pd.Timedelta:
    """The interval length, inferred as the most common step so gaps do not distort it."""
    steps = pd.Series(np.sort(series["interval_start"].unique())).diff().dropna()
    return pd.Timedelta(steps.mode().iloc[0])


def _target_grid(
    series: pd.DataFrame,
    issue_time: pd.Timestamp,
    horizon_days: int,
    tz: str,
    resolution: pd.Timedelta | None = None,
) -> pd.DataFrame:
    """Every target x interval of the local day `horizon_days` after the issue day (DST-aware)."""
    local_day = issue_time.tz_convert(tz).normalize().tz_localize(None)
    start, end = (
        (local_day + pd.Timedelta(days=d)).tz_localize(tz) for d in (horizon_days, horizon_days + 1)
    )
    step = resolution if resolution is not None else _resolution(series)
    times = pd.date_range(start, end, freq=step, inclusive="left").tz_convert("UTC")
    targets = np.sort(series["target_id"].unique())
    grid = pd.MultiIndex.from_product([targets, times], names=["target_id", "interval_start"])
    return grid.to_frame(index=False)


def _wall_clock_shift(times: pd.Series, days: int, tz: str) -> pd.DatetimeIndex:
    """The same local time of day `days` earlier: across DST changes that is not 24 h x days."""
    local = pd.DatetimeIndex(times).tz_convert(tz).tz_localize(None) - pd.Timedelta(days=days)
    dst = np.ones(len(local), dtype=bool)
    return local.tz_localize(tz, ambiguous=dst, nonexistent="shift_forward").tz_convert("UTC")


def _lookup(values: pd.Series, grid: pd.DataFrame, times: pd.DatetimeIndex) -> np.ndarray:
    """Values of (target_id, time) pairs from a (target_id, interval_start)-indexed series."""
    keys = pd.MultiIndex.from_arrays([grid["target_id"], times])
    return values.reindex(keys).to_numpy(dtype=float)


def indexed_values(rows: pd.DataFrame, column: str = "value") -> pd.Series:
    s = rows.set_index(["target_id", "interval_start"])[column].astype(float)
    return s[~s.index.duplicated(keep="last")]


def weather_columns(frame: pd.DataFrame) -> list[str]:
    """The weather variables a frame carries, as `weather_<variable>` columns."""
    return sorted(c for c in frame.columns if c.startswith(WEATHER_PREFIX))


def _cyclic(frame: pd.DataFrame, name: str, value: np.ndarray, period: float) -> None:
    frame[f"{name}_sin"] = np.sin(2 * np.pi * value / period)
    frame[f"{name}_cos"] = np.cos(2 * np.pi * value / period)


def build_features(
    series: pd.DataFrame,
    issue_time: pd.Timestamp,
    horizon_days: int = 1,
    tz: str = "UTC",
    holiday_dates: set[date] | None = None,
    resolution: pd.Timedelta | None = None,
) -> pd.DataFrame:
    """Feature rows for the day `horizon_days` after the issue day, one per target x interval.

    `series` is long: target_id, interval_start (UTC), value (NaN gaps), optional
    `weather_*` columns (observed weather, standing in for a forecast of it).
    Lags and rolling statistics use only rows with interval_start < issue_time; lags that would
    fall at or after it are NaN (XGBoost handles missing values), so lag-1d is never used for a
    day-ahead forecast. `scale` is the target's mean |value| over the 7 days before the cutoff;
    `y` is value / scale where the value is known (NaN otherwise, e.g. for a live forecast).
    Public holidays come as `holiday_dates` (see `public_holidays`). A `tariff_flag` column
    (1 for a time-of-use tariff) enters as a per-target feature when present.
    """
    issue_time = pd.Timestamp(issue_time).tz_convert("UTC")
    grid = _target_grid(series, issue_time, horizon_days, tz, resolution)
    past_rows = series[series["interval_start"] < issue_time]
    past = indexed_values(past_rows)

    week = past_rows[past_rows["interval_start"] >= issue_time - WEEK].groupby("target_id")
    day = past_rows[past_rows["interval_start"] >= issue_time - pd.Timedelta(days=1)]
    day = day.groupby("target_id")["value"]
    scale = week["value"].apply(lambda v: v.abs().mean()).reindex(grid["target_id"]).to_numpy()
    scale = np.where(scale > 0, scale, np.nan)  # a dead meter has no level to normalise by

    out = grid.copy()
    out["scale"] = scale
    out["target_code"] = [zlib.crc32(str(t).encode()) % 10_000 for t in grid["target_id"]]
    out["log_scale"] = np.log(scale)
    # Same local time 1, 2, 7 and 14 days earlier; NaN where that is at or after the cutoff
    # (lag_1d everywhere for a midnight cutoff, the early hours only for a 10:00 one).
    lags = {"lag_1d": 1, "lag_last": horizon_days + 1, "lag_7d": 7, "lag_14d": 14}
    for name, days in lags.items():
        times = _wall_clock_shift(grid["interval_start"], days, tz)
        lagged = _lookup(past, grid, times)
        out[name] = np.where(times < issue_time, lagged, np.nan) / scale
    stats = {"mean_1d": day.mean(), "std_1d": day.std(), "std_7d": week["value"].std()}
    for name, stat in stats.items():
        out[name] = stat.reindex(grid["target_id"]).to_numpy() / scale

    local = pd.DatetimeIndex(grid["interval_start"]).tz_convert(tz)
    _cyclic(out, "tod", (local.hour * 60 + local.minute).to_numpy(), 1440)
    _cyclic(out, "dow", local.dayofweek.to_numpy(), 7)
    _cyclic(out, "month", (local.month - 1).to_numpy(), 12)
    out["weekend"] = (local.dayofweek >= 5).astype(float)
    out["holiday"] = np.isin(local.date, list(holiday_dates or ())).astype(float)
    if "tariff_flag" in series.columns:
        flags = series.groupby("target_id")["tariff_flag"].first()
        out["tariff_flag"] = flags.reindex(grid["target_id"]).to_numpy(dtype=float)
    for column in weather_columns(series):
        out[column] = _lookup(indexed_values(series, column), grid, grid["interval_start"])
    out["y"] = _lookup(indexed_values(series), grid, grid["interval_start"]) / scale
    return out


def training_frame(series: pd.DataFrame, issue_times: list[pd.Timestamp], **kwargs) -> pd.DataFrame:
    """build_features stacked over many cutoffs (a rolling-origin backtest), rows with known y."""
    frames = [build_features(series, t, **kwargs).assign(issue_time=t) for t in issue_times]
    stacked = pd.concat(frames, ignore_index=True)
    return stacked[stacked["y"].notna()].reset_index(drop=True)


def public_holidays(country: str | None, years: range, subdiv: str | None = None) -> set[date]:
    """Public holidays of a country (ISO code, e.g. GB with subdiv ENG) from `holidays`."""
    if not country:
        return set()
    import holidays

    return set(holidays.country_holidays(country, subdiv=subdiv, years=list(years)))
