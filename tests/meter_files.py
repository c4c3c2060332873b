"""Seed-style meter files for tests, and the marts they should produce, computed with pandas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from energy_assets.ingest.sample import feeder_meter_frame

STEP = pd.Timedelta(minutes=15)
METERS = {"M1": ("North", 120.0), "M2": ("North", 80.0), "M3": ("South", 200.0)}


def write_meter_file(
    dropbox: Path,
    name: str,
    start: str,
    end: str,
    base_kw: float,
    seed: int,
    drop: list[tuple[str, str]] = (),
) -> pd.DataFrame:
    """A seed-style export; intervals in each [from, to] of `drop` are left out (gaps)."""
    frame = feeder_meter_frame(name, start, end, base_kw, seed=seed)
    times = pd.to_datetime(frame["Start Time"])
    for first, last in drop:
        frame = frame[~times.between(pd.Timestamp(first), pd.Timestamp(last))]
        times = pd.to_datetime(frame["Start Time"])
    frame.to_csv(dropbox / name, index=False)
    return frame


def write_meter_data(dropbox: Path) -> None:
    pd.DataFrame(
        [(m, feeder, mult) for m, (feeder, mult) in METERS.items()],
        columns=["ID", "Name", "Multiplier"],
    ).to_csv(dropbox / "meter-data.csv", index=False)


def three_meters_two_feeders(dropbox: Path) -> dict[str, pd.DataFrame]:
    """3 meters on 2 feeders across Jan and Feb 2024, with gaps, one file spanning both months."""
    files = {
        "M1": [
            write_meter_file(
                dropbox,
                "M1_2024-01.csv",
                "2024-01-01",
                "2024-02-01",
                30,
                1,
                drop=[
                    ("2024-01-10 10:00", "2024-01-10 11:45"),
                    ("2024-01-31 22:00", "2024-01-31 23:45"),
                ],
            ),
            write_meter_file(
                dropbox,
                "M1_2024-02.csv",
                "2024-02-01",
                "2024-03-01",
                30,
                2,
                drop=[("2024-02-01 00:00", "2024-02-01 00:45")],
            ),
        ],
        "M2": [
            write_meter_file(dropbox, "M2_2024-01.csv", "2024-01-01", "2024-02-01", 20, 3),
            write_meter_file(
                dropbox,
                "M2_2024-02.csv",
                "2024-02-01",
                "2024-03-01",
                20,
                4,
                drop=[("2024-02-20 03:00", "2024-02-20 03:00")],
            ),
        ],
        "M3": [
            write_meter_file(dropbox, "M3_2024-01-15.csv", "2024-01-15", "2024-02-15", 25, 5),
        ],
    }
    write_meter_data(dropbox)
    return {meter: pd.concat(frames, ignore_index=True) for meter, frames in files.items()}


def expected_marts(inputs: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The marts computed independently from the input files."""
    grids, gaps, clean = {}, [], []
    for meter, frame in inputs.items():
        times = pd.to_datetime(frame["Start Time"]).dt.tz_localize("UTC")
        grid = pd.date_range(times.min(), times.max(), freq=STEP)
        grids[meter] = grid
        missing = grid.difference(pd.DatetimeIndex(times))
        if len(missing):
            run_id = (pd.Series(missing).diff() != STEP).cumsum()
            for _, run in pd.Series(missing).groupby(run_id.to_numpy()):
                gaps.append((meter, run.iloc[0], run.iloc[-1] + STEP, len(run)))
        feeder, multiplier = METERS[meter]
        values = frame.drop(columns="Start Time").set_index(times) * multiplier
        values = values.reindex(grid)
        values["feeder"] = feeder
        values["present"] = values["kW del"].notna()
        clean.append(values)
    clean_all = pd.concat(clean).rename_axis("interval_start").reset_index()
    feeder = clean_all.groupby(["feeder", "interval_start"]).agg(
        mw_del=("kW del", lambda s: s.sum(min_count=1) / 1000),
        mw_rec=("kW rec", lambda s: s.sum(min_count=1) / 1000),
        mva_del=("kVA del", lambda s: s.sum(min_count=1) / 1000),
        mva_rec=("kVA rec", lambda s: s.sum(min_count=1) / 1000),
        meters_reporting=("present", "sum"),
        meters_expected=("present", "size"),
    )
    feeder["mw_net"] = feeder["mw_del"] - feeder["mw_rec"]
    feeder["mva_net"] = feeder["mva_del"] - feeder["mva_rec"]
    feeder["pf_net"] = feeder["mw_net"] / feeder["mva_net"].replace(0, np.nan)
    system = feeder.groupby("interval_start").agg(
        mw_total=("mw_net", lambda s: s.sum(min_count=1)),
        mva_total=("mva_net", lambda s: s.sum(min_count=1)),
    )
    return {
        "clean_rows": sum(len(g) for g in grids.values()),
        "gaps": pd.DataFrame(gaps, columns=["meter_id", "gap_start", "gap_end", "missing"]),
        "feeder": feeder.reset_index(),
        "system": system.reset_index(),
    }
