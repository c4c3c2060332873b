"""Day-ahead quantile forecasts per meter, feeder or total, and the scores that judge them.

A forecast is issued at a cutoff (by default 00:00 local the day before the target day) and
covers one local day. Every feature except the calendar and the weather (observed weather stands
in for the forecast of it a live system would use) is computed from rows strictly before the
cutoff, so backtests cannot peek. One global XGBoost model serves all targets of a resolution:
targets and lag features are divided by the target's own recent level (`scale`), and identity
and scale enter as features.

Pure functions, data frames in and out: no database, no Dagster.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import xgboost as xgb

QUANTILES = (0.1, 0.5, 0.9)
BASE_FEATURES = [
    "target_code", "log_scale", "lag_1d", "lag_last", "lag_7d", "lag_14d", "mean_1d", "std_1d",
    "std_7d", "tod_sin", "tod_cos", "dow_sin", "dow_cos", "month_sin", "month_cos", "weekend",
    "holiday",
]  # fmt: skip
WEATHER_PREFIX = "weather_"  # weather_temperature, weather_wind_speed, ...
MODEL_PARAMS = {
    "objective": "reg:quantileerror",
    "tree_method": "hist",
    "learning_rate": 0.1,
    "max_depth": 6,
    "min_child_weight": 5,
    "subsample": 0.8,
    "nthread": 1,
}
WEEK = pd.Timedelta(days=7)


def _resolution(series: pd.DataFrame) -> pd.Timedelta:
    """The interval length, inferred as the most common step so gaps do not distort it."""
    steps = pd.Series(np.sort(series["interval_start"].unique())).diff().dropna()
    return pd.Timedelta(steps.mode().iloc[0])


def _target_grid(
    series: pd.DataFrame, issue_time: pd.Timestamp, horizon_days: int, tz: str,
    resolution: pd.Timedelta | None = None,
) -> pd.DataFrame:  # fmt: skip
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


def _indexed(rows: pd.DataFrame, column: str = "value") -> pd.Series:
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
    past = _indexed(past_rows)

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
        out[column] = _lookup(_indexed(series, column), grid, grid["interval_start"])
    out["y"] = _lookup(_indexed(series), grid, grid["interval_start"]) / scale
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


@dataclass(frozen=True)
class QuantileModel:
    """The booster, the feature order and quantiles it was trained with, and the widening of
    the outer quantiles (in units of the target's scale) that calibration found."""

    booster: xgb.Booster
    features: list[str]
    quantiles: tuple[float, ...]
    band_offset: float = 0.0


def _anchor(features: pd.DataFrame) -> np.ndarray:
    """A seasonal profile (mean of the 7- and 14-day lags, else the last observed day, else the
    level): trees fit the residual around it, since step functions approximate identity badly."""
    weekly = features[["lag_7d", "lag_14d"]].mean(axis=1, skipna=True)
    return weekly.fillna(features["lag_last"]).fillna(1.0).to_numpy(dtype=float)


def fit_quantile_model(
    train: pd.DataFrame, quantiles: tuple[float, ...] = QUANTILES, rounds: int = 100, seed: int = 0
) -> QuantileModel:
    """One global multi-quantile XGBoost model on the normalised target `y`.

    nthread=1: on the shared 2-core machines two OpenMP threads busy-wait and run 4x slower.
    """
    optional = ["tariff_flag"] if "tariff_flag" in train.columns else []
    features = BASE_FEATURES + optional + weather_columns(train)
    train = train[train["y"].notna()]
    dtrain = xgb.DMatrix(
        train[features].astype(float), label=train["y"].to_numpy() - _anchor(train)
    )
    params = {**MODEL_PARAMS, "quantile_alpha": np.array(quantiles), "seed": seed}
    booster = xgb.train(params, dtrain, num_boost_round=rounds)
    return QuantileModel(booster, features, tuple(quantiles))


def _normalised(model: QuantileModel, features: pd.DataFrame) -> np.ndarray:
    """Raw quantile predictions in units of the target's scale, before widening."""
    x = features.reindex(columns=model.features).astype(float)
    raw = model.booster.predict(xgb.DMatrix(x)).reshape(len(x), len(model.quantiles))
    return raw + _anchor(features)[:, None]


def conformal_offset(model: QuantileModel, calibration: pd.DataFrame, coverage: float) -> float:
    """Split-conformal widening of the outer quantiles (CQR, Romano et al. 2019).

    The score max(p_lo - y, y - p_hi) on rows the model never saw; its finite-sample corrected
    `coverage` quantile, added to both ends, makes the band cover about `coverage` of new rows.
    Negative when the raw band is too wide.
    """
    rows = calibration[calibration["y"].notna()]
    if rows.empty:
        return 0.0
    raw = _normalised(model, rows)
    y = rows["y"].to_numpy(dtype=float)
    scores = np.maximum(raw[:, 0] - y, y - raw[:, -1])
    level = min(1.0, coverage * (1 + 1 / len(scores)))
    return float(np.quantile(scores, level))


def predict_quantiles(model: QuantileModel, features: pd.DataFrame) -> pd.DataFrame:
    """Quantiles in original units (x scale), the outer ones widened by the model's calibrated
    offset, sorted per row so they never cross."""
    raw = _normalised(model, features)
    raw[:, 0] -= model.band_offset
    raw[:, -1] += model.band_offset
    values = np.sort(raw, axis=1) * features["scale"].to_numpy()[:, None]
    out = features[["target_id", "interval_start"]].reset_index(drop=True)
    for q, column in zip(model.quantiles, values.T, strict=True):
        out[f"p{round(q * 100)}"] = column
    return out


def naive_mae(series: pd.DataFrame, before: pd.Timestamp) -> pd.Series:
    """Per-target in-sample MAE of the seasonal-naive forecast before `before`: the MASE scale."""
    past = _indexed(series[series["interval_start"] < before])
    shifted = past.copy()
    shifted.index = shifted.index.set_levels(shifted.index.levels[1] + WEEK, level=1)
    return (past - shifted).abs().groupby(level="target_id").mean()


def forecast_metrics(actual, p10, p50, p90, baseline, mase_scale) -> dict[str, float]:
    """Point and probabilistic scores of the model and of the baseline on the same rows.

    `mase_scale` is a scalar or per-row array (e.g. naive_mae mapped to each row's target), so
    MASE averages scale-free errors across targets of very different size. Rows with any
    missing input are dropped so model and baseline are judged on exactly the same intervals.
    """
    cols = [actual, p10, p50, p90, baseline, np.broadcast_to(mase_scale, np.shape(actual))]
    y, lo, mid, hi, base, scale = (np.asarray(c, dtype=float) for c in cols)
    keep = ~np.isnan(np.vstack([y, lo, mid, hi, base, scale])).any(axis=0)
    y, lo, mid, hi, base, scale = (a[keep] for a in (y, lo, mid, hi, base, scale))

    def pinball(pred: np.ndarray, q: float) -> float:
        diff = y - pred
        return float(np.mean(np.maximum(q * diff, (q - 1) * diff)))

    out: dict[str, float] = {"n": float(len(y))}
    for prefix, point in (("", mid), ("baseline_", base)):
        err = y - point
        out[f"{prefix}mae"] = float(np.mean(np.abs(err)))
        out[f"{prefix}rmse"] = float(np.sqrt(np.mean(err**2)))
        out[f"{prefix}wape"] = float(np.sum(np.abs(err)) / np.sum(np.abs(y)))
        out[f"{prefix}mase"] = float(np.mean(np.abs(err) / scale))
    out["pinball"] = float(np.mean([pinball(p, q) for p, q in ((lo, 0.1), (mid, 0.5), (hi, 0.9))]))
    out["baseline_pinball"] = pinball(base, 0.5)
    out["coverage_p10_p90"] = float(np.mean((y >= lo) & (y <= hi)))
    return out
