"""Anomaly detection measured on real data with injected, labelled faults.

    .venv/bin/python benchmarks/anomalies.py [--seed 0]

Loads the real LCL households (60, half-hourly, 2013) and the three OpenSTEF grid loads
(15-minute, Oct 2020 - Jan 2021) from ../shared/data. The households are put on six feeders of
ten (by id), as a utility's meters would be. Into every target-month of a copy goes one fault of
a kind drawn in turn, at a random reproducible place (the kinds in `KINDS`; reversed polarity
and a silent meter only on households, which have an import-only meter and a feeder). Then
`month_findings` runs month by month with four weeks of history, exactly as the ml/anomalies
asset does: every rule, the IsolationForest and the forecast-residual detector.

The residual detector needs out-of-sample forecasts. The platform's XGBoost backtest would take
hours over this data, so the benchmark computes a simple day-ahead forecast itself: each
interval's P50 is the median of the same UTC time of day over the 14 days before its day (at
least 7 of them), from the copy being judged (a fault also spoils the forecasts after it, as
it would the platform's). Its errors are those of a weaker forecast than the platform's, so the
residual findings here are, if anything, more numerous than with the platform's backtest.

A detection matches an injected fault when it is on the same target and overlaps it in time (a
day finding covers its UTC day). Counting is strict: every detection (one row as the asset
would write it to ml.anomalies) that overlaps no injected fault is false, residual findings and
the data's own faults included. Prints precision, recall and F1 per kind (precision of the
detections meant for that kind; recall by any detection) and overall, the precision of the
detectors not meant for one kind, and the findings per 1000 intervals on the uninjected copy;
writes benchmarks/results/anomalies.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import write_results  # noqa: E402
from energy_assets.anomalies.detectors import MonthInputs, month_findings  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HISTORY = pd.Timedelta(days=28)
FEEDER_SIZE = 10
FORECAST_DAYS, FORECAST_MIN_DAYS = 14, 7
KINDS = [
    "spike",
    "dropout",
    "flatline",
    "multiplier",
    "clock_shift",
    "stale_copy",
    "reversed_polarity",
    "silent_meter",
]
HOUSEHOLD_ONLY = {"reversed_polarity", "silent_meter"}
RATIOS = [10.0, 0.1, 2.0, 0.5, np.sqrt(3), 1 / np.sqrt(3)]  # CT / multiplier errors
DETECTS = {  # which detection kinds are meant for which injected kind (for per-kind precision)
    "spike": {"spike"},
    "dropout": {"drop_to_zero"},
    "flatline": {"flatline"},
    "multiplier": {"multiplier_error", "level_shift"},
    "clock_shift": {"clock_shift"},
    "stale_copy": {"stale_copy"},
    "reversed_polarity": {"reversed_polarity", "sign_flip", "reverse_flow"},
    "silent_meter": {"silent_meter"},
}


def load_data() -> pd.DataFrame:
    """Long frame target_id, interval_start (UTC), value (kW), feeder of the real series."""
    lcl = pd.read_csv(DATA / "lcl_london_2013_60hh" / "halfhourly_kwh.csv.gz")
    lcl.columns = ["target_id", "interval_start", "kwh"]
    frames = [
        pd.DataFrame(
            {
                "target_id": lcl["target_id"],
                "interval_start": pd.to_datetime(lcl["interval_start"]).dt.tz_localize("UTC"),
                "value": pd.to_numeric(lcl["kwh"].astype(str).str.strip(), errors="coerce") * 2,
            }
        )
    ]
    for pid in (287, 307, 435):
        grid = pd.read_csv(
            DATA / "openstef_example_nl_2020" / f"get_model_input_pid_{pid}.csv.gz",
            usecols=["index", "load"],
        ).dropna()
        frames.append(
            pd.DataFrame(
                {
                    "target_id": f"P{pid}",
                    "interval_start": pd.to_datetime(grid["index"], utc=True),
                    "value": grid["load"] * 1000,
                }
            )
        )
    data = pd.concat(frames, ignore_index=True).dropna(subset=["value"])
    data = data.sort_values(["target_id", "interval_start"]).reset_index(drop=True)
    households = sorted(t for t in data["target_id"].unique() if t.startswith("MAC"))
    feeder = {t: f"F{i // FEEDER_SIZE + 1}" for i, t in enumerate(households)}
    data["feeder"] = data["target_id"].map(feeder)
    return data


def scan_months(data: pd.DataFrame) -> list[pd.Timestamp]:
    """Every month holding data (the first month of a series has no history, as in the asset)."""
    months = data["interval_start"].dt.tz_localize(None).dt.to_period("M").unique()
    return sorted(m.to_timestamp().tz_localize("UTC") for m in months)


def _day_rows(rows: pd.DataFrame, day: pd.Timestamp, days: int = 1) -> pd.Index:
    times = rows["interval_start"]
    return rows.index[(times >= day) & (times < day + pd.Timedelta(days=days))]


def _fault(kind, rng, out, values, rows, at, per_hour, q999) -> tuple[list[int], list[int]]:
    """Change `values` for one fault of `kind` at row `at`; returns the rows it concerns and the
    rows to delete (a silent meter's)."""
    times = rows["interval_start"]
    day = out.at[at, "interval_start"].normalize()
    if kind == "spike":
        values[at] = q999 * rng.uniform(3, 6)
        return [at], []
    if kind in ("dropout", "flatline", "silent_meter"):
        hours = {"dropout": (2, 24), "flatline": (6, 8), "silent_meter": (2, 48)}[kind]
        span = list(range(at, at + int(rng.uniform(*hours) * per_hour)))
        span = [i for i in span if i <= rows.index[-1]]  # rows of one target are contiguous
        if kind == "flatline":
            values[span] = values[at] if values[at] != 0 else rows["value"].median()
        elif kind == "dropout":
            values[span] = 0.0
        return span, span if kind == "silent_meter" else []
    if kind == "multiplier":
        span = _day_rows(rows, day, int(rng.integers(1, 5))).tolist()
        values[span] = values[span] * RATIOS[rng.integers(len(RATIOS))]
        return span, []
    if kind == "reversed_polarity":
        span = list(range(at, min(at + int(rng.integers(1, 4) * 24 * per_hour), rows.index[-1])))
        values[span] = -values[span]
        return span, []
    span = _day_rows(rows, day).tolist()
    if kind == "clock_shift":  # the day's readings stamped `hours` early or late
        lag = int(rng.integers(2, 7) * rng.choice([-1, 1]) * per_hour)
        source = np.clip(np.asarray(span) - lag, rows.index[0], rows.index[-1])
        values[span] = values[source]
        return span, []
    # stale_copy: the day's readings are the previous day's, slot by slot
    position = pd.Series(rows.index, index=times)
    source = position.reindex(times[span] - pd.Timedelta(days=1)).to_numpy()
    copied = ~np.isnan(source)
    span = np.asarray(span)[copied].tolist()
    values[span] = values[source[copied].astype(int)]
    return span, []


def inject(data: pd.DataFrame, months: list[pd.Timestamp], seed: int):
    """One fault per target-month, kinds in turn from a random start; returns the faulty copy,
    the labels (target_id, kind, start, end) and how many faults changed nothing.

    A fault that changed no reading (a dropout, a multiplier or a copy on a meter reading zero
    all along) is no fault in the data and gets no label: no detector could find it.
    """
    rng = np.random.default_rng(seed)
    out = data.reset_index(drop=True)
    original = out["value"].to_numpy()
    values = original.copy()
    labels, silent, unchanged = [], [], 0
    for target, rows in out.groupby("target_id", sort=True):  # out is sorted by target, time
        times = rows["interval_start"]
        step = times.diff().median()
        per_hour = int(pd.Timedelta(hours=1) / step)
        q999 = rows["value"].quantile(0.999)
        kinds = [k for k in KINDS if rows["feeder"].notna().all() or k not in HOUSEHOLD_ONLY]
        turn = rng.integers(len(kinds))
        for month in months:
            following = month + pd.offsets.MonthBegin(1)
            inside = rows[
                (times >= month + pd.Timedelta(days=1)) & (times < following - pd.Timedelta(days=4))
            ]
            if len(inside) < 10 * 24 * per_hour:
                continue
            kind = kinds[turn % len(kinds)]
            turn += 1
            at = inside.index[rng.integers(len(inside))]
            span, dropped = _fault(kind, rng, out, values, rows, at, per_hour, q999)
            if not dropped and np.array_equal(values[span], original[span]):
                unchanged += 1
                continue
            silent.extend(dropped)
            start = out.at[span[0], "interval_start"]
            ratio = np.nan
            if kind == "multiplier":  # the ratio drawn, seen on the readings it changed
                changed = original[span] != 0
                ratio = float(np.median(values[span][changed] / original[span][changed]))
            end = out.at[span[-1], "interval_start"] + step
            labels.append((target, kind, start, end, ratio))
    out["value"] = values
    out = out.drop(index=silent).reset_index(drop=True)
    columns = ["target_id", "kind", "start", "end", "ratio"]
    return out, pd.DataFrame(labels, columns=columns), unchanged


def same_slot_forecast(data: pd.DataFrame) -> pd.DataFrame:
    """Day-ahead P50 per interval: the median of the same UTC time of day over the previous
    FORECAST_DAYS days (at least FORECAST_MIN_DAYS); rows of ml.forecasts with their actuals."""
    day = data["interval_start"].dt.normalize()
    slot = data["interval_start"] - day
    grid = data.pivot_table(index=["target_id", day.rename("day")], columns=slot, values="value")
    parts = []
    for target, rows in grid.groupby(level="target_id"):
        rows = rows.droplevel("target_id")
        rows = rows.reindex(pd.date_range(rows.index.min(), rows.index.max(), freq="D"))
        p50 = rows.rolling(FORECAST_DAYS, min_periods=FORECAST_MIN_DAYS).median().shift(1)
        long = p50.stack().rename("p50").reset_index()
        long.columns = ["day", "slot", "p50"]
        parts.append(long.assign(target_id=target))
    p50 = pd.concat(parts, ignore_index=True)
    p50["interval_start"] = p50["day"] + p50["slot"]
    frame = data[["target_id", "interval_start", "value"]].rename(columns={"value": "actual"})
    frame = frame.merge(p50[["target_id", "interval_start", "p50"]], how="inner")
    return frame.assign(target_kind="meter")


def detect(data: pd.DataFrame, months: list[pd.Timestamp]) -> pd.DataFrame:
    """month_findings month by month on the month plus four weeks of history, like the asset."""
    forecasts = same_slot_forecast(data)
    no_feeders = pd.DataFrame(
        {
            "target_id": pd.Series(dtype=object),
            "interval_start": pd.Series(dtype="datetime64[ns, UTC]"),
            "value": pd.Series(dtype=float),
        }
    )
    no_gaps = pd.DataFrame(columns=["meter_id", "gap_start", "gap_end", "missing_intervals"])
    found = []
    for month in months:
        following = month + pd.offsets.MonthBegin(1)
        window = (data["interval_start"] >= month - HISTORY) & (data["interval_start"] < following)
        inside = (forecasts["interval_start"] >= month - HISTORY) & (
            forecasts["interval_start"] < following
        )
        inputs = MonthInputs(
            meters=data[window], feeders=no_feeders, gaps=no_gaps, forecasts=forecasts[inside]
        )
        found.append(month_findings(inputs, month.date(), following.date(), "UTC"))
    found = pd.concat(found, ignore_index=True)
    day = pd.to_datetime(found["day"].astype(str), errors="coerce").dt.tz_localize("UTC")
    found["start"] = pd.to_datetime(found["interval_start"], utc=True).fillna(day)
    found["end"] = pd.to_datetime(found["interval_end"], utc=True).fillna(day + pd.Timedelta("1D"))
    return found


def overlaps(found: pd.DataFrame, labels: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per detection: does it overlap a label; per label: does a detection overlap it."""
    hit_found = np.zeros(len(found), dtype=bool)
    hit_label = np.zeros(len(labels), dtype=bool)
    by_target = {t: g for t, g in found.reset_index(drop=True).groupby("target_id")}
    for i, label in enumerate(labels.itertuples()):
        rows = by_target.get(label.target_id)
        if rows is None:
            continue
        over = (rows["start"] < label.end) & (rows["end"] > label.start)
        hit_label[i] = over.any()
        hit_found[rows.index[over.to_numpy()]] = True
    return hit_found, hit_label


def f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def score(found: pd.DataFrame, labels: pd.DataFrame) -> dict:
    """Per injected kind, overall, and per detection kind meant for no injected kind."""
    found = found.reset_index(drop=True)
    hit_found, hit_label = overlaps(found, labels)
    rows = {}
    for kind in KINDS:
        mine = found["kind"].isin(DETECTS[kind]).to_numpy()
        recall = float(hit_label[(labels["kind"] == kind).to_numpy()].mean())
        precision = float(hit_found[mine].mean()) if mine.any() else float("nan")
        rows[kind] = {
            "injected": int((labels["kind"] == kind).sum()),
            "flags": int(mine.sum()),
            "precision": precision,
            "recall": recall,
            "f1": f1(precision, recall),
        }
    precision, recall = float(hit_found.mean()), float(hit_label.mean())
    rows["overall"] = {
        "injected": len(labels),
        "flags": len(found),
        "precision": precision,
        "recall": recall,
        "f1": f1(precision, recall),
    }
    meant = set().union(*DETECTS.values())
    others = {}
    for kind, part in found[~found["kind"].isin(meant)].groupby("kind"):
        others[kind] = {"flags": len(part), "precision": float(hit_found[part.index].mean())}
    return {"kinds": rows, "other_detectors": others}


def multiplier_misses(found: pd.DataFrame, labels: pd.DataFrame) -> str:
    """The multiplier faults' recall by the ratio drawn and by how many days the fault held."""
    _, hit = overlaps(found.reset_index(drop=True), labels)
    faults = labels.assign(hit=hit, days=(labels["end"] - labels["start"]).dt.days)
    faults = faults[faults["kind"] == "multiplier"]

    def line(by: pd.Series, name) -> str:
        groups = faults.groupby(by)["hit"]
        return ", ".join(f"{name(k)} {g.mean():.2f} ({len(g)})" for k, g in groups)

    ratios = line(faults["ratio"].round(3), lambda r: f"x{r:g}")
    days = line(faults["days"], lambda d: f"{d} d")
    return f"multiplier recall by ratio: {ratios}\nmultiplier recall by days held: {days}"


def month_intervals(data: pd.DataFrame, months: list[pd.Timestamp]) -> int:
    """Intervals inside the scanned months (the history before the first one is not scanned)."""
    return int((data["interval_start"] >= months[0]).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    data = load_data()
    months = scan_months(data)
    faulty, labels, unchanged = inject(data, months, args.seed)
    clean = detect(data, months)
    found = detect(faulty, months)
    intervals = month_intervals(data, months)
    result = score(found, labels)
    rows = result["kinds"]
    seconds = time.perf_counter() - started

    print(
        f"\n{len(data):,} real intervals ({data['target_id'].nunique()} targets), "
        f"{intervals:,} scanned in {len(months)} months; {len(labels)} faults injected "
        f"(seed {args.seed}; {unchanged} more changed no reading and are not counted); "
        "strict: every flag that overlaps no injected fault is false\n"
    )
    print(f"{'kind':<18}{'injected':>9}{'flags':>7}{'precision':>11}{'recall':>8}{'F1':>7}")
    for kind in [*KINDS, "overall"]:
        r = rows[kind]
        print(
            f"{kind:<18}{r['injected']:>9}{r['flags']:>7}{r['precision']:>11.3f}"
            f"{r['recall']:>8.3f}{r['f1']:>7.3f}"
        )
    overall = rows["overall"]
    low = [k for k in KINDS if rows[k]["recall"] < 0.8]
    print(
        f"strict overall F1 {overall['f1']:.3f} (target 0.85); kinds with recall < 0.8:"
        f" {', '.join(low) or 'none'}"
    )
    for kind, r in result["other_detectors"].items():
        print(f"  other detector {kind}: {r['flags']} flags, strict precision {r['precision']:.3f}")
    print(multiplier_misses(found, labels))
    by_kind = clean["kind"].value_counts().to_dict()
    rate = 1000 * len(clean) / intervals
    print(f"uninjected data: {len(clean)} flags, {rate:.2f} per 1000 intervals (target <= 1)")
    print(f"  by kind: {by_kind}")
    worst = clean["target_id"].value_counts().head(5)
    print(f"  of which on the 5 most flagged meters ({', '.join(worst.index)}): {worst.sum()}")
    print(f"{seconds:.0f} s")
    write_results(
        "anomalies",
        {
            "seed": args.seed,
            "intervals": intervals,
            "targets": int(data["target_id"].nunique()),
            "months": len(months),
            "injected": len(labels),
            "injected_unchanged": unchanged,
            "scores": result,
            "uninjected": {
                "flags": len(clean),
                "per_1000_intervals": rate,
                "by_kind": by_kind,
                "most_flagged": worst.to_dict(),
            },
            "seconds": round(seconds, 1),
        },
    )


if __name__ == "__main__":
    main()
