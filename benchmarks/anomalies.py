"""Anomaly detection measured on real data with injected, labelled faults.

    .venv/bin/python benchmarks/anomalies.py [--seed 0]

Loads the real LCL households (60, half-hourly, 2013) and the three OpenSTEF grid loads
(15-minute, Oct 2020 - Jan 2021) from ../shared/data, puts one fault of a kind drawn in turn
into every target-month of a copy (spike, off-peak spike, dropout, flatline, level shift, sign
flip, at random reproducible places), then runs `find_anomalies` month by month with four weeks
of history, exactly as the ml/anomalies asset does (rules and IsolationForest; the forecast
residual detector needs backtest forecasts and is left out here). A detection matches an
injected fault when it is on the same target and overlaps it in time (a day finding covers its
UTC day). Prints precision, recall and F1 per kind and overall, and the flag rate on the
uninjected data; writes benchmarks/results/anomalies.json.

The headline precision, recall and F1 are strict: every detection (one row as the asset would
write it to ml.anomalies; `find_anomalies` already stores an episode of same-kind findings less
than a day apart as one row) that overlaps no injected fault counts as false, including the
data's own anomalies (the LCL set has meters stuck at zero or idle for weeks). The last two
columns are a secondary, differential measure: they leave out detections that the uninjected
copy produces identically (same target, kind and place), i.e. judge only what the injections
changed. The uninjected flag rate says how often the detectors fire on the real data as it is.
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
from energy_assets.anomalies.detectors import find_anomalies  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HISTORY = pd.Timedelta(days=28)
KINDS = ["spike", "offpeak_spike", "dropout", "flatline", "level_shift", "sign_flip"]
DETECTS = {  # which detection kinds are meant for which injected kind (for per-kind precision)
    "spike": {"spike"},
    "offpeak_spike": {"offpeak_spike"},
    "dropout": {"drop_to_zero"},
    "flatline": {"flatline"},
    "level_shift": {"level_shift"},
    "sign_flip": {"sign_flip", "reverse_flow"},
}


def load_data() -> pd.DataFrame:
    """Long frame target_id, interval_start (UTC), value (kW) of the real series."""
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
    return data.sort_values(["target_id", "interval_start"]).reset_index(drop=True)


def scan_months(data: pd.DataFrame) -> list[pd.Timestamp]:
    """Every month holding data (the first month of a series has no history, as in the asset)."""
    months = data["interval_start"].dt.tz_localize(None).dt.to_period("M").unique()
    return sorted(m.to_timestamp().tz_localize("UTC") for m in months)


def inject(data: pd.DataFrame, months: list[pd.Timestamp], seed: int):
    """One fault per target-month, kinds in turn from a random start; returns the faulty copy
    and the labels (target_id, kind, start, end)."""
    rng = np.random.default_rng(seed)
    out = data.reset_index(drop=True)
    values = out["value"].to_numpy(copy=True)
    labels = []
    for target, rows in out.groupby("target_id", sort=True):  # out is sorted by target, time
        times = rows["interval_start"]
        kw = rows["value"]
        step = times.diff().median()
        per_hour = int(pd.Timedelta(hours=1) / step)
        hour = times.dt.hour
        q999, night_q99 = kw.quantile(0.999), kw[hour < 5].quantile(0.99)
        turn = rng.integers(len(KINDS))
        for month in months:
            following = month + pd.offsets.MonthBegin(1)
            inside = rows[
                (times >= month + pd.Timedelta(days=1)) & (times < following - pd.Timedelta(days=4))
            ]
            if len(inside) < 10 * 24 * per_hour:
                continue
            kind = KINDS[turn % len(KINDS)]
            turn += 1
            at = inside.index[rng.integers(len(inside))]
            if kind == "spike":
                span = [at]
                values[at] = q999 * rng.uniform(3, 6)
            elif kind == "offpeak_spike":
                night = inside.index[inside["interval_start"].dt.hour < 5]
                at = night[rng.integers(len(night) - 1)]
                span = list(range(at, at + rng.integers(1, 3)))
                values[span] = night_q99 * rng.uniform(2.5, 5)
            elif kind in ("dropout", "flatline"):
                hours = rng.uniform(2, 24) if kind == "dropout" else rng.uniform(12, 48)
                span = list(range(at, at + int(hours * per_hour)))
                stuck = values[at] if values[at] != 0 else kw.median()
                values[span] = 0.0 if kind == "dropout" else stuck
            else:  # whole UTC days: a wrong multiplier or a reversed CT for a while
                day = out.at[at, "interval_start"].normalize()
                days = rng.integers(1, 5) if kind == "level_shift" else rng.integers(1, 4)
                end = day + pd.Timedelta(days=int(days))
                span = rows.index[(times >= day) & (times < end)].tolist()
                factor = rng.uniform(3, 5) ** rng.choice([-1, 1])  # x or / 3..5
                factor = -1.0 if kind == "sign_flip" else factor
                values[span] = values[span] * factor
            span = [i for i in span if i <= rows.index[-1]]  # rows of one target are contiguous
            start = out.at[span[0], "interval_start"]
            labels.append((target, kind, start, out.at[span[-1], "interval_start"] + step))
    out["value"] = values
    return out, pd.DataFrame(labels, columns=["target_id", "kind", "start", "end"])


def detect(data: pd.DataFrame, months: list[pd.Timestamp]) -> pd.DataFrame:
    """find_anomalies month by month on the month plus four weeks of history, like the asset."""
    found = []
    for month in months:
        following = month + pd.offsets.MonthBegin(1)
        part = data[
            (data["interval_start"] >= month - HISTORY) & (data["interval_start"] < following)
        ]
        found.append(find_anomalies(part, month, following))
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


def score(found: pd.DataFrame, clean: pd.DataFrame, labels: pd.DataFrame) -> dict:
    found = found.reset_index(drop=True)
    hit_found, hit_label = overlaps(found, labels)
    key = ["target_id", "kind", "start", "end"]
    old = found[key].merge(clean[key].drop_duplicates(), how="left", indicator=True)
    new = (old["_merge"] == "left_only").to_numpy() | hit_found
    rows = {}
    for kind in KINDS:
        mine = found["kind"].isin(DETECTS[kind]).to_numpy()
        recall = float(hit_label[(labels["kind"] == kind).to_numpy()].mean())
        strict = hit_found[mine].mean() if mine.any() else float("nan")
        fresh = hit_found[mine & new].mean() if (mine & new).any() else float("nan")
        rows[kind] = {
            "injected": int((labels["kind"] == kind).sum()),
            "flags": int(mine.sum()),
            "precision_strict": float(strict),
            "precision_new": float(fresh),
            "recall": recall,
            "f1_strict": f1(strict, recall),
            "f1_new": f1(fresh, recall),
        }
    forest = (found["detector"] == "isolation_forest").to_numpy()
    recall = float(hit_label.mean())
    strict, fresh = float(hit_found.mean()), float(hit_found[new].mean())
    rows["overall"] = {
        "injected": len(labels),
        "flags": len(found),
        "precision_strict": strict,
        "precision_new": fresh,
        "recall": recall,
        "f1_strict": f1(strict, recall),
        "f1_new": f1(fresh, recall),
    }
    rows["isolation_forest"] = {
        "flags": int(forest.sum()),
        "precision_strict": float(hit_found[forest].mean()) if forest.any() else float("nan"),
    }
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    data = load_data()
    months = scan_months(data)
    faulty, labels = inject(data, months, args.seed)
    clean = detect(data, months)
    found = detect(faulty, months)
    intervals = sum(
        int(
            (
                (data["interval_start"] >= m)
                & (data["interval_start"] < m + pd.offsets.MonthBegin(1))
            ).sum()
        )
        for m in months
    )
    rows = score(found, clean, labels)
    seconds = time.perf_counter() - started

    print(
        f"\n{len(data):,} real intervals ({data['target_id'].nunique()} targets), "
        f"{intervals:,} scanned in {len(months)} months; {len(labels)} faults injected "
        f"(seed {args.seed})\n"
    )
    print(
        "strict: every flag that overlaps no injected fault is false | secondary, differential:"
        " flags the uninjected copy also raises left out"
    )
    print(
        f"{'kind':<15}{'injected':>9}{'flags':>7}{'precision':>11}{'recall':>8}{'F1':>7}"
        f"{'|':>3}{'P diff':>8}{'F1 diff':>9}"
    )
    for kind in [*KINDS, "overall"]:
        r = rows[kind]
        print(
            f"{kind:<15}{r['injected']:>9}{r['flags']:>7}{r['precision_strict']:>11.3f}"
            f"{r['recall']:>8.3f}{r['f1_strict']:>7.3f}{'|':>3}{r['precision_new']:>8.3f}"
            f"{r['f1_new']:>9.3f}"
        )
    overall = rows["overall"]
    verdict = "reaches" if overall["f1_strict"] >= 0.8 else "does NOT reach"
    low = [k for k in KINDS if rows[k]["recall"] < 0.7]
    print(
        f"strict overall F1 {overall['f1_strict']:.3f} {verdict} 0.8; kinds with recall < 0.7:"
        f" {', '.join(low) or 'none'}"
    )
    forest = rows["isolation_forest"]
    print(
        f"\nIsolationForest: {forest['flags']} day flags, strict precision "
        f"{forest['precision_strict']:.3f}"
    )
    by_kind = clean["kind"].value_counts().to_dict()
    rate = 1000 * len(clean) / intervals
    print(f"uninjected data: {len(clean)} flags, {rate:.2f} per 1000 intervals {by_kind}")
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
            "scores": rows,
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
