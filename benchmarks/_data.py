"""Generated meter files for the benchmarks, in the layouts the platform reads.

Feeder-meter months reuse the sample generator (`energy_assets.sample`); LCL households follow
the Kaggle "smart meters in London" layout: `block_N.csv` files of about 50 households each
(`LCLid,tstp,energy(kWh/hh)`) and `informations_households.csv`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from energy_assets.ingest.sample import feeder_meter_frame, meter_data_frame

LCL_BLOCK = 50  # households per block file, as in the published data set


def months_ending(last: str, count: int) -> list[pd.Timestamp]:
    """The `count` month starts up to and including `last` (YYYY-MM)."""
    return list(pd.date_range(end=pd.Timestamp(last + "-01"), periods=count, freq="MS"))


def write_feeder_months(
    folder: Path, meters: int, months: list[pd.Timestamp], with_metadata: int, step: str = "30min"
) -> int:
    """One feeder-meter file per month (a `Meter` column, 4 channels) and `meter-data.csv`.

    The first `with_metadata` meters sit on five feeders; the others have no metadata, so the
    customer marts see them as customers. Returns the number of long readings written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"M{i:04d}" for i in range(meters)]
    readings = 0
    for month in months:
        frames = [
            feeder_meter_frame(
                name,
                str(month),
                str(month + pd.offsets.MonthBegin(1)),
                20.0 + i % 7,
                seed=i * 1000 + month.month,
                step=step,
            ).assign(Meter=name)
            for i, name in enumerate(names)
        ]
        frame = pd.concat(frames, ignore_index=True)
        frame.to_csv(folder / f"feeders_{month:%Y-%m}.csv", index=False)
        readings += len(frame) * 4
    metadata = {name: (f"F{i % 5}", 1.0, 0.0) for i, name in enumerate(names[:with_metadata])}
    meter_data_frame(metadata).to_csv(folder / "meter-data.csv", index=False)
    return readings


def lcl_block(
    first: int, households: int, start: pd.Timestamp, end: pd.Timestamp, seed: int
) -> pa.Table:
    """Half-hourly kWh of `households` households over [start, end): evening peaks, noise."""
    rng = np.random.default_rng(seed)
    times = pd.date_range(start, end, freq="30min", inclusive="left")
    hour = (times.hour + times.minute / 60).to_numpy()
    shape = 0.12 + 0.1 * np.exp(-((hour - 19) ** 2) / 6) + 0.05 * np.exp(-((hour - 8) ** 2) / 3)
    scale = rng.gamma(4.0, 0.25, households)[:, None]
    kwh = (scale * shape[None, :] * rng.gamma(6.0, 1 / 6.0, (households, len(times)))).round(3)
    stamps = pa.array(times.strftime("%Y-%m-%d %H:%M:%S.0000000"))
    ids = [f"MAC{first + i:06d}" for i in range(households)]
    return pa.table(
        {
            "LCLid": pa.array(np.repeat(ids, len(times))),
            "tstp": pa.concat_arrays([stamps] * households),
            "energy(kWh/hh)": pa.array(kwh.ravel()),
        }
    )


def write_lcl(folder: Path, households: int, first_month: str, months: int) -> int:
    """LCL-shaped files: blocks of households over `months` months, plus the household table.

    Returns the number of half-hourly readings written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    start = pd.Timestamp(first_month + "-01")
    end = start + pd.DateOffset(months=months)
    readings = 0
    for block, first in enumerate(range(0, households, LCL_BLOCK)):
        size = min(LCL_BLOCK, households - first)
        data = lcl_block(first, size, start, end, seed=block)
        pacsv.write_csv(
            data, folder / f"block_{block}.csv", pacsv.WriteOptions(quoting_style="none")
        )
        readings += data.num_rows
    ids = [f"MAC{i:06d}" for i in range(households)]
    pd.DataFrame(
        {
            "LCLid": ids,
            "stdorToU": np.where(np.arange(households) % 5 == 0, "ToU", "Std"),
            "Acorn": [f"ACORN-{chr(65 + i % 17)}" for i in range(households)],
            "Acorn_grouped": [
                ("Affluent", "Comfortable", "Adversity")[i % 3] for i in range(households)
            ],
        }
    ).to_csv(folder / "informations_households.csv", index=False)
    return readings
