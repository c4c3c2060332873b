"""Generated feeder-meter files in the seed layout, so a fresh clone has something real to load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SAMPLE_METERS = {  # meter -> (feeder, multiplier, typical kW)
    "M1001": ("North", 120.0, 28.0),
    "M1002": ("North", 80.0, 22.0),
    "M2001": ("South", 200.0, 30.0),
}


def feeder_meter_frame(
    meter: str, start: str, end: str, base_kw: float, seed: int = 0, step: str = "15min"
) -> pd.DataFrame:
    """One meter's export: a daily load shape with noise, a little reverse flow at midday."""
    rng = np.random.default_rng(seed)
    times = pd.date_range(start, end, freq=step, inclusive="left")
    hour = times.hour + times.minute / 60
    shape = 0.6 + 0.4 * np.sin((hour - 6) / 24 * 2 * np.pi) ** 2
    kw_del = base_kw * shape * (1 + 0.05 * rng.standard_normal(len(times)))
    kw_rec = np.where((hour >= 11) & (hour < 14), base_kw * 0.1 * rng.random(len(times)), 0.0)
    kva_del = kw_del / 0.95
    kva_rec = kw_rec / 0.98
    return pd.DataFrame(
        {
            "Start Time": times.strftime("%Y-%m-%d %H:%M"),
            "kW del": kw_del.round(3),
            "kW rec": kw_rec.round(3),
            "kVA del": kva_del.round(3),
            "kVA rec": kva_rec.round(3),
        }
    )


def meter_data_frame(meters: dict[str, tuple[str, float, float]] = SAMPLE_METERS) -> pd.DataFrame:
    return pd.DataFrame(
        [(meter, feeder, mult) for meter, (feeder, mult, _) in meters.items()],
        columns=["ID", "Name", "Multiplier"],
    )


def write_sample(dropbox: Path, months: tuple[str, ...] = ("2024-01", "2024-02")) -> list[Path]:
    """Write one file per meter and month plus `meter-data.csv`; a few intervals are missing."""
    dropbox.mkdir(parents=True, exist_ok=True)
    written = []
    for i, (meter, (_, _, base_kw)) in enumerate(SAMPLE_METERS.items()):
        for j, month in enumerate(months):
            start = pd.Timestamp(month + "-01")
            frame = feeder_meter_frame(
                meter, str(start), str(start + pd.offsets.MonthBegin(1)), base_kw, seed=10 * i + j
            )
            if meter == "M1002":  # a meter outage of two hours on the 10th
                frame = frame.drop(index=frame.index[9 * 96 + 40 : 9 * 96 + 48])
            path = dropbox / f"{meter}_{month}.csv"
            frame.to_csv(path, index=False)
            written.append(path)
    path = dropbox / "meter-data.csv"
    meter_data_frame().to_csv(path, index=False)
    written.append(path)
    return written
