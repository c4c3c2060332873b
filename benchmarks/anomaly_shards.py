"""A month's meter anomalies judged whole, in shards one after another, and in shards on every
core: the detectors' part of the ml/anomalies asset (`meter_findings`), without the read.

    .venv/bin/python benchmarks/anomaly_shards.py [--households 5566]

The households are generated: a half-hourly evening-peaked load, each its own level, gamma noise
per interval; February 2024 is judged with the four weeks before it as history, as the asset
does. Prints the seconds of each way and the findings (equal in the two sharded ways by
construction); writes benchmarks/results/anomaly_shards.json.
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
from energy_assets.anomalies.detectors import meter_findings  # noqa: E402
from energy_assets.settings import AnomalyThresholds, Settings  # noqa: E402

START, END = pd.Timestamp("2024-02-01", tz="UTC"), pd.Timestamp("2024-03-01", tz="UTC")


def households(count: int, seed: int = 0) -> pd.DataFrame:
    """`count` households from four weeks before START to END, as the asset reads them."""
    rng = np.random.default_rng(seed)
    times = pd.date_range(START - pd.Timedelta(days=28), END, freq="30min", inclusive="left")
    hour = (times.hour + times.minute / 60).to_numpy()
    shape = 0.3 + 1.2 * np.exp(-((hour - 19) ** 2) / 6) + 0.3 * np.exp(-((hour - 8) ** 2) / 2)
    level = rng.uniform(0.3, 2.0, (count, 1))
    kw = (shape[None, :] * level * rng.gamma(4, 0.25, (count, len(times)))).round(3)
    meters = pd.DataFrame(
        {
            "target_id": np.repeat([f"MAC{i:06d}" for i in range(count)], len(times)),
            "interval_start": np.tile(times, count),
            "value": kw.ravel(),
        }
    )
    meters["interval_end"] = meters["interval_start"] + pd.Timedelta(minutes=30)
    return meters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--households", type=int, default=5566)
    args = parser.parse_args()
    meters = households(args.households)
    cores = Settings.from_env({}).anomaly_workers  # the default: one per CPU
    sharded = AnomalyThresholds()
    ways = {
        "whole (one shard)": (AnomalyThresholds(shard_meters=args.households), 1),
        f"shards of {sharded.shard_meters}, one process": (sharded, 1),
        f"shards of {sharded.shard_meters}, {cores} processes": (sharded, cores),
    }
    print(f"{args.households:,} households, {len(meters):,} intervals (February + 4 weeks)")
    results = {}
    for name, (t, processes) in ways.items():
        started = time.perf_counter()
        found = meter_findings(meters, START, END, t, "UTC", processes)
        seconds = time.perf_counter() - started
        results[name] = {"seconds": round(seconds, 1), "findings": len(found)}
        print(f"{name:<36} {seconds:7.1f} s  {len(found)} findings", flush=True)
    write_results(
        "anomaly_shards",
        {"households": args.households, "intervals": len(meters), "cores": cores, **results},
    )


if __name__ == "__main__":
    main()
