"""Anomaly detectors for interval load data (pure logic: no database, no Dagster).

Thresholds are `settings.AnomalyThresholds`, settable per platform (`ENERGY_ANOMALY_*`).

Input is a long frame: target_id, interval_start (UTC), value (average kW, NaN for a gap),
optionally interval_end and `delivered` (imported kW, for the negative-import check). Every
detector returns findings with the columns of `FINDING_COLUMNS`: a span of intervals
(interval_start .. interval_end) or a whole day (`day`, interval columns empty), a kind, a
score (how far past its threshold, >= 1 means flagged) and a sentence with the numbers.

Baselines are the meter's own: when the frame holds at least `history_days` of rows before
`history_end` (the asset passes the month start and reads four weeks before it), those rows
alone form the baseline, so a month's own faults cannot hide themselves; otherwise the whole
frame does (robust statistics tolerate the contamination).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from energy_assets.settings import AnomalyThresholds

FINDING_COLUMNS = [
    "target_id",
    "interval_start",
    "interval_end",
    "day",
    "kind",
    "score",
    "detector",
    "reason",
]
MAD_SCALE = 1.4826  # MAD x this estimates the standard deviation of normal data


DEFAULTS = AnomalyThresholds()


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=FINDING_COLUMNS)


def _duration(intervals: int, step: pd.Timedelta) -> str:
    hours = intervals * step / pd.Timedelta(hours=1)
    return f"{intervals} interval{'s' if intervals != 1 else ''} ({hours:g} h)"


def prepare(series: pd.DataFrame) -> pd.DataFrame:
    """Sorted by target and time, with interval_end (the target's usual step if not given)."""
    frame = series.sort_values(["target_id", "interval_start"], kind="stable")
    frame = frame.reset_index(drop=True)
    frame["value"] = frame["value"].astype("float64")
    frame["interval_start"] = pd.to_datetime(frame["interval_start"], utc=True).dt.as_unit("ns")
    if "interval_end" in frame:
        frame["interval_end"] = pd.to_datetime(frame["interval_end"], utc=True).dt.as_unit("ns")
    else:
        steps = frame.groupby("target_id")["interval_start"].diff()
        step = steps.groupby(frame["target_id"]).transform("median")
        frame["interval_end"] = frame["interval_start"] + step.fillna(pd.Timedelta(minutes=30))
    return frame


def baseline_mask(frame: pd.DataFrame, history_end: pd.Timestamp | None, days: int) -> pd.Series:
    """Rows that form each target's baseline: its history before `history_end` when that spans
    `days`, else all its rows."""
    if history_end is None:
        return pd.Series(True, index=frame.index)
    before = frame["interval_start"] < history_end
    known = before & frame["value"].notna()
    times = frame.loc[known].groupby("target_id")["interval_start"]
    enough = (times.max() - times.min()) >= pd.Timedelta(days=days)
    use_history = frame["target_id"].isin(enough.index[enough])
    return before | ~use_history


@dataclass
class Baseline:
    """Per-target statistics of the baseline rows, each a Series indexed by target_id."""

    median: pd.Series
    mad: pd.Series
    typical: pd.Series  # mean |value|
    zero_share: pd.Series
    negative_share: pd.Series
    days: pd.Series


def baseline(frame: pd.DataFrame, mask: pd.Series) -> Baseline:
    rows = frame.loc[mask & frame["value"].notna()]
    values = rows.groupby("target_id")["value"]
    median = values.median()
    deviation = (rows["value"] - rows["target_id"].map(median)).abs()
    times = rows.groupby("target_id")["interval_start"]
    return Baseline(
        median=median,
        mad=deviation.groupby(rows["target_id"]).median(),
        typical=rows["value"].abs().groupby(rows["target_id"]).mean(),
        zero_share=(rows["value"] == 0).groupby(rows["target_id"]).mean(),
        negative_share=(rows["value"] < 0).groupby(rows["target_id"]).mean(),
        days=(times.max() - times.min()) / pd.Timedelta(days=1),
    )


def ceiling(
    values: pd.Series, by: pd.Series, k: float, quantile: float, margin: float
) -> pd.Series:
    """A robust ceiling per group: max(median + k x MAD, margin x quantile).

    Household load is heavy-tailed (a kettle is 20 MADs above the median), so the quantile term
    keeps ordinary peaks under the ceiling; the MAD term guards smooth loads (feeders).
    """
    median = values.groupby(by).median()
    mad = (values - by.map(median)).abs().groupby(by).median()
    high = values.groupby(by).quantile(quantile)
    return np.maximum(median + k * MAD_SCALE * mad, margin * high)


def _runs(frame: pd.DataFrame, mask: np.ndarray, key: np.ndarray | None = None) -> pd.DataFrame:
    """Maximal runs of flagged rows that are consecutive intervals of one target (and one `key`):
    first row, last row and length of each."""
    mask = np.asarray(mask, dtype=bool)
    target = frame["target_id"].to_numpy()
    start = frame["interval_start"].array.asi8
    end = frame["interval_end"].array.asi8
    joined = np.r_[False, (target[1:] == target[:-1]) & (start[1:] == end[:-1])]
    if key is not None:
        joined &= np.r_[False, key[1:] == key[:-1]]
    continues = joined & np.r_[False, mask[:-1]]
    run = np.cumsum(mask & ~continues)
    rows = np.flatnonzero(mask)
    if not len(rows):
        return pd.DataFrame({c: pd.Series(dtype="int64") for c in ("first", "last", "length")})
    grouped = pd.Series(rows).groupby(run[rows])
    return pd.DataFrame({"first": grouped.min(), "last": grouped.max(), "length": grouped.size()})


def _span_findings(
    frame: pd.DataFrame, runs: pd.DataFrame, kind: str, scores, reasons, detector: str = "rules"
) -> pd.DataFrame:
    if runs.empty:
        return _empty()
    return pd.DataFrame(
        {
            "target_id": frame["target_id"].to_numpy()[runs["first"]],
            "interval_start": frame["interval_start"].iloc[runs["first"]].to_numpy(),
            "interval_end": frame["interval_end"].iloc[runs["last"]].to_numpy(),
            "day": None,
            "kind": kind,
            "score": np.asarray(scores, dtype=float),
            "detector": detector,
            "reason": list(reasons),
        }
    ).astype({"interval_start": "datetime64[ns, UTC]", "interval_end": "datetime64[ns, UTC]"})


def _steps(frame: pd.DataFrame, runs: pd.DataFrame) -> pd.Series:
    first = runs["first"].to_numpy()
    ns = frame["interval_end"].array.asi8[first] - frame["interval_start"].array.asi8[first]
    return pd.Series(pd.to_timedelta(ns, unit="ns"), index=runs.index)


def flatlines(frame: pd.DataFrame, t: AnomalyThresholds = DEFAULTS) -> pd.DataFrame:
    """Stuck registers: the same non-zero value for `flatline_intervals` intervals or more.
    (Runs of zeros are the dropout check's: they are normal for an idle meter.)"""
    values = frame["value"].to_numpy()
    flat = ~np.isnan(values) & (values != 0)
    runs = _runs(frame, flat, key=values)
    runs = runs[runs["length"] >= t.flatline_intervals]
    steps = _steps(frame, runs)
    stuck = values[runs["first"].to_numpy()] if len(runs) else []
    return _span_findings(
        frame,
        runs,
        "flatline",
        runs["length"] / t.flatline_intervals,
        [
            f"value stuck at {v:.2f} kW for {_duration(n, s)}"
            for v, n, s in zip(stuck, runs["length"], steps, strict=True)
        ],
    )


def dropouts(frame: pd.DataFrame, base: Baseline, t: AnomalyThresholds = DEFAULTS) -> pd.DataFrame:
    """Sudden drops to zero: `dropout_intervals` zeros in a row on a meter that normally draws
    (or exports) power; a normally idle meter at zero is not a fault."""
    values = frame["value"].to_numpy()
    share = frame["target_id"].map(base.zero_share).fillna(1.0).to_numpy()
    runs = _runs(frame, (values == 0) & (share < t.idle_share))
    first = runs["first"].to_numpy()
    needed = np.where(share[first] < t.rare_zero_share, t.dropout_intervals, t.flatline_intervals)
    runs = runs[runs["length"].to_numpy() >= needed]
    steps = _steps(frame, runs)
    typical = frame["target_id"].map(base.typical).to_numpy()
    reasons = []
    for first, n, step in zip(runs["first"], runs["length"], steps, strict=True):
        before = (
            values[first - 1]
            if first > 0 and frame["target_id"].iat[first - 1] == frame["target_id"].iat[first]
            else np.nan
        )
        after = "" if np.isnan(before) else f" after {before:.2f} kW"
        reasons.append(
            f"value 0.00 kW for {_duration(n, step)}{after}; the meter typically "
            f"runs at {typical[first]:.2f} kW"
        )
    return _span_findings(
        frame, runs, "drop_to_zero", runs["length"] / t.dropout_intervals, reasons
    )


def spikes(frame: pd.DataFrame, mask: pd.Series, t: AnomalyThresholds = DEFAULTS) -> pd.DataFrame:
    """Values above a physical ceiling, or above the meter's robust statistical ceiling."""
    rows = frame.loc[mask & frame["value"].notna()]
    limit = frame["target_id"].map(
        ceiling(rows["value"], rows["target_id"], t.spike_k, t.spike_quantile, t.spike_margin)
    )
    limit = limit.where(limit > 0)  # a meter that never varied has no statistical ceiling
    physical = pd.Series(t.physical_ceiling_kw, index=frame.index, dtype="float64")
    if "ceiling_kw" in frame:
        physical = frame["ceiling_kw"].astype("float64").fillna(physical)
    value = frame["value"]
    over_physical = (value > physical).to_numpy()
    over = over_physical | (value > limit).to_numpy()
    runs = _runs(frame, over, key=over_physical)
    peaks = [value.iloc[a : b + 1].max() for a, b in zip(runs["first"], runs["last"], strict=True)]
    reasons, scores = [], []
    for first, peak, n in zip(runs["first"], peaks, runs["length"], strict=True):
        phys = over_physical[first]
        bound = physical.iat[first] if phys else limit.iat[first]
        what = "physical ceiling" if phys else "meter's robust ceiling"
        span = f" over {n} intervals" if n > 1 else ""
        reasons.append(f"{peak:.2f} kW{span} is above the {what} of {bound:.2f} kW")
        scores.append(peak / bound)
    return _span_findings(frame, runs, "spike", scores, reasons)


def offpeak_spikes(
    frame: pd.DataFrame, mask: pd.Series, t: AnomalyThresholds = DEFAULTS, tz: str = "UTC"
) -> pd.DataFrame:
    """Night-time demand far above the meter's typical night level (below the all-day spike
    ceiling, which the spike check covers)."""
    hour = frame["interval_start"].dt.tz_convert(tz).dt.hour
    night = (hour >= t.night_hours[0]) & (hour < t.night_hours[1])
    rows = frame.loc[mask & night & frame["value"].notna()]
    night_limit = frame["target_id"].map(
        ceiling(rows["value"], rows["target_id"], t.offpeak_k, t.offpeak_quantile, t.offpeak_margin)
    )
    all_rows = frame.loc[mask & frame["value"].notna()]
    day_limit = frame["target_id"].map(
        ceiling(
            all_rows["value"], all_rows["target_id"], t.spike_k, t.spike_quantile, t.spike_margin
        )
    )
    night_level = frame["target_id"].map(rows.groupby("target_id")["value"].median())
    # What the meter draws at this time of night on its usual nights (a storage heater or a
    # timer at 04:00 every night is a habit, not an anomaly): the margin x what it reaches on
    # one night in ten at the same local time of day in the baseline.
    slot = local_slot(frame, tz)
    usual = (
        rows["value"]
        .groupby([rows["target_id"], slot[rows.index]])
        .quantile(t.offpeak_habit_quantile)
    )
    at_slot = pd.Series(
        usual.reindex(pd.MultiIndex.from_arrays([frame["target_id"], slot])).to_numpy(),
        index=frame.index,
    )
    night_limit = np.maximum(night_limit, (t.offpeak_margin * at_slot).fillna(0.0))
    value = frame["value"]
    over = night & (value > night_limit.where(night_limit > 0)) & ~(value > day_limit)
    runs = _runs(frame, over.to_numpy())
    # A run that continues evening load already above the ceiling (a late night, 23:30 into
    # 00:00) did not rise out of the night level: not a night-time spike.
    first = runs["first"].to_numpy()
    before = np.maximum(first - 1, 0)
    joined = (first > 0) & (
        frame["target_id"].to_numpy()[before] == frame["target_id"].to_numpy()[first]
    )
    carried = joined & (value.to_numpy()[before] > night_limit.to_numpy()[first])
    runs = runs[~carried]
    local = frame["interval_start"].dt.tz_convert(tz)
    reasons, scores = [], []
    for first, last in zip(runs["first"], runs["last"], strict=True):
        peak = value.iloc[first : last + 1].max()
        level = night_level.iat[first]
        reasons.append(
            f"night-time {peak:.2f} kW at {local.iat[first]:%H:%M} against a typical "
            f"night level of {level:.2f} kW (ceiling {night_limit.iat[first]:.2f} kW)"
        )
        scores.append(peak / night_limit.iat[first])
    return _span_findings(frame, runs, "offpeak_spike", scores, reasons)


def local_slot(frame: pd.DataFrame, tz: str) -> pd.Series:
    """Minute of the local day at which each interval starts."""
    local = frame["interval_start"].dt.tz_convert(tz)
    return (local.dt.hour * 60 + local.dt.minute).rename("slot")


def reverse_flows(
    frame: pd.DataFrame, base: Baseline, t: AnomalyThresholds = DEFAULTS
) -> pd.DataFrame:
    """Net flow below zero on a meter with no export history (an import-only meter cannot
    export; a flipped CT or sign convention can make it look so). Also delivered energy below
    zero where a `delivered` column is given."""
    exports = frame["target_id"].map(base.negative_share > t.export_share).fillna(True)
    tolerance = frame["target_id"].map(base.typical) * t.reverse_flow_share
    value = frame["value"]
    findings = []
    reverse = (~exports & (value < -tolerance)).to_numpy()
    runs = _runs(frame, reverse)
    steps = _steps(frame, runs)
    lows = [value.iloc[a : b + 1].min() for a, b in zip(runs["first"], runs["last"], strict=True)]
    findings.append(
        _span_findings(
            frame,
            runs,
            "reverse_flow",
            [-low / tolerance.iat[f] for low, f in zip(lows, runs["first"], strict=True)],
            [
                f"net {low:.2f} kW for {_duration(n, s)} on a meter that never exports"
                for low, n, s in zip(lows, runs["length"], steps, strict=True)
            ],
        )
    )
    if "delivered" in frame:
        delivered = frame["delivered"].astype("float64")
        runs = _runs(frame, (delivered < 0).to_numpy())
        lows = [
            delivered.iloc[a : b + 1].min()
            for a, b in zip(runs["first"], runs["last"], strict=True)
        ]
        findings.append(
            _span_findings(
                frame,
                runs,
                "negative_import",
                [1.0] * len(runs),
                [f"delivered {low:.2f} kW: delivered energy cannot be negative" for low in lows],
            )
        )
    return pd.concat([f for f in findings if not f.empty] or [_empty()], ignore_index=True)


def daily_profiles(frame: pd.DataFrame, tz: str, coverage: float) -> pd.DataFrame:
    """target_id x local day rows, one column per slot of the day (mean kW); days with fewer
    than `coverage` of their slots read are dropped."""
    local = frame["interval_start"].dt.tz_convert(tz)
    step = (frame["interval_end"] - frame["interval_start"]).median()
    slots = max(int(pd.Timedelta(days=1) / step), 1)
    slot = ((local.dt.hour * 60 + local.dt.minute) // (1440 // slots)).rename("slot")
    day = local.dt.date.rename("day")
    grid = frame["value"].groupby([frame["target_id"], day, slot]).mean().unstack("slot")
    grid = grid.reindex(columns=range(slots))
    return grid[grid.notna().mean(axis=1) >= coverage]


def trailing_days(
    profiles: pd.DataFrame, window: int, min_days: int
) -> tuple[pd.Series, pd.Series, pd.DataFrame]:
    """Per target-day, from the previous `window` days (the day itself excluded, at least
    `min_days` of them): the median day mean, the MAD of the day means around it and the median
    profile."""
    levels, spreads, usuals, index = [], [], [], []
    for _, rows in profiles.groupby(level="target_id", sort=False):
        index.extend(rows.index)
        days = pd.DatetimeIndex(rows.index.get_level_values("day"))
        full = pd.date_range(days.min(), days.max(), freq="D")
        values = rows.to_numpy(dtype=float)
        grid = np.full((len(full), values.shape[1]), np.nan)
        position = full.get_indexer(days)
        grid[position] = values
        padded = np.vstack([np.full((window, grid.shape[1]), np.nan), grid])[:-1]
        past = sliding_window_view(padded, window, axis=0)  # day x slot x previous days
        means = _nanmean(past, axis=1)
        enough = (~np.isnan(means)).sum(axis=1) >= min_days
        level = _nanmedian(means, axis=1)
        spread = _nanmedian(np.abs(means - level[:, None]), axis=1)
        usual = _nanmedian(past, axis=2)
        levels.append(np.where(enough, level, np.nan)[position])
        spreads.append(np.where(enough, spread, np.nan)[position])
        usuals.append(np.where(enough[:, None], usual, np.nan)[position])
    index = pd.MultiIndex.from_tuples(index, names=profiles.index.names)
    return (
        pd.Series(np.concatenate(levels), index=index).reindex(profiles.index),
        pd.Series(np.concatenate(spreads), index=index).reindex(profiles.index),
        pd.DataFrame(np.vstack(usuals), index=index, columns=profiles.columns).reindex(
            profiles.index
        ),
    )


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows give NaN, as meant
        return np.nanmean(values, axis=axis)


def _nanmedian(values: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(values, axis=axis)


def day_shifts(
    frame: pd.DataFrame, t: AnomalyThresholds = DEFAULTS, tz: str = "UTC", profiles=None
) -> pd.DataFrame:
    """Days whose mean level moved far from the trailing weeks' level (a level shift), or whose
    values run against the usual profile with the opposite sign (a sign flip)."""
    profiles = daily_profiles(frame, tz, t.day_coverage) if profiles is None else profiles
    if profiles.empty:
        return _empty()
    means = profiles.mean(axis=1)
    level, spread, usual = trailing_days(profiles, t.level_days, t.level_min_days)
    change = means - level
    typical = profiles.abs().mean(axis=1).groupby(level="target_id").transform("median")
    floor = np.maximum(level.abs(), typical)
    z = change.abs() / np.maximum(MAD_SCALE * spread, 1e-6 * floor)
    far = (change > (t.level_ratio - 1) * floor) | (change < -(1 - 1 / t.level_ratio) * floor)
    flagged = (z > t.level_k) & far & level.notna()
    if not flagged.any():
        return _empty()
    centred = profiles.sub(profiles.mean(axis=1), axis=0)
    usual = usual.sub(usual.mean(axis=1), axis=0)
    corr = (centred * usual).sum(axis=1) / np.sqrt(
        (centred**2).sum(axis=1) * (usual**2).sum(axis=1)
    )
    flip = (means * level < 0) & (corr < t.flip_correlation)
    rows = []
    for key in flagged[flagged].index:
        target, day = key
        if flip[key]:
            kind = "sign_flip"
            reason = (
                f"day mean {means[key]:.2f} kW against a usual {level[key]:.2f} kW, profile "
                f"correlation {corr[key]:.2f}: values look sign-flipped"
            )
        else:
            kind = "level_shift"
            reason = (
                f"day mean {means[key]:.2f} kW against {level[key]:.2f} kW, the median of "
                f"the previous {t.level_days} days ({z[key]:.1f} robust SDs away)"
            )
        rows.append((target, None, None, day, kind, z[key] / t.level_k, "rules", reason))
    return pd.DataFrame(rows, columns=FINDING_COLUMNS)


def day_features(profiles: pd.DataFrame, t: AnomalyThresholds = DEFAULTS) -> pd.DataFrame:
    """Load-shape features of each target-day, in units of the target's typical level:
    daily energy, peak, peak hour, night/day ratio and the hourly shape."""
    slots = profiles.shape[1]
    hourly = profiles.T.groupby(np.arange(slots) * 24 // slots).mean().T
    scale = hourly.abs().mean(axis=1).groupby(level="target_id").transform("median")
    scale = scale.where(scale > 0, 1.0)
    shape = hourly.div(scale, axis=0).fillna(0.0)
    shape.columns = [f"h{h:02d}" for h in shape.columns]
    hours = hourly.idxmax(axis=1).fillna(0).to_numpy(dtype=float)
    night = hourly.iloc[:, t.night_hours[0] : t.night_hours[1]].mean(axis=1)
    daytime = hourly.iloc[:, 8:20].mean(axis=1)
    floor = 0.1 * scale
    features = pd.DataFrame(
        {
            "energy": hourly.mean(axis=1) * 24 / scale,
            "peak": hourly.max(axis=1) / scale,
            "peak_hour_sin": np.sin(2 * np.pi * hours / 24),
            "peak_hour_cos": np.cos(2 * np.pi * hours / 24),
            "night_day": (night / daytime.abs().clip(lower=floor)).clip(-10, 10),
        },
        index=profiles.index,
    )
    return pd.concat([features, shape], axis=1).fillna(0.0)


def isolated_days(profiles: pd.DataFrame, t: AnomalyThresholds = DEFAULTS) -> pd.DataFrame:
    """Whole days an IsolationForest isolates quickly.

    Each feature is taken as a robust z-score against the same meter's other days, so one forest
    over all meters asks "how unusual is this day for its meter" (one fit, not one per meter).
    """
    from sklearn.ensemble import IsolationForest  # here: every run process imports this module

    features = day_features(profiles, t)
    counts = features.groupby(level="target_id").size()
    features = features[
        features.index.get_level_values("target_id").map(counts) >= t.forest_min_days
    ]
    if features.empty:
        return _empty()
    by = features.groupby(level="target_id")
    usual = by.transform("median")
    spread = (features - usual).abs().groupby(level="target_id").transform("median")
    floor = (features - usual).abs().groupby(level="target_id").transform("mean")
    z = (features - usual) / (MAD_SCALE * spread).where(spread > 0, floor.where(floor > 0, 1.0))
    z = z.clip(-50, 50)
    forest = IsolationForest(n_estimators=t.forest_trees, random_state=t.forest_seed, n_jobs=1)
    scores = pd.Series(-forest.fit(z.to_numpy()).score_samples(z.to_numpy()), index=z.index)
    rows = []
    for key, score in scores[scores >= t.forest_score].items():
        row, typical = features.loc[key], usual.loc[key]
        odd = z.loc[key].abs().nlargest(3).index
        rows.append(
            (
                key[0],
                None,
                None,
                key[1],
                "unusual_day",
                score / t.forest_score,
                "isolation_forest",
                f"unusual day for this meter (isolation score {score:.2f}): energy "
                f"{row['energy']:.2f} vs usual {typical['energy']:.2f}, peak {row['peak']:.2f} vs "
                f"{typical['peak']:.2f}, night/day {row['night_day']:.2f} vs "
                f"{typical['night_day']:.2f} (x the meter's mean level); most unusual: "
                + ", ".join(odd),
            )
        )
    return pd.DataFrame(rows, columns=FINDING_COLUMNS) if rows else _empty()


def forecast_residuals(forecasts: pd.DataFrame, t: AnomalyThresholds = DEFAULTS) -> pd.DataFrame:
    """Intervals whose actual is far from the day-ahead p50, by a robust z-score of the residual
    per target. Input: rows of ml.forecasts (target_kind, target_id, interval_start, p50,
    actual); output has target_kind too."""
    rows = forecasts.dropna(subset=["p50", "actual"])
    if rows.empty:
        return _empty().assign(target_kind=pd.Series(dtype=object))
    frames = []
    for kind, part in rows.groupby("target_kind"):
        frame = prepare(part.assign(value=part["actual"].astype(float) - part["p50"].astype(float)))
        residual = frame["value"]
        median = residual.groupby(frame["target_id"]).transform("median")
        mad = (residual - median).abs().groupby(frame["target_id"]).transform("median")
        z = (residual - median) / (MAD_SCALE * mad).where(mad > 0)
        runs = _runs(frame, (z.abs() > t.residual_z).to_numpy(), key=np.sign(z.to_numpy()))
        worst = [
            z.iloc[a : b + 1].abs().idxmax()
            for a, b in zip(runs["first"], runs["last"], strict=True)
        ]
        found = _span_findings(
            frame,
            runs,
            "forecast_residual",
            [abs(z[i]) / t.residual_z for i in worst],
            [
                f"actual {frame['actual'][i]:.2f} against a day-ahead p50 of "
                f"{frame['p50'][i]:.2f} ({kind} units): residual robust z {z[i]:.1f}"
                for i in worst
            ],
            detector="forecast_residual",
        )
        frames.append(found.assign(target_kind=kind))
    return pd.concat(frames, ignore_index=True)


def gap_findings(gaps: pd.DataFrame) -> pd.DataFrame:
    """marts.fct_gaps rows (meter_id, gap_start, gap_end, missing_intervals) as findings."""
    if gaps.empty:
        return _empty()
    hours = (gaps["gap_end"] - gaps["gap_start"]) / pd.Timedelta(hours=1)
    return pd.DataFrame(
        {
            "target_id": gaps["meter_id"],
            "interval_start": gaps["gap_start"],
            "interval_end": gaps["gap_end"],
            "day": None,
            "kind": "gap",
            "score": gaps["missing_intervals"].astype(float),
            "detector": "fct_gaps",
            "reason": [
                f"no reading for {n} interval{'s' if n != 1 else ''} ({h:g} h)"
                for n, h in zip(gaps["missing_intervals"], hours, strict=True)
            ],
        }
    )


def find_anomalies(
    series: pd.DataFrame,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    t: AnomalyThresholds = DEFAULTS,
    tz: str = "UTC",
) -> pd.DataFrame:
    """Every rule and the IsolationForest over `series`; findings that touch [start, end).

    Rows before `start` serve as history for the baselines (see the module docstring).
    """
    frame = prepare(series)
    if frame.empty:
        return _empty()
    mask = baseline_mask(frame, start, t.history_days)
    base = baseline(frame, mask)
    profiles = daily_profiles(frame, tz, t.day_coverage)
    parts = [
        flatlines(frame, t),
        dropouts(frame, base, t),
        spikes(frame, mask, t),
        offpeak_spikes(frame, mask, t, tz),
        reverse_flows(frame, base, t),
        day_shifts(frame, t, tz, profiles),
        isolated_days(profiles, t),
    ]
    found = pd.concat([p for p in parts if not p.empty] or [_empty()], ignore_index=True)
    return within(episodes(found, pd.Timedelta(hours=t.episode_gap_hours), tz), start, end, tz)


def episodes(found: pd.DataFrame, gap: pd.Timedelta, tz: str = "UTC") -> pd.DataFrame:
    """One finding per episode: findings of one target and kind less than `gap` apart merge into
    one spanning them all, with the strongest one's score and reason (and how many merged).
    A day finding covers its local day; consecutive flagged days become one span (`day` keeps the
    first day)."""
    if found.empty:
        return found
    found = found.reset_index(drop=True)
    day = pd.to_datetime(found["day"].astype(str), errors="coerce").dt.tz_localize(tz)
    start = pd.to_datetime(found["interval_start"], utc=True).fillna(day.dt.tz_convert("UTC"))
    end = pd.to_datetime(found["interval_end"], utc=True).fillna(
        (day + pd.Timedelta(days=1)).dt.tz_convert("UTC")
    )
    order = np.lexsort(
        (start.to_numpy(), found["kind"].to_numpy(), found["target_id"].astype(str).to_numpy())
    )
    found, start, end = (x.iloc[order].reset_index(drop=True) for x in (found, start, end))
    same = (
        found["target_id"].eq(found["target_id"].shift()) & found["kind"].eq(found["kind"].shift())
    ).to_numpy()
    reach = end.groupby((~same).cumsum()).cummax().shift()
    episode = np.cumsum(~(same & (start < reach + gap).to_numpy()))
    if episode[-1] == len(found):
        return found
    rows = []
    for _, rows_of in found.groupby(episode, sort=False):
        if len(rows_of) == 1:
            rows.append(rows_of.iloc[0])
            continue
        best = rows_of.loc[rows_of["score"].astype(float).idxmax()].copy()
        first, last = start[rows_of.index].min(), end[rows_of.index].max()
        best["interval_start"], best["interval_end"] = first, last
        best["day"] = rows_of["day"].iloc[0]
        best["reason"] = (
            f"{best['reason']} (the strongest of {len(rows_of)} {best['kind']} "
            f"findings less than {_hours(gap)} apart, {first:%Y-%m-%d %H:%M} to "
            f"{last:%Y-%m-%d %H:%M} UTC)"
        )
        rows.append(best)
    return pd.DataFrame(rows).reset_index(drop=True)


def _hours(gap: pd.Timedelta) -> str:
    hours = gap / pd.Timedelta(hours=1)
    return f"{hours / 24:g} day{'s' if hours != 24 else ''}" if hours % 24 == 0 else f"{hours:g} h"


def within(
    found: pd.DataFrame, start: pd.Timestamp | None, end: pd.Timestamp | None, tz: str = "UTC"
) -> pd.DataFrame:
    """Findings touching [start, end), interval spans clipped to it (a run that began in the
    history is reported from `start`, its reason still telling the whole run)."""
    if found.empty:
        return found.reset_index(drop=True)
    found = found.copy()
    found["interval_start"] = pd.to_datetime(found["interval_start"], utc=True)
    found["interval_end"] = pd.to_datetime(found["interval_end"], utc=True)
    lo = pd.Timestamp.min.tz_localize("UTC") if start is None else pd.Timestamp(start)
    hi = pd.Timestamp.max.tz_localize("UTC") if end is None else pd.Timestamp(end)
    day_start = pd.to_datetime(found["day"].astype(str), errors="coerce").dt.tz_localize(tz)
    spans = found["interval_start"].notna()
    keep = np.where(
        spans,
        (found["interval_start"] < hi) & (found["interval_end"] > lo),
        (day_start < hi) & (day_start + pd.Timedelta(days=1) > lo),
    )
    found = found[keep].copy()
    found.loc[spans, "interval_start"] = found.loc[spans, "interval_start"].clip(lower=lo)
    found.loc[spans, "interval_end"] = found.loc[spans, "interval_end"].clip(upper=hi)
    return found.reset_index(drop=True)


@dataclass
class MonthInputs:
    """What the detectors judge for one month, the four weeks before it included."""

    meters: pd.DataFrame  # target_id, interval_start, interval_end, value, delivered (kW)
    feeders: pd.DataFrame  # target_id, interval_start, value (kW; null unless all reported)
    gaps: pd.DataFrame  # marts.fct_gaps rows touching the month
    forecasts: pd.DataFrame  # the month's backtest forecasts with their actuals

    def loads(self, month: date) -> dict[str, pd.DataFrame]:
        """The meters' and feeders' curves inside the month, without the history before it."""
        start = pd.Timestamp(month, tz="UTC")
        return {
            "meters": self.meters[self.meters["interval_start"] >= start],
            "feeders": self.feeders[self.feeders["interval_start"] >= start],
        }


MONTH_COLUMNS = ["month_start", "target_kind", *FINDING_COLUMNS]


def month_findings(
    inputs: MonthInputs, month: date, following: date, tz: str, t: AnomalyThresholds = DEFAULTS
) -> pd.DataFrame:
    """Every detector over one month, as `ml.anomalies` rows: meters and feeders by the rules and
    the forest, meter gaps from marts.fct_gaps, backtest residuals from ml.forecasts."""
    start, end = (pd.Timestamp(d, tz="UTC") for d in (month, following))
    gaps = within(gap_findings(inputs.gaps), start, end, tz)
    parts = [
        find_anomalies(inputs.meters, start, end, t, tz).assign(target_kind="meter"),
        find_anomalies(inputs.feeders, start, end, t, tz).assign(target_kind="feeder"),
        gaps.assign(target_kind="meter"),
        within(forecast_residuals(inputs.forecasts, t), start, end, tz),
    ]
    found = [p for p in parts if not p.empty] or [pd.DataFrame(columns=MONTH_COLUMNS[1:])]
    found = pd.concat(found, ignore_index=True)
    return found.reindex(columns=MONTH_COLUMNS[1:]).assign(month_start=month)[MONTH_COLUMNS]
