"""Customer segments on the real London households: meaningful and stable month to month?

Runs the segmentation the `ml/customer_segments` asset runs (`energy_assets.segments`) on the
60 LCL households, month by month over 2013, twice: as it was before (every household, k by
silhouette alone) and as it is now (near-empty meters set apart, k the best by silhouette among
the k whose segments agree between the month's odd and even days and have two customers or
more). Prints per month the k chosen, the segment sizes (and now their share of energy before
06:00) and the near-empty households, and for
each way the share of households (segmented in both months) that stay in the matching segment
from one month to the next; writes benchmarks/results/segments.json.
Usage: .venv/bin/python benchmarks/segments.py
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import table, write_results  # noqa: E402
from energy_assets.segments.segmentation import (  # noqa: E402
    daily_shapes,
    match_segments,
    near_empty,
    segment_customers,
    split_halves,
)

LCL = Path(__file__).resolve().parents[2] / "shared" / "data" / "lcl_london_2013_60hh"


def households() -> pd.DataFrame:
    """customer_id, interval_start (UTC, as the data's labels are), kw (kWh per half hour x 2)."""
    frame = pd.read_csv(LCL / "halfhourly_kwh.csv.gz")
    frame.columns = ["customer_id", "interval_start", "kwh"]
    return pd.DataFrame(
        {
            "customer_id": frame["customer_id"],
            "interval_start": pd.to_datetime(frame["interval_start"]).dt.tz_localize("UTC"),
            "kw": pd.to_numeric(frame["kwh"], errors="coerce") * 2,
        }
    )


def segment_month(intervals: pd.DataFrame, now: bool):
    """(segmentation, near-empty households) the way it was (`now` False) or is."""
    shapes = daily_shapes(intervals)
    if not now:
        return segment_customers(shapes), []
    empty = near_empty(intervals)
    shapes = shapes.drop(index=empty, errors="ignore")
    return segment_customers(shapes, halves=split_halves(intervals, shapes.index)), empty


def stayed(before, after) -> float:
    """Share of the customers segmented in both months whose segment matches from one to the
    next (segments paired by shape, `match_segments`)."""
    same = match_segments(before.centroids, after.centroids)
    common = before.labels.index.intersection(after.labels.index)
    moved = after.labels[common].map(same) != before.labels[common]
    return float(1 - moved.mean())


def main() -> None:
    data = households()
    month = data["interval_start"].dt.month
    rows, result = [], {"months": {}}
    previous: dict[bool, object] = {}
    stays: dict[bool, list[float]] = {False: [], True: []}
    for m in range(1, 13):
        intervals = data[month == m]
        entry = {}
        for now in (False, True):
            segmentation, empty = segment_month(intervals, now)
            sizes = segmentation.labels.value_counts().sort_index().tolist()
            if now in previous:
                stays[now].append(stayed(previous[now], segmentation))
            previous[now] = segmentation
            night = segmentation.centroids.loc[:, :5].sum(axis=1).round(2).tolist()
            entry["now" if now else "before"] = {
                "k": segmentation.k,
                "sizes": sizes,
                "night": night,
            }
            if now:
                entry["near_empty"] = empty
        result["months"][f"2013-{m:02d}"] = entry
        rows.append(
            (
                f"2013-{m:02d}",
                entry["before"]["k"],
                "/".join(map(str, entry["before"]["sizes"])),
                entry["now"]["k"],
                "/".join(map(str, entry["now"]["sizes"])),
                "/".join(f"{n:.0%}" for n in entry["now"]["night"]),
                ", ".join(entry["near_empty"]) or "-",
            )
        )
    headers = ("month", "k before", "sizes before", "k now", "sizes now", "night now", "near-empty")
    print(table(headers, rows))
    for now, label in ((False, "before"), (True, "now")):
        share = float(np.mean(stays[now]))
        result[f"stay_{label}"] = round(share, 3)
        print(f"households staying in their segment month to month, {label}: {share:.1%}")
    write_results("segments", result)


if __name__ == "__main__":
    main()
