"""Anomaly detectors for interval load data (pure logic: no database, no Dagster).

Thresholds are `settings.AnomalyThresholds`, settable per platform (`ENERGY_ANOMALY_*`).

Input is a long frame: target_id, interval_start (UTC), value (average kW, NaN for a gap),
optionally interval_end, `delivered` (imported kW, for the negative-import check), `feeder`
(for the silent-meter check) and `timezone` (the meter's local time, for night hours and
days). Every detector returns findings with the columns of `FINDING_COLUMNS`: a span of
intervals (interval_start .. interval_end) or a whole day (`day`; `find_anomalies` gives it
its local day's span too), a kind, a score (how far past its threshold, >= 1 means flagged), a
sentence with the numbers and `details`, the same numbers as a dict. `month_findings` adds each
finding's severity and action (`TRIAGE`).

Baselines are the meter's own: when the frame holds at least `history_days` of rows before
`history_end` (the asset passes the month start and reads four weeks before it), those rows
alone form the baseline, so a month's own faults cannot hide themselves; otherwise the whole
frame does (robust statistics tolerate the contamination).
"""

from __future__ import annotations

import multiprocessing
import warnings
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date
from itertools import repeat

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
    "details",
]
MAD_SCALE = 1.4826  # MAD x this estimates the standard deviation of normal data


DEFAULTS = AnomalyThresholds()


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=FINDING_COLUMNS)


def _duration(intervals: int, step: pd.Timedelta) -> str:
    hours = intervals * step / pd.Timedelta(hours=1)
    return f"{intervals} interval{'s' if intervals != 1 else ''} ({hours:g} h)"


def _each(ids: pd.Series, per_target: pd.Series) -> pd.Series:
    """`per_target` (indexed by target) on every row of `ids`, `prepare`'s categorical ids, as
    `ids.map(per_target)` gave for string ids: by their codes, which maps millions of rows at
    the cost of one array lookup (the map of string ids built a Python object per row)."""
    values = per_target.reindex(ids.cat.categories).to_numpy()
    return pd.Series(values[ids.cat.codes.to_numpy()], index=ids.index, name=per_target.name)


def _codes(ids: pd.Series) -> np.ndarray:
    """Integers equal where the target ids are equal: `prepare`'s categorical codes."""
    if isinstance(ids.dtype, pd.CategoricalDtype):
        return ids.cat.codes.to_numpy()
    return pd.factorize(ids)[0]


def prepare(series: pd.DataFrame) -> pd.DataFrame:
    """Sorted by target and time, with interval_end (the target's usual step if not given)."""
    frame = series.sort_values(["target_id", "interval_start"], kind="stable")
    frame = frame.reset_index(drop=True)
    frame["target_id"] = frame["target_id"].astype("category")
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
    zero_share: pd.Series  # share of zeros on the day at the 3rd quartile (a dropout day or
    # two do not move it)
    repeat_share: pd.Series  # share of non-zero values equal to the one before
    negative_share: pd.Series
    days: pd.Series


def baseline(frame: pd.DataFrame, mask: pd.Series) -> Baseline:
    rows = frame.loc[mask & frame["value"].notna()]
    values = rows.groupby("target_id")["value"]
    median = values.median()
    deviation = (rows["value"] - _each(rows["target_id"], median)).abs()
    times = rows.groupby("target_id")["interval_start"]
    day = rows["interval_start"].dt.floor("D")
    zeros = (rows["value"] == 0).groupby([rows["target_id"], day]).mean()
    previous = rows["value"].groupby(rows["target_id"]).shift()
    nonzero = rows["value"] != 0
    repeats = (rows["value"] == previous)[nonzero].groupby(rows["target_id"][nonzero]).mean()
    return Baseline(
        median=median,
        mad=deviation.groupby(rows["target_id"]).median(),
        typical=rows["value"].abs().groupby(rows["target_id"]).mean(),
        zero_share=zeros.groupby(level="target_id").quantile(0.75),
        repeat_share=repeats.reindex(median.index).fillna(0.0),
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
    mad = (values - _each(by, median)).abs().groupby(by).median()
    high = values.groupby(by).quantile(quantile)
    return np.maximum(median + k * MAD_SCALE * mad, margin * high)


def _runs(frame: pd.DataFrame, mask: np.ndarray, key: np.ndarray | None = None) -> pd.DataFrame:
    """Maximal runs of flagged rows that are consecutive intervals of one target (and one `key`):
    first row, last row and length of each."""
    mask = np.asarray(mask, dtype=bool)
    target = _codes(frame["target_id"])
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
    frame: pd.DataFrame,
    runs: pd.DataFrame,
    kind: str,
    scores,
    reasons,
    detector: str = "rules",
    details=None,
) -> pd.DataFrame:
    """Findings over `runs` of `frame`; `details` (a dict per run) holds the detector's numbers
    (the run's length and its score when not given)."""
    if runs.empty:
        return _empty()
    scores = np.asarray(scores, dtype=float)
    if details is None:
        details = [
            {"intervals": int(n), "score": round(float(v), 3)}
            for n, v in zip(runs["length"], scores, strict=True)
        ]
    return pd.DataFrame(
        {
            "target_id": frame["target_id"].iloc[runs["first"]].to_numpy(),
            "interval_start": frame["interval_start"].iloc[runs["first"]].to_numpy(),
            "interval_end": frame["interval_end"].iloc[runs["last"]].to_numpy(),
            "day": None,
            "kind": kind,
            "score": scores,
            "detector": detector,
            "reason": list(reasons),
            "details": list(details),
        }
    ).astype({"interval_start": "datetime64[ns, UTC]", "interval_end": "datetime64[ns, UTC]"})


def _steps(frame: pd.DataFrame, runs: pd.DataFrame) -> pd.Series:
    first = runs["first"].to_numpy()
    ns = frame["interval_end"].array.asi8[first] - frame["interval_start"].array.asi8[first]
    return pd.Series(pd.to_timedelta(ns, unit="ns"), index=runs.index)


def flatlines(frame: pd.DataFrame, base: Baseline, t: AnomalyThresholds = DEFAULTS) -> pd.DataFrame:
    """Stuck registers: the same non-zero value for as many intervals in a row as the meter,
    by its own rate of repeating a value, would reach by chance less often than
    `flatline_chance` (from `flatline_min_intervals` for a meter that rarely repeats itself to
    `flatline_intervals` for a coarse, quantised one). Runs of zeros are the dropout check's."""
    values = frame["value"].to_numpy()
    flat = ~np.isnan(values) & (values != 0)
    runs = _runs(frame, flat, key=values)
    repeat = _each(frame["target_id"], base.repeat_share).fillna(1.0).to_numpy()[runs["first"]]
    with np.errstate(divide="ignore"):
        chance = np.ceil(np.log(t.flatline_chance) / np.log(np.clip(repeat, 1e-9, 1 - 1e-9)))
    needed = np.clip(chance + 1, t.flatline_min_intervals, t.flatline_intervals)
    keep = runs["length"].to_numpy() >= needed
    runs, needed = runs[keep], needed[keep]
    steps = _steps(frame, runs)
    stuck = values[runs["first"].to_numpy()] if len(runs) else []
    return _span_findings(
        frame,
        runs,
        "flatline",
        runs["length"] / needed,
        [
            f"value stuck at {v:.2f} kW for {_duration(n, s)}"
            for v, n, s in zip(stuck, runs["length"], steps, strict=True)
        ],
        details=[
            {"value_kw": float(v), "intervals": int(n), "needed": int(k), "repeat_share": float(r)}
            for v, n, k, r in zip(stuck, runs["length"], needed, repeat[keep], strict=True)
        ],
    )


def dropouts(frame: pd.DataFrame, base: Baseline, t: AnomalyThresholds = DEFAULTS) -> pd.DataFrame:
    """Sudden drops to zero: `dropout_intervals` zeros in a row on a meter that normally draws
    (or exports) power; a normally idle meter at zero is not a fault."""
    values = frame["value"].to_numpy()
    share = _each(frame["target_id"], base.zero_share).fillna(1.0).to_numpy()
    runs = _runs(frame, (values == 0) & (share < t.idle_share))
    first = runs["first"].to_numpy()
    needed = np.where(share[first] < t.rare_zero_share, t.dropout_intervals, t.flatline_intervals)
    runs = runs[runs["length"].to_numpy() >= needed]
    steps = _steps(frame, runs)
    typical = _each(frame["target_id"], base.typical).to_numpy()
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


def judged_ceiling(
    frame: pd.DataFrame, mask: pd.Series, k: float, quantile: float, margin: float
) -> pd.Series:
    """Per target, the higher of the `ceiling`s of its baseline's non-zero readings (`mask`) and
    of all its rows: a meter idle at zero most of the time is judged by what it draws when it
    draws, a meter whose quiet history (a vacant home) gives a tiny ceiling by what it draws now
    too, and a single spike cannot lift a ceiling set by a quantile of a month's readings."""
    known = frame["value"].notna()
    limits = []
    for rows in (mask & known & (frame["value"] != 0), known):
        rows = frame.loc[rows]
        limits.append(ceiling(rows["value"], rows["target_id"], k, quantile, margin))
    return pd.concat(limits, axis=1).max(axis=1)


def spikes(frame: pd.DataFrame, mask: pd.Series, t: AnomalyThresholds = DEFAULTS) -> pd.DataFrame:
    """Values above a physical ceiling, or above the meter's robust statistical ceiling."""
    limit = _each(
        frame["target_id"], judged_ceiling(frame, mask, t.spike_k, t.spike_quantile, t.spike_margin)
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
    night_limit = _each(
        frame["target_id"],
        judged_ceiling(
            frame[night], mask[night], t.offpeak_k, t.offpeak_quantile, t.offpeak_margin
        ),
    )
    day_limit = _each(
        frame["target_id"], judged_ceiling(frame, mask, t.spike_k, t.spike_quantile, t.spike_margin)
    )
    night_level = _each(frame["target_id"], rows.groupby("target_id")["value"].median())
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
    target = _codes(frame["target_id"])
    joined = (first > 0) & (target[before] == target[first])
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
    exports = _each(frame["target_id"], base.negative_share > t.export_share).fillna(True)
    tolerance = _each(frame["target_id"], base.typical) * t.reverse_flow_share
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


TRAILING_BLOCK = 20_000_000
"""Values (targets x days x slots x window) `trailing_days` holds at once: about 160 MB."""


def trailing_days(
    profiles: pd.DataFrame, window: int, min_days: int, following: bool = False
) -> tuple[pd.Series, pd.Series, pd.DataFrame]:
    """Per target-day, from the previous `window` days (the day itself excluded, at least
    `min_days` of them): the median day mean, the MAD of the day means around it and the median
    profile. With `following`, from the next `window` days instead (a month judged after the
    fact has days after most of its days).

    Every target's days go on one calendar (a day a target has no row for is empty), as a
    targets x days x slots array, so the windows of a block of targets are reduced at once.
    """
    slots = profiles.shape[1]
    target, targets = pd.factorize(profiles.index.get_level_values("target_id"))
    days = pd.DatetimeIndex(profiles.index.get_level_values("day"))
    if not len(days):
        empty = pd.Series(np.nan, index=profiles.index, dtype=float)
        return empty, empty.copy(), profiles.astype(float) * np.nan
    position = ((days - days.min()) // pd.Timedelta(days=1)).to_numpy()
    calendar = int(position.max()) + 1
    if following:  # the days after a day are the days before it, the calendar reversed
        position = calendar - 1 - position
    values = profiles.to_numpy(dtype=float)
    level = np.full(len(profiles), np.nan)
    spread = np.full(len(profiles), np.nan)
    usual = np.full(values.shape, np.nan)
    block = max(1, TRAILING_BLOCK // (calendar * slots * window))
    for first in range(0, len(targets), block):
        rows = np.flatnonzero((target >= first) & (target < first + block))
        grid = np.full((min(block, len(targets) - first), calendar + window, slots), np.nan)
        # window empty days before the first, so the day at calendar position d is at d + window
        grid[target[rows] - first, position[rows] + window] = values[rows]
        grid = grid[:, :-1]  # a day's window ends the day before it
        at = (target[rows] - first, position[rows])
        past_means = sliding_window_view(_nanmean(grid, axis=2), window, axis=1)[at]
        enough = (~np.isnan(past_means)).sum(axis=1) >= min_days
        middle = _nanmedian(past_means, axis=1)
        level[rows] = np.where(enough, middle, np.nan)
        deviation = np.abs(past_means - middle[:, None])
        spread[rows] = np.where(enough, _nanmedian(deviation, axis=1), np.nan)
        past = sliding_window_view(grid, window, axis=1)[at]  # row x slot x previous days
        usual[rows] = np.where(enough[:, None], _nanmedian(past, axis=2), np.nan)
    return (
        pd.Series(level, index=profiles.index),
        pd.Series(spread, index=profiles.index),
        pd.DataFrame(usual, index=profiles.index, columns=profiles.columns),
    )


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows give NaN, as meant
        return np.nanmean(values, axis=axis)


def _nanmedian(values: np.ndarray, axis: int) -> np.ndarray:
    """np.nanmedian's values, by one sort along `axis` (NaN sorts last): numpy's own takes a
    masked-array path per call that is many times slower on short axes."""
    ordered = np.moveaxis(np.sort(values, axis=axis), axis, -1)
    count = (~np.isnan(ordered)).sum(axis=-1, keepdims=True)
    low = np.take_along_axis(ordered, np.maximum(count - 1, 0) // 2, axis=-1)
    high = np.take_along_axis(ordered, count // 2, axis=-1)
    middle = np.where(count % 2 == 1, low, (low + high) / 2)[..., 0]
    return np.where(count[..., 0] > 0, middle, np.nan)


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
    # A meter idle at zero on most days has no level to shift from: its odd day of use is not one.
    flagged = (z > t.level_k) & far & level.notna() & (floor > 0)
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
        numbers = {
            "day_mean_kw": round(float(means[key]), 4),
            "usual_mean_kw": round(float(level[key]), 4),
            "robust_z": round(float(z[key]), 2),
            "correlation": round(float(corr[key]), 3),
        }
        rows.append((target, None, None, day, kind, z[key] / t.level_k, "rules", reason, numbers))
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
    ids = features.index.get_level_values("target_id")
    features = features[counts.reindex(ids).to_numpy() >= t.forest_min_days]
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
                {
                    "isolation_score": round(float(score), 3),
                    **{f: round(float(row[f]), 3) for f in ("energy", "peak", "night_day")},
                    "most_unusual": list(odd),
                },
            )
        )
    return pd.DataFrame(rows, columns=FINDING_COLUMNS) if rows else _empty()


def _day_rows(rows: list[tuple], kind: str) -> pd.DataFrame:
    """Day findings (target, day, score, reason, details) as FINDING_COLUMNS rows."""
    if not rows:
        return _empty()
    return pd.DataFrame(
        [(tid, None, None, day, kind, sc, "rules", why, d) for tid, day, sc, why, d in rows],
        columns=FINDING_COLUMNS,
    )


def _log_level(values: pd.Series) -> pd.Series:
    """log of a positive level; NaN where the level is not positive."""
    return np.log(values.where(values > 0))


def _quantile_name(q: float) -> str:
    return "min" if q == 0 else "max" if q == 1 else f"q{round(100 * q):02d}"


def _quantile_moves(
    logs: pd.DataFrame, usual: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """Per day, the log ratio of each quantile to its `usual` level, which quantiles have a usual
    level above zero, and the median of the finite ratios."""
    judged = usual.notna()
    # A quantile above zero on the usual days but not on this one moved by no ratio.
    moved = (logs - usual).where(~(judged & logs.isna()), np.inf)
    return moved, judged, moved.where(np.isfinite(moved)).median(axis=1)


def multiplier_errors(profiles: pd.DataFrame, t: AnomalyThresholds = DEFAULTS) -> pd.DataFrame:
    """Days on which the whole load is scaled by a CT or multiplier ratio (x or / 10, 2, sqrt 3,
    `multiplier_ratios`): every quantile of the day's readings (`multiplier_quantiles`, from the
    minimum to the high load) moved against the same quantile of the trailing days by about one
    ratio (`multiplier_spread`, or `multiplier_spread_share` of a large one), their median ratio
    close to a candidate, and far from 1 against the day-to-day spread of that median ratio on
    the trailing days.

    A wrong multiplier scales every reading, so the whole distribution of the day moves by one
    factor. Ordinary changes add or remove a load: a holiday drops the evening peak but keeps the
    fridge's base load, a cold evening or a storage heater adds to some hours only, so the low
    and high quantiles move by different ratios. A household's energy varies ~2x day to day, so
    the ratio is judged against the meter's own spread, as a robust z.

    A month is judged after the fact, so most of its days also have days after them: a day that
    shows the ratio against the trailing days and against the following days alike (a fault
    put right) needs a lower z (`multiplier_return_k`), within a tolerance that grows with the
    meter's spread, and may have one quantile off the ratio.
    """
    if profiles.empty:
        return _empty()
    quantiles = list(t.multiplier_quantiles)
    names = [_quantile_name(q) for q in quantiles]
    stats = profiles.quantile(quantiles, axis=1).T
    stats.columns = names
    logs = stats.apply(_log_level)
    usual = pd.DataFrame(
        {n: trailing_days(logs[[n]], t.level_days, t.level_min_days)[0] for n in names}
    )
    moved, judged, estimate = _quantile_moves(logs, usual)
    counted = judged.sum(axis=1)
    enough = counted >= (len(names) + 1) // 2
    candidates = np.log(np.r_[t.multiplier_ratios, 1 / np.asarray(t.multiplier_ratios)])
    nearest = candidates[np.abs(estimate.fillna(0).to_numpy()[:, None] - candidates).argmin(axis=1)]
    nearest = pd.Series(nearest, index=profiles.index)
    close = (estimate - nearest).abs() <= t.multiplier_tolerance
    spread = np.maximum(t.multiplier_spread, t.multiplier_spread_share * nearest.abs())
    off = (moved.sub(nearest, axis=0).abs().gt(spread, axis=0) & judged).sum(axis=1)
    # The median ratio moves from one ordinary day to the next too: its own spread over the
    # trailing days (each against its own previous weeks) is the yardstick.
    _, wander, _ = trailing_days(estimate.to_frame(), t.level_days, t.level_min_days)
    sd = np.maximum(MAD_SCALE * wander, 0.05)
    z = estimate.abs() / sd
    flagged = close & (off == 0) & enough & (z >= t.multiplier_k)
    # A wrong multiplier that is put right leaves the load where it was: against the days after
    # the day too, the same ratio, at the laxer multiplier_return_k. An ordinary change of level
    # (a new tenant, the heating season) stays, so the following days do not show the ratio.
    following = pd.DataFrame(
        {
            n: trailing_days(logs[[n]], t.level_days, t.level_min_days, following=True)[0]
            for n in names
        }
    )
    _, judged_after, after = _quantile_moves(logs, following)
    within = t.multiplier_return_tolerance * sd
    returned = (
        ((estimate - nearest).abs() <= within)
        & ((after - nearest).abs() <= within)
        & (np.minimum(estimate.abs(), after.abs()) >= t.multiplier_return_k * sd)
        & (off <= t.multiplier_return_outliers)
        & enough
        & (judged_after.sum(axis=1) >= (len(names) + 1) // 2)
    )
    flagged |= returned
    rows = []
    low, mid, high = (names[int(np.abs(np.asarray(quantiles) - q).argmin())] for q in (0.1, 0.5, 1))
    for key in flagged[flagged].index:
        r, near = float(np.exp(estimate[key])), float(np.exp(nearest[key]))
        rows.append(
            (
                *key,
                z[key] / t.multiplier_k,
                f"the day's readings are x{r:.2f} the previous days' throughout: {low}"
                f" {stats.at[key, low]:.2f} kW, {mid} {stats.at[key, mid]:.2f} kW, {high}"
                f" {stats.at[key, high]:.2f} kW against {np.exp(usual.at[key, low]):.2f},"
                f" {np.exp(usual.at[key, mid]):.2f} and {np.exp(usual.at[key, high]):.2f} kW"
                f" ({z[key]:.1f} robust SDs of the day-to-day spread)"
                + (f" and x{np.exp(after[key]):.2f} the following days'" if returned[key] else "")
                + f", close to a ratio of {near:.3g}: a wrong CT ratio or multiplier?",
                {
                    "ratio": round(r, 3),
                    "ratio_to_following": round(float(np.exp(after[key])), 3)
                    if np.isfinite(after[key])
                    else None,
                    "nearest_ratio": round(near, 4),
                    "robust_z": round(float(z[key]), 2),
                    **{f"day_{n}_kw": round(float(stats.at[key, n]), 4) for n in names},
                    **{
                        f"usual_{n}_kw": round(float(np.exp(usual.at[key, n])), 4)
                        for n in names
                        if judged.at[key, n]
                    },
                },
            )
        )
    return _day_rows(rows, "multiplier_error")


def _correlations(days: np.ndarray, usual: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """Pearson correlation of each day's row with the usual row rolled by each lag
    (days x lags)."""
    centred = days - days.mean(axis=1, keepdims=True)
    out = np.empty((len(days), len(lags)))
    for j, lag in enumerate(lags):
        rolled = np.roll(usual, lag, axis=1)
        rolled = rolled - rolled.mean(axis=1, keepdims=True)
        norm = np.sqrt((centred**2).sum(axis=1) * (rolled**2).sum(axis=1))
        out[:, j] = (centred * rolled).sum(axis=1) / np.where(norm > 0, norm, np.nan)
    return out


def clock_shifts(profiles: pd.DataFrame, t: AnomalyThresholds = DEFAULTS) -> pd.DataFrame:
    """Days whose hourly profile matches the meter's usual one (the median of the trailing days)
    far better when shifted by whole hours than as it is: a clock or timezone error (a DST
    change applied twice or not at all is a shift of one hour).

    Profiles are by local time (the meter's timezone), so the DST days themselves do not
    shift; a household whose days vary a lot never correlates with its usual day well enough
    (`clock_correlation`) to be judged.
    """
    if profiles.empty:
        return _empty()
    slots = profiles.shape[1]
    hourly = profiles.T.groupby(np.arange(slots) * 24 // slots).mean().T
    hourly = hourly.where(hourly.notna(), hourly.mean(axis=1), axis=0)
    _, _, usual = trailing_days(hourly, t.level_days, t.level_min_days)
    known = usual.notna().all(axis=1) & hourly.notna().all(axis=1)
    if not known.any():
        return _empty()
    days, usual = hourly[known], usual[known]
    lags = np.arange(-t.clock_max_hours, t.clock_max_hours + 1)
    corr = _correlations(days.to_numpy(), usual.to_numpy(), lags)
    best = np.nanargmax(np.nan_to_num(corr, nan=-2.0), axis=1)
    at_best = corr[np.arange(len(corr)), best]
    at_zero = corr[:, t.clock_max_hours]
    shift = lags[best]
    regular = pd.Series(at_zero, index=days.index).groupby(level="target_id").transform("median")
    flagged = (shift != 0) & (at_best >= t.clock_correlation)
    flagged &= (regular >= t.clock_regularity).to_numpy()
    flagged &= at_best - np.nan_to_num(at_zero, nan=-1.0) >= t.clock_gain
    rows = []
    for i in np.flatnonzero(flagged):
        h = int(shift[i])
        rows.append(
            (
                *days.index[i],
                (at_best[i] - at_zero[i]) / t.clock_gain,
                f"the day's profile matches the usual one {abs(h)} h "
                f"{'later' if h > 0 else 'earlier'} (correlation {at_best[i]:.2f} against "
                f"{at_zero[i]:.2f} as stamped): a clock or timezone shift?",
                {
                    "shift_hours": h,
                    "correlation_shifted": round(float(at_best[i]), 3),
                    "correlation_as_stamped": round(float(at_zero[i]), 3),
                },
            )
        )
    return _day_rows(rows, "clock_shift")


STALE_LAGS = (pd.Timedelta(days=1), pd.Timedelta(days=7))
"""Earlier intervals a stale copy repeats: the day before, the week before."""


def _repeats(frame: pd.DataFrame, lag: pd.Timedelta) -> np.ndarray:
    """Per row, whether its value equals, exactly, its target's value `lag` earlier (a row
    without a reading `lag` earlier is no repeat)."""
    target = _codes(frame["target_id"]).astype("int64")
    seconds = frame["interval_start"].array.asi8 // 10**9
    key = target * 10**11 + seconds  # sorted, as `prepare` sorts by target and time
    wanted = key - int(lag.total_seconds())
    at = np.minimum(np.searchsorted(key, wanted), len(key) - 1)
    values = frame["value"].to_numpy()
    found = key[at] == wanted
    return found & ~np.isnan(values) & (values == np.where(found, values[at], np.nan))


def _repeat_runs(frame: pd.DataFrame, lag: pd.Timedelta, hours: float, distinct: int):
    """Runs of at least `hours` of readings identical to those `lag` before, with at least
    `distinct` distinct values (a flat or idle meter repeats itself honestly); with the number
    of intervals each needed."""
    values = frame["value"].to_numpy()
    step = (frame["interval_end"] - frame["interval_start"]).to_numpy()
    needed = np.ceil(pd.Timedelta(hours=hours).to_timedelta64() / step)
    runs = _runs(frame, _repeats(frame, lag))
    runs = runs[runs["length"].to_numpy() >= needed[runs["first"].to_numpy()]]
    counts = np.array(
        [
            len(np.unique(values[a : b + 1]))
            for a, b in zip(runs["first"], runs["last"], strict=True)
        ],
        dtype=int,
    )
    runs = runs[counts >= distinct]
    return runs, needed[runs["first"].to_numpy()]


def stale_copies(frame: pd.DataFrame, t: AnomalyThresholds = DEFAULTS) -> pd.DataFrame:
    """Runs of at least `stale_hours` whose values are exactly those of the same intervals a day
    or a week before (a head-end that filled a day with an earlier one), with at least
    `stale_distinct` distinct values (a flat or idle meter repeats itself honestly)."""
    parts = []
    for lag in STALE_LAGS:
        runs, needed = _repeat_runs(frame, lag, t.stale_hours, t.stale_distinct)
        steps = _steps(frame, runs)
        when = "day" if lag == pd.Timedelta(days=1) else "week"
        parts.append(
            _span_findings(
                frame,
                runs,
                "stale_copy",
                runs["length"] / needed,
                [
                    f"{_duration(n, s)} identical, value for value, to the same intervals a "
                    f"{when} before: a copied or stale day?"
                    for n, s in zip(runs["length"], steps, strict=True)
                ],
                details=[{"intervals": int(n), "lag_days": lag.days} for n in runs["length"]],
            )
        )
    return pd.concat([p for p in parts if not p.empty] or [_empty()], ignore_index=True)


def clock_repeats(frame: pd.DataFrame, t: AnomalyThresholds = DEFAULTS) -> pd.DataFrame:
    """Readings stamped twice: a run identical, value for value, to the readings `h` whole hours
    before it (1 <= h <= `clock_max_hours`) that lasts at least those `h` hours, with at least
    `stale_distinct` distinct values. A meter clock set back by `h` hours stamps its next
    readings over the `h` hours already read (forward, the last `h` hours of its wrong day
    come again at their right time); a household repeating `h` hours of its own load, value
    for value, does not happen by chance. The finding spans both copies: which one is
    misplaced is for the analyst to see."""
    parts = []
    for h in range(1, t.clock_max_hours + 1):
        lag = pd.Timedelta(hours=h)
        runs, needed = _repeat_runs(frame, lag, h, t.stale_distinct)
        found = _span_findings(
            frame,
            runs,
            "clock_shift",
            runs["length"] / needed,
            [
                f"{_duration(n, s)} from {frame['interval_start'].iat[a]:%Y-%m-%d %H:%M} UTC "
                f"identical, value for value, to the {h} h before: readings stamped twice, a "
                f"clock {h} h off?"
                for a, n, s in zip(runs["first"], runs["length"], _steps(frame, runs), strict=True)
            ],
            details=[{"intervals": int(n), "lag_hours": h} for n in runs["length"]],
        )
        if not found.empty:
            found["interval_start"] -= lag
            parts.append(found)
    if not parts:
        return _empty()
    return pd.concat(parts).sort_values(["target_id", "interval_start"], ignore_index=True)


def _presence(rows: pd.DataFrame) -> pd.DataFrame:
    """Which target has a row at which interval_start: times x targets, both sorted (what
    `pd.crosstab(...).astype(bool)` gives, without its per-cell Python aggregation)."""
    time, times = pd.factorize(rows["interval_start"], sort=True)
    target, targets = pd.factorize(rows["target_id"], sort=True)
    seen = np.zeros((len(times), len(targets)), dtype=bool)
    seen[time, target] = True
    return pd.DataFrame(
        seen,
        index=pd.Index(times, name="interval_start"),
        columns=pd.Index(targets, name="target_id"),
    )


def silent_meters(frame: pd.DataFrame, t: AnomalyThresholds = DEFAULTS) -> pd.DataFrame:
    """Runs of `silent_intervals` or more in which a meter has no reading (no row, or a null
    value) while most of its feeder's meters (`silent_feeder_share`) report: the meter or its
    communication failed, not the feeder's. Needs a `feeder` column; counted from each meter's
    first reading in the frame (a meter added later is not silent before it)."""
    if "feeder" not in frame:
        return _empty()
    read = frame[frame["feeder"].notna() & frame["value"].notna()]
    found = []
    for feeder, part in read.groupby("feeder"):
        seen = _presence(part)
        if seen.shape[1] < 2:
            continue
        step = pd.Series(seen.index).diff().median()
        reporting = seen.sum(axis=1)
        up = (reporting >= t.silent_feeder_share * seen.shape[1]).to_numpy()[:, None]
        first = part.groupby("target_id")["interval_start"].min()[seen.columns].to_numpy()
        silent = ~seen.to_numpy() & up & (seen.index.to_numpy()[:, None] >= first[None, :])
        rows, meters = np.nonzero(silent)
        if not len(rows):
            continue
        missing = pd.DataFrame(
            {
                "target_id": seen.columns.to_numpy()[meters],
                "interval_start": seen.index[rows],
                "value": np.nan,
                "reporting": reporting.to_numpy()[rows],
            }
        ).sort_values(["target_id", "interval_start"], ignore_index=True)
        missing["interval_end"] = missing["interval_start"] + step
        runs = _runs(missing, np.ones(len(missing), dtype=bool))
        runs = runs[runs["length"] >= t.silent_intervals]
        steps = _steps(missing, runs)
        share = [
            missing["reporting"].iloc[a : b + 1].min() / seen.shape[1]
            for a, b in zip(runs["first"], runs["last"], strict=True)
        ]
        found.append(
            _span_findings(
                missing,
                runs,
                "silent_meter",
                runs["length"] / t.silent_intervals,
                [
                    f"no reading for {_duration(n, s)} while at least {q:.0%} of the meters of "
                    f"feeder {feeder} reported"
                    for n, s, q in zip(runs["length"], steps, share, strict=True)
                ],
                details=[
                    {"intervals": int(n), "feeder": feeder, "feeder_reporting_share": round(q, 3)}
                    for n, q in zip(runs["length"], share, strict=True)
                ],
            )
        )
    return pd.concat(found or [_empty()], ignore_index=True)


def _day_threshold(scores: pd.Series, days_per_year: float) -> float:
    """The |robust z| a day's energy error exceeds by chance `days_per_year` times a year,
    from an exponential tail fitted to the target's own history days above their median."""
    median = float(scores.median())
    excess = scores[scores > median] - median
    scale = float(excess.mean()) if len(excess) else 1.0
    return median + scale * np.log(0.5 * 365 / days_per_year)


def _slot_scale(frame: pd.DataFrame, mask: pd.Series, tz: str) -> tuple[pd.Series, pd.Series]:
    """Per row, the median and robust SD of its target's baseline residuals at the same local
    time of day (floored at a tenth of the target's typical robust SD)."""
    slot = local_slot(frame, tz)
    rows = frame.loc[mask & frame["value"].notna()]
    by = [rows["target_id"], slot[rows.index]]
    median = rows["value"].groupby(by).median()
    deviation = (rows["value"] - median.reindex(pd.MultiIndex.from_arrays(by)).to_numpy()).abs()
    sd = MAD_SCALE * deviation.groupby(by).median()
    floor = 0.1 * sd.groupby(level=0).median()
    sd = np.maximum(sd, floor.reindex(sd.index.get_level_values(0)).to_numpy())
    at = pd.MultiIndex.from_arrays([frame["target_id"], slot])
    return (
        pd.Series(median.reindex(at).to_numpy(), index=frame.index),
        pd.Series(sd.reindex(at).to_numpy(), index=frame.index),
    )


def _energy(frame: pd.DataFrame, first: int, last: int) -> tuple[float, float]:
    """Expected (p50) and observed energy over rows first..last (value units x hours)."""
    part = frame.iloc[first : last + 1]
    hours = (part["interval_end"] - part["interval_start"]) / pd.Timedelta(hours=1)
    return float((part["p50"] * hours).sum()), float((part["actual"] * hours).sum())


def _residual_finding(frame, first, last, score, what, unit, numbers) -> tuple:
    expected, observed = _energy(frame, first, last)
    reason = (
        f"{what}: observed {observed:.2f} {unit}h against an expected {expected:.2f} {unit}h"
        f" (day-ahead P50) from {frame['interval_start'].iat[first]:%Y-%m-%d %H:%M} to "
        f"{frame['interval_end'].iat[last]:%Y-%m-%d %H:%M} UTC"
    )
    details = {
        "expected_energy": round(expected, 4),
        "observed_energy": round(observed, 4),
        "unit": f"{unit}h",
        **numbers,
    }
    return (
        frame["target_id"].iat[first],
        frame["interval_start"].iat[first],
        frame["interval_end"].iat[last],
        None,
        "forecast_residual",
        score,
        "forecast_residual",
        reason,
        details,
    )


def _residual_runs(frame: pd.DataFrame, z: pd.Series, unit: str, t: AnomalyThresholds) -> list:
    runs = _runs(frame, (z.abs() > t.residual_z).to_numpy(), key=np.sign(z.to_numpy()))
    hours = runs["length"] * _steps(frame, runs) / pd.Timedelta(hours=1)
    runs = runs[hours >= t.residual_hours]
    rows = []
    for first, last, n in zip(runs["first"], runs["last"], runs["length"], strict=True):
        worst = float(z.iloc[first : last + 1].abs().max())
        rows.append(
            _residual_finding(
                frame,
                first,
                last,
                worst / t.residual_z,
                f"{n} intervals in a row beyond {t.residual_z:g} robust SDs of this target's"
                f" forecast error at their time of day (worst {worst:.1f})",
                unit,
                {"intervals": int(n), "worst_robust_z": round(worst, 2)},
            )
        )
    return rows


def _residual_days(
    frame: pd.DataFrame,
    mask: pd.Series,
    judged: pd.Series,
    unit: str,
    t: AnomalyThresholds,
    tz: str,
) -> list:
    day = frame["interval_start"].dt.tz_convert(tz).dt.date
    hours = (frame["interval_end"] - frame["interval_start"]) / pd.Timedelta(hours=1)
    error = (frame["value"] * hours).groupby([frame["target_id"], day]).sum()
    history = mask.groupby([frame["target_id"], day]).all()
    judge = judged.groupby([frame["target_id"], day]).all()
    rows = []
    for target, errors in error.groupby(level=0):
        past = errors[history[errors.index]]
        if len(past) < t.history_days:
            continue
        median = past.median()
        mad = MAD_SCALE * (past - median).abs().median()
        if not mad > 0:
            continue
        z = (errors - median) / mad
        limit = _day_threshold((z[past.index]).abs(), t.residual_days_per_year)
        for key in z.index[(z.abs() > limit) & judge[errors.index]]:
            positions = np.flatnonzero(
                ((frame["target_id"] == target) & (day == key[1])).to_numpy()
            )
            rows.append(
                _residual_finding(
                    frame,
                    positions[0],
                    positions[-1],
                    abs(z[key]) / limit,
                    f"the day's forecast energy error is {z[key]:+.1f} robust SDs of this "
                    f"target's daily errors (threshold {limit:.1f}, about "
                    f"{t.residual_days_per_year:g} days a year by chance)",
                    unit,
                    {"day_robust_z": round(float(z[key]), 2), "threshold": round(limit, 2)},
                )
            )
    return rows


RESIDUAL_UNITS = {"meter": "kW", "meters_total": "kW", "feeder": "MW", "system": "MW"}


def forecast_residuals(
    forecasts: pd.DataFrame,
    t: AnomalyThresholds = DEFAULTS,
    history_end: pd.Timestamp | None = None,
    tz: str = "UTC",
) -> pd.DataFrame:
    """Persistent, extreme day-ahead forecast errors, judged against the target's own
    out-of-sample errors (backtest rows before `history_end`, the whole input if too few):
    `residual_intervals` intervals in a row beyond `residual_z` robust SDs of its errors at
    that local time of day, or a day whose energy error is beyond what the target's daily errors
    reach `residual_days_per_year` times a year. Input: rows of ml.forecasts (target_kind,
    target_id, interval_start, p50, actual); output has target_kind too.

    An evening peak a forecast misses is ordinary for a household (its errors at 19:00 are
    wide), so it is judged against 19:00's errors, and one interval is never enough."""
    rows = forecasts.dropna(subset=["p50", "actual"])
    if rows.empty:
        return _empty().assign(target_kind=pd.Series(dtype=object))
    frames = []
    for kind, part in rows.groupby("target_kind"):
        part = part.astype({"p50": float, "actual": float})
        frame = prepare(part.assign(value=part["actual"] - part["p50"]))
        mask = baseline_mask(frame, history_end, t.history_days)
        median, sd = _slot_scale(frame, mask, tz)
        # The month's rows; a target without enough history is judged against all its rows.
        judged = frame["interval_start"] >= history_end if history_end is not None else mask
        z = ((frame["value"] - median) / sd).where(judged)
        unit = RESIDUAL_UNITS.get(kind, "kW")
        found = _residual_runs(frame, z, unit, t)
        found += _residual_days(frame, mask, judged, unit, t, tz)
        if found:
            frames.append(pd.DataFrame(found, columns=FINDING_COLUMNS).assign(target_kind=kind))
    if not frames:
        return _empty().assign(target_kind=pd.Series(dtype=object))
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
            "details": [{"missing_intervals": int(n)} for n in gaps["missing_intervals"]],
        }
    )


def _local_detectors(
    frame: pd.DataFrame, mask: pd.Series, t: AnomalyThresholds, tz: str
) -> list[pd.DataFrame]:
    """The detectors that read local time (night hours, days), over meters of timezone `tz`."""
    profiles = daily_profiles(frame, tz, t.day_coverage)
    return [
        offpeak_spikes(frame, mask, t, tz),
        day_shifts(frame, t, tz, profiles),
        multiplier_errors(profiles, t),
        clock_shifts(profiles, t),
        isolated_days(profiles, t),
    ]


def find_anomalies(
    series: pd.DataFrame,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    t: AnomalyThresholds = DEFAULTS,
    tz: str = "UTC",
) -> pd.DataFrame:
    """Every rule and the IsolationForest over `series`; findings that touch [start, end).

    Rows before `start` serve as history for the baselines (see the module docstring). A
    `timezone` column gives each meter its own local time (night hours, days); `tz` serves the
    rest. A `feeder` column lets a meter silent while its feeder reports be found.
    """
    frame = prepare(series)
    if frame.empty:
        return _empty()
    mask = baseline_mask(frame, start, t.history_days)
    base = baseline(frame, mask)
    zones = frame["timezone"].fillna(tz) if "timezone" in frame else pd.Series(tz, frame.index)
    parts = [
        flatlines(frame, base, t),
        dropouts(frame, base, t),
        spikes(frame, mask, t),
        reverse_flows(frame, base, t),
        stale_copies(frame, t),
        clock_repeats(frame, t),
        silent_meters(frame, t),
    ]
    for zone, rows in frame.groupby(zones, sort=True):
        local = rows.reset_index(drop=True)
        found = pd.concat(
            [
                p
                for p in _local_detectors(local, mask[rows.index].reset_index(drop=True), t, zone)
                if not p.empty
            ]
            or [_empty()],
            ignore_index=True,
        )
        # Day findings become spans here, each in its own timezone, so episodes need no zone.
        parts.append(_days_as_spans(found, zone))
    found = pd.concat([p for p in parts if not p.empty] or [_empty()], ignore_index=True)
    found = within(episodes(found, pd.Timedelta(hours=t.episode_gap_hours), tz), start, end, tz)
    return found.astype({"target_id": series["target_id"].dtype})  # not prepare's categories


def meter_shards(meters: pd.DataFrame, size: int) -> list[pd.DataFrame]:
    """`meters` split into shards of about `size` meters each, which the detectors judge apart.

    A feeder's meters stay together (the silent-meter check compares them); a meter on no feeder
    goes alone, and a meter is never split (one whose feeder changed in the window goes with the
    greatest name). The largest groups go first, each to the shard with the fewest meters so
    far, ties broken by the group's crc32: the same meters make the same shards, in any order.
    """
    ids = meters["target_id"].astype(str)
    count = -(-ids.nunique() // size)
    if count <= 1:
        return [meters]
    if "feeder" in meters:
        feeder = meters["feeder"].groupby(ids).max()
    else:
        feeder = pd.Series(np.nan, index=pd.unique(ids))
    key = ("meter " + feeder.index.to_series()).where(feeder.isna(), "feeder " + feeder.astype(str))
    sizes = key.value_counts()
    order = sorted(sizes.index, key=lambda k: (-sizes[k], zlib.crc32(k.encode()), k))
    load = [0] * count
    shard_of = {}
    for k in order:
        shard_of[k] = load.index(min(load))
        load[shard_of[k]] += sizes[k]
    shard = ids.map(key.map(shard_of)).to_numpy()
    return [meters[shard == s] for s in range(count) if (shard == s).any()]


def meter_findings(
    meters: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
    t: AnomalyThresholds = DEFAULTS,
    tz: str = "UTC",
    processes: int = 1,
) -> pd.DataFrame:
    """`find_anomalies` over each of `meter_shards`, up to `processes` shards at once.

    The findings depend on the shards only, never on `processes`. A daemonic process may not
    start processes of its own (multiprocessing forbids it): it judges its shards in turn.
    """
    shards = meter_shards(meters, t.shard_meters)
    processes = min(processes, len(shards))
    if processes <= 1 or multiprocessing.current_process().daemon:
        parts = [find_anomalies(shard, start, end, t, tz) for shard in shards]
    else:
        # fork: a spawned process would import the parent's __main__ again (whatever script
        # that is) and every module; forked workers only judge their shard and leave by _exit.
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(processes, mp_context=context) as pool:
            same = (repeat(a) for a in (start, end, t, tz))
            parts = list(pool.map(find_anomalies, shards, *same))
    return pd.concat(parts, ignore_index=True)


def _days_as_spans(found: pd.DataFrame, tz: str) -> pd.DataFrame:
    """Day findings with their local day's span (UTC) in interval_start / interval_end."""
    if found.empty:
        return found
    found = found.copy()
    day = pd.to_datetime(found["day"].astype(str), errors="coerce")
    start = day.dt.tz_localize(tz, ambiguous=True, nonexistent="shift_forward")
    end = (day + pd.Timedelta(days=1)).dt.tz_localize(
        tz, ambiguous=True, nonexistent="shift_forward"
    )
    found["interval_start"] = pd.to_datetime(found["interval_start"], utc=True).fillna(
        start.dt.tz_convert("UTC")
    )
    found["interval_end"] = pd.to_datetime(found["interval_end"], utc=True).fillna(
        end.dt.tz_convert("UTC")
    )
    return found


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


MONTH_COLUMNS = ["month_start", "target_kind", *FINDING_COLUMNS, "severity", "action"]
SEVERITIES = ("low", "medium", "high")
SEVERITY_SCORES = (1.5, 3.0)
"""A finding's score from which it is at least medium, high."""
TRIAGE = {  # kind: (the least severity, what to do)
    "spike": ("low", "check the reading against the register; estimate the interval if wrong"),
    "offpeak_spike": ("low", "check for a night-time load or a reading error"),
    "flatline": ("medium", "check the register and its communication; estimate the stuck run"),
    "drop_to_zero": ("medium", "check supply and meter; estimate the zeros if the meter failed"),
    "reverse_flow": ("medium", "check the CT polarity and the sign convention of the export"),
    "negative_import": ("medium", "check the CT polarity and the sign convention of the export"),
    "sign_flip": ("medium", "check the CT polarity and the sign convention of the export"),
    "level_shift": ("low", "check the multiplier and any change on site"),
    "multiplier_error": ("high", "check the CT ratio / multiplier held for the meter"),
    "clock_shift": ("medium", "check the meter's clock, timezone and DST setting"),
    "stale_copy": ("medium", "ask the head-end for the actual readings: these repeat earlier ones"),
    "silent_meter": ("medium", "check the meter's communication; estimate the gap"),
    "gap": ("low", "estimate the gap or ask for the missing readings"),
    "unusual_day": ("low", "compare the day with the meter's usual days"),
    "forecast_residual": ("low", "look for an event on site or a fault the rules do not name"),
}


def triage(found: pd.DataFrame) -> pd.DataFrame:
    """Each finding with a severity (its kind's least, raised by its score: `SEVERITY_SCORES`)
    and the action an analyst takes first."""
    floor = found["kind"].map(lambda k: SEVERITIES.index(TRIAGE.get(k, ("low",))[0]))
    # A gap's score counts its missing intervals; it is not a multiple of a threshold.
    score = found["score"].astype(float).where(found["kind"] != "gap", 0.0)
    by_score = np.searchsorted(SEVERITY_SCORES, score, side="right")
    level = np.maximum(floor.to_numpy(dtype=int), by_score)
    return found.assign(
        severity=[SEVERITIES[i] for i in level],
        action=found["kind"].map(lambda k: TRIAGE.get(k, ("low", "look at the load"))[1]),
    )


def unexplained_gaps(gaps: pd.DataFrame, meters: pd.DataFrame) -> pd.DataFrame:
    """The gap findings no `silent_meter` finding of the same meter covers: that one says more
    (its feeder kept reporting), and one fault is one finding."""
    silent = meters.loc[
        meters["kind"] == "silent_meter", ["target_id", "interval_start", "interval_end"]
    ]
    if gaps.empty or silent.empty:
        return gaps
    pairs = gaps.reset_index().merge(silent, on="target_id", suffixes=("", "_silent"))
    covered = pairs.loc[
        (pairs["interval_start"] >= pairs["interval_start_silent"])
        & (pairs["interval_end"] <= pairs["interval_end_silent"]),
        "index",
    ]
    return gaps.drop(index=covered.unique())


def month_findings(
    inputs: MonthInputs,
    month: date,
    following: date,
    tz: str,
    t: AnomalyThresholds = DEFAULTS,
    processes: int = 1,
) -> pd.DataFrame:
    """Every detector over one month, as `ml.anomalies` rows: meters (in shards, `processes` at
    once) and feeders by the rules and the forest, meter gaps from marts.fct_gaps, backtest
    residuals from ml.forecasts (the weeks before the month are their error history), each with
    its severity and action."""
    start, end = (pd.Timestamp(d, tz="UTC") for d in (month, following))
    gaps = within(gap_findings(inputs.gaps), start, end, tz)
    residuals = forecast_residuals(inputs.forecasts, t, start, tz)
    gap = pd.Timedelta(hours=t.episode_gap_hours)
    meters = meter_findings(inputs.meters, start, end, t, tz, processes)
    parts = [
        meters.assign(target_kind="meter"),
        find_anomalies(inputs.feeders, start, end, t, tz).assign(target_kind="feeder"),
        unexplained_gaps(gaps, meters).assign(target_kind="meter"),
        *(
            within(episodes(part, gap, tz), start, end, tz).assign(target_kind=kind)
            for kind, part in residuals.groupby("target_kind")
        ),
    ]
    found = [p for p in parts if not p.empty] or [pd.DataFrame(columns=MONTH_COLUMNS[1:-2])]
    found = triage(pd.concat(found, ignore_index=True).reset_index(drop=True))
    return found.reindex(columns=MONTH_COLUMNS[1:]).assign(month_start=month)[MONTH_COLUMNS]
