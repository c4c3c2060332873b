"""The analyst marts checked figure by figure against pandas.

Every expectation is computed here, with pandas, from the very frames the test writes to the
dropbox; the platform is only run (`run_once`) and queried. Three datasets, one run each:

- May 2024: two feeder meters (one bi-directional with a multiplier, one on 5-minute data) and a
  customer-profile meter, with gaps -> `fct_intervals_clean`, `fct_meter_hourly`,
  `fct_meter_daily`, `customer_hourly_profile` within one month.
- February / March 2024: two customer-profile customers and three LCL households (Std / ToU)
  -> `customer_behavior`, `customer_hourly_profile` across a month boundary, `usage_by_tariff`,
  `dim_customer`.
- October 2024: a customer-profile meter whose timestamps carry their UTC offsets across the UK
  autumn clock change -> `fct_intervals_clean`, `fct_meter_daily`.

Calendars are UTC throughout (ENERGY_TIMEZONE unset), so local hours and days equal UTC ones.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import PLATFORM_ENV, PlatformUnderTest, configured_platform, copied_databases

from energy_assets.commands.run import run_once

MINUTES_15 = pd.Timedelta(minutes=15)
MINUTES_5 = pd.Timedelta(minutes=5)
MINUTES_30 = pd.Timedelta(minutes=30)
VALUES = ["kw_del", "kw_rec", "kva_del", "kva_rec", "demand_kw", "kw_net", "power_factor"]
FIGURES = [
    "energy_kwh",
    "mean_kw",
    "peak_kw",
    "delivered_kwh",
    "received_kwh",
    "net_kwh",
    "completeness",
]


# --- running the platform once per dataset ------------------------------------------------------


def loaded_platform(
    pg_server: str, templates: str, home: Path, write: Callable[[Path], pd.DataFrame]
) -> Iterator[tuple[PlatformUnderTest, pd.DataFrame]]:
    """A fresh platform (databases copied from the session's templates, as `platform` does) whose
    dropbox `write` fills, loaded by one `run_once`; yields the platform and the readings `write`
    returned. The environment is restored right after the run."""
    with copied_databases(pg_server, templates) as urls, pytest.MonkeyPatch.context() as env:
        for key in (*PLATFORM_ENV, "ENERGY_TIMEZONE"):  # run_once exports the platform's env
            env.delenv(key, raising=False)
        platform = configured_platform(env, home, urls)
        readings = write(platform.settings.dropbox)
        report = run_once(platform.settings)
        assert report.ok, report.table()
        assert all(row["status"] == "loaded" for row in report.files), report.table()
        env.undo()
        yield platform, readings


# --- writing input files, returning what they hold as readings ---------------------------------
#
# A readings frame has one row per meter and interval present in a file: meter_id,
# interval_start (UTC), interval_seconds, feeder, multiplier, customer_id, tariff, and the values
# the clean grid should show (multiplier applied): kw_del, kw_rec, kva_del, kva_rec, demand_kw,
# power_factor.


def readings_frame(
    meter: str, times: pd.DatetimeIndex, step: pd.Timedelta, **columns
) -> pd.DataFrame:
    """One meter's readings: no feeder or customer, multiplier 1, null values unless given."""
    frame = pd.DataFrame(
        {
            "meter_id": meter,
            "interval_start": times,
            "interval_seconds": step.total_seconds(),
            "feeder": None,
            "multiplier": 1.0,
            "customer_id": None,
            "tariff": None,
            **{value: np.nan for value in VALUES if value != "kw_net"},
        },
        index=range(len(times)),
    )
    for column, value in columns.items():
        frame[column] = np.asarray(value) if isinstance(value, pd.Series) else value
    return frame


def write_feeder_meter(
    dropbox: Path,
    meter: str,
    start: str,
    end: str,
    step: pd.Timedelta,
    seed: int,
    feeder: str,
    multiplier: float,
    drop: pd.DatetimeIndex,
    blank_rec: pd.DatetimeIndex,
) -> pd.DataFrame:
    """`<meter>_<start>.csv` in the feeder-meter layout (naive UTC times): delivered all day,
    received too from 10:00 to 15:00 (both non-zero in the same intervals); `drop` intervals
    left out, `blank_rec` intervals with an empty kW rec."""
    rng = np.random.default_rng(seed)
    times = pd.date_range(start, end, freq=step, inclusive="left")
    hour = times.hour + times.minute / 60
    kw_del = (40 + 30 * np.sin(hour / 24 * np.pi) ** 2 + rng.uniform(-3, 3, len(times))).round(3)
    solar = (hour >= 10) & (hour < 15)
    kw_rec = np.where(solar, rng.uniform(5, 20, len(times)), 0.0).round(3)
    csv = pd.DataFrame(
        {
            "Start Time": times.strftime("%Y-%m-%d %H:%M"),
            "kW del": kw_del,
            "kW rec": kw_rec,
            "kVA del": (kw_del / 0.95).round(3),
            "kVA rec": (kw_rec / 0.98).round(3),
        }
    )
    csv.loc[times.isin(blank_rec), "kW rec"] = np.nan
    csv = csv[~times.isin(drop)].reset_index(drop=True)
    csv.to_csv(dropbox / f"{meter}_{start}.csv", index=False)
    m = multiplier
    return readings_frame(
        meter,
        pd.to_datetime(csv["Start Time"]).dt.tz_localize("UTC"),
        step,
        feeder=feeder,
        multiplier=m,
        kw_del=csv["kW del"] * m,
        kw_rec=csv["kW rec"] * m,
        kva_del=csv["kVA del"] * m,
        kva_rec=csv["kVA rec"] * m,
        demand_kw=csv["kW del"] * m,
    )


def customer_profile(
    serial: str,
    customer: str,
    times: pd.DatetimeIndex,
    kw: np.ndarray,
    seed: int,
    stamps: Callable[[pd.DatetimeIndex], list[str]] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows of a customer-profile CSV for UTC `times` (written as `...Z` unless `stamps` says
    otherwise), and the readings they hold."""
    rng = np.random.default_rng(seed)
    kw = np.round(kw, 3)
    pf = rng.uniform(0.85, 0.99, len(times)).round(3)
    text = stamps(times) if stamps else list(times.strftime("%Y-%m-%dT%H:%M:%SZ"))
    csv = pd.DataFrame(
        {
            "Serial": serial,
            "Customer Ref": customer,
            "Timestamp": text,
            "Avg Import kW": kw,
            "Import kWh": (kw / 4).round(4),
            "Power Factor": pf,
        }
    )
    readings = readings_frame(
        serial, times, MINUTES_15, customer_id=customer, demand_kw=kw, power_factor=pf
    )
    return csv, readings


def business_kw(times: pd.DatetimeIndex, rng: np.random.Generator) -> np.ndarray:
    """Offices: 20 kW more from 08:00 to 18:00 on weekdays."""
    working = (times.weekday < 5) & (times.hour >= 8) & (times.hour < 18)
    return 5 + 20 * working + rng.uniform(0, 4, len(times))


def home_kw(times: pd.DatetimeIndex, rng: np.random.Generator) -> np.ndarray:
    """A home: an evening peak, more at weekends, a little storage heating at night."""
    evening = (times.hour >= 17) & (times.hour < 22)
    return (
        0.3
        + 1.5 * evening
        + 0.4 * (times.weekday >= 5)
        + 0.6 * (times.hour < 5)
        + rng.uniform(0, 0.5, len(times))
    )


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def utc_range(start: str, end: str, step: pd.Timedelta) -> pd.DatetimeIndex:
    return pd.date_range(start, end, freq=step, inclusive="left", tz="UTC")


def write_may(dropbox: Path) -> pd.DataFrame:
    """Feeder meter F1 (15 min, x2.5, bi-directional) over 1-2 May with 9 intervals missing and
    one blank kW rec; F2 (5 min, no multiplier given) for 3 hours; customer meter S900 for the
    week of 6 May with gaps."""
    f1 = write_feeder_meter(
        dropbox,
        "F1",
        "2024-05-01",
        "2024-05-03",
        MINUTES_15,
        seed=1,
        feeder="North",
        multiplier=2.5,
        drop=pd.DatetimeIndex(
            [
                *pd.date_range("2024-05-01 10:15", "2024-05-01 11:45", freq=MINUTES_15),
                "2024-05-01 20:30",
                "2024-05-02 23:45",
            ]
        ),
        blank_rec=pd.DatetimeIndex(["2024-05-02 12:00"]),
    )
    f2 = write_feeder_meter(
        dropbox,
        "F2",
        "2024-05-01 06:00",
        "2024-05-01 09:00",
        MINUTES_5,
        seed=2,
        feeder="South",
        multiplier=1.0,
        drop=pd.DatetimeIndex(["2024-05-01 07:10", "2024-05-01 07:15"]),
        blank_rec=pd.DatetimeIndex([]),
    )
    pd.DataFrame(
        {"ID": ["F1", "F2"], "Name": ["North", "South"], "Multiplier": [2.5, None]}
    ).to_csv(dropbox / "meter-data.csv", index=False)
    times = utc_range("2024-05-06", "2024-05-13", MINUTES_15)
    missing = utc_range("2024-05-08 03:00", "2024-05-08 04:00", MINUTES_15)
    keep = ~times.isin(missing.append(pd.DatetimeIndex(["2024-05-11 14:15Z"])))
    csv, s900 = customer_profile(
        "S900", "C-SOLO", times[keep], home_kw(times[keep], np.random.default_rng(3)), seed=3
    )
    csv.to_csv(dropbox / "load_profile_S900.csv", index=False)
    return pd.concat([f1, f2, s900], ignore_index=True)


def write_feb_mar(dropbox: Path) -> pd.DataFrame:
    """Ten days, Saturday 24 Feb to Monday 4 Mar 2024 (UTC): customers C-ACME (offices) and
    C-BETA (home) on 15-minute profiles, LCL households MAC000002 (Std) and MAC000003 (ToU) on
    half-hourly kWh; a few gaps and one Null. MAC000004 is a household without readings."""
    times = utc_range("2024-02-24", "2024-03-05", MINUTES_15)
    acme_times = times[~times.isin(utc_range("2024-02-27 13:00", "2024-02-27 14:00", MINUTES_15))]
    beta_times = times[times != pd.Timestamp("2024-03-02 02:00", tz="UTC")]
    acme = customer_profile(
        "S100", "C-ACME", acme_times, business_kw(acme_times, np.random.default_rng(10)), seed=10
    )
    beta = customer_profile(
        "S200", "C-BETA", beta_times, home_kw(beta_times, np.random.default_rng(11)), seed=11
    )
    pd.concat([acme[0], beta[0]]).to_csv(dropbox / "customer_profiles.csv", index=False)

    half_hours = utc_range("2024-02-24", "2024-03-05", MINUTES_30)
    lcl, readings = [], [acme[1], beta[1]]
    for seed, (household, tariff) in enumerate([("MAC000002", "Std"), ("MAC000003", "ToU")]):
        kwh = (home_kw(half_hours, np.random.default_rng(20 + seed)) / 2).round(3)
        text = pd.Series(kwh).map("{:.3f}".format)
        if household == "MAC000003":
            text[100] = "Null"  # a missing reading: a gap, never a zero
        present = (text != "Null").to_numpy()
        lcl.append(
            pd.DataFrame(
                {
                    "LCLid": household,
                    "tstp": half_hours.strftime("%Y-%m-%d %H:%M:%S.0000000"),
                    "energy(kWh/hh)": text,
                }
            )
        )
        readings.append(
            readings_frame(
                household,
                half_hours[present],
                MINUTES_30,
                customer_id=household,
                tariff=tariff,
                demand_kw=kwh[present] * 2,
            )
        )
    pd.concat(lcl).to_csv(dropbox / "block_0.csv", index=False)
    pd.DataFrame(
        HOUSEHOLDS, columns=["LCLid", "stdorToU", "Acorn", "Acorn_grouped", "file"]
    ).to_csv(dropbox / "informations_households.csv", index=False)
    return pd.concat(readings, ignore_index=True)


HOUSEHOLDS = [
    ("MAC000002", "Std", "ACORN-A", "Affluent", "block_0"),
    ("MAC000003", "ToU", "ACORN-Q", "Adversity", "block_0"),
    ("MAC000004", "ToU", "ACORN-E", "Affluent", "block_0"),
]


def write_dst(dropbox: Path) -> pd.DataFrame:
    """Customer meter S-DST for the London days 26 and 27 Oct 2024, timestamps with their UTC
    offsets (+01:00 until 01:45 on the 27th, then +00:00 from the repeated 01:00)."""
    times = utc_range("2024-10-25 23:00", "2024-10-28 00:00", MINUTES_15)
    csv, readings = customer_profile(
        "S-DST",
        "C-DST",
        times,
        business_kw(times, np.random.default_rng(30)),
        seed=30,
        stamps=lambda t: [s.isoformat() for s in t.tz_convert("Europe/London")],
    )
    csv.to_csv(dropbox / "load_profile_dst.csv", index=False)
    return readings


FLAT_KWH = 0.55  # per half hour: 1.1 kW, whose float8 mean over a day exceeds 1.1 (by 8e-16)
SINGLE_READING = utc("2024-06-10 19:00")
MISSING_2H = utc("2024-06-15 10:00")
REVERSED = utc("2024-06-02 12:00")  # F2's one interval with negative kW del (a reversed CT)


def write_june(dropbox: Path) -> pd.DataFrame:
    """June 2024, real meters of unusual shape. LCL households (no household file, so each is
    its own customer): MAC000010 flat at 0.55 kWh per half hour all of 3 June and with a single
    reading on 10 June (19:00), MAC000011 at exactly zero all month; building meter B2H read
    every 2 hours (generic long layout, electricity kWh), its 15 June 10:00 reading missing.
    Feeder North: F1 (feeder-meter layout) and F2 (x2, generic long layout, kW and kVA del) over
    1-3 June, F2 at -3.5 kW del at 2 June 12:00."""
    half_hours = utc_range("2024-06-01", "2024-07-01", MINUTES_30)
    on_10th = half_hours.strftime("%Y-%m-%d") == "2024-06-10"
    times = half_hours[~on_10th | (half_hours == SINGLE_READING)]
    kwh = (home_kw(times, np.random.default_rng(40)) / 2).round(3)
    kwh[times.strftime("%Y-%m-%d") == "2024-06-03"] = FLAT_KWH
    households = {"MAC000010": (times, kwh), "MAC000011": (half_hours, np.zeros(len(half_hours)))}
    lcl, readings = [], []
    for household, (stamps, values) in households.items():
        lcl.append(
            pd.DataFrame(
                {
                    "LCLid": household,
                    "tstp": stamps.strftime("%Y-%m-%d %H:%M:%S.0000000"),
                    "energy(kWh/hh)": [f"{v:.3f}" for v in values],
                }
            )
        )
        demand = np.asarray(values) * 3600.0 / 1800  # as the marts spread kWh over the interval
        readings.append(readings_frame(household, stamps, MINUTES_30, demand_kw=demand))
    pd.concat(lcl).to_csv(dropbox / "block_june.csv", index=False)

    two_hours = utc_range("2024-06-01", "2024-07-01", pd.Timedelta(hours=2))
    two_hours = two_hours[two_hours != MISSING_2H]
    building_kwh = (50 + 10 * np.sin(two_hours.hour / 24 * 2 * np.pi)).round(2)
    pd.DataFrame(
        {
            "meter": "B2H",
            "timestamp": two_hours.strftime("%Y-%m-%d %H:%M"),
            "channel": "electricity",
            "unit": "kWh",
            "value": building_kwh,
        }
    ).to_csv(dropbox / "building_B2H.csv", index=False)
    readings.append(
        readings_frame(
            "B2H", two_hours, pd.Timedelta(hours=2), demand_kw=building_kwh * 3600.0 / 7200
        )
    )

    none = pd.DatetimeIndex([])
    f1 = write_feeder_meter(
        dropbox, "F1", "2024-06-01", "2024-06-04", MINUTES_15, 41, "North", 1.0, none, none
    )
    quarters = utc_range("2024-06-01", "2024-06-04", MINUTES_15)
    kw = (30 + np.random.default_rng(42).uniform(-3, 3, len(quarters))).round(3)
    kw[quarters == REVERSED] = -3.5
    kva = (np.abs(kw) / 0.95).round(3)
    pd.concat(
        pd.DataFrame(
            {
                "meter": "F2",
                "timestamp": quarters.strftime("%Y-%m-%d %H:%M"),
                "channel": channel,
                "value": values,
            }
        )
        for channel, values in (("kW del", kw), ("kVA del", kva))
    ).to_csv(dropbox / "feeder_F2.csv", index=False)
    f2 = readings_frame(
        "F2",
        quarters,
        MINUTES_15,
        feeder="North",
        multiplier=2.0,
        kw_del=kw * 2,
        kva_del=kva * 2,
        demand_kw=kw * 2,
    )
    pd.DataFrame({"ID": ["F1", "F2"], "Name": ["North", "North"], "Multiplier": [1.0, 2.0]}).to_csv(
        dropbox / "meter-data.csv", index=False
    )
    readings += [f1, f2]
    return pd.concat(readings, ignore_index=True)


@pytest.fixture(scope="module")
def may(pg_server, templates, tmp_path_factory):
    yield from loaded_platform(pg_server, templates, tmp_path_factory.mktemp("may"), write_may)


@pytest.fixture(scope="module")
def feb_mar(pg_server, templates, tmp_path_factory):
    home = tmp_path_factory.mktemp("feb_mar")
    yield from loaded_platform(pg_server, templates, home, write_feb_mar)


@pytest.fixture(scope="module")
def october(pg_server, templates, tmp_path_factory):
    home = tmp_path_factory.mktemp("october")
    yield from loaded_platform(pg_server, templates, home, write_dst)


@pytest.fixture(scope="module")
def june(pg_server, templates, tmp_path_factory):
    yield from loaded_platform(pg_server, templates, tmp_path_factory.mktemp("june"), write_june)


# --- expectations, computed with pandas from the readings -----------------------------------


def on_grid(readings: pd.DataFrame) -> pd.DataFrame:
    """Each meter's readings on its complete grid, first to last reading; missing intervals are
    'gap' rows with null values, negative delivered or imported ones 'suspect' rows that keep
    them; kw_net = kw_del - kw_rec (a blank kw_rec counts as 0)."""
    static = ["meter_id", "interval_seconds", "feeder", "multiplier", "customer_id", "tariff"]
    parts = []
    for _, frame in readings.groupby("meter_id"):
        step = pd.Timedelta(seconds=frame["interval_seconds"].iloc[0])
        frame = frame.set_index("interval_start").sort_index()
        grid = pd.date_range(frame.index[0], frame.index[-1], freq=step, name="interval_start")
        part = frame.reindex(grid)
        negative = (part[["kw_del", "kva_del", "demand_kw"]] < 0).any(axis=1)
        part["quality"] = np.select(
            [part["meter_id"].isna(), negative], ["gap", "suspect"], default="ok"
        )
        part = part.assign(**frame[static].iloc[0].to_dict())
        parts.append(part.reset_index())
    clean = pd.concat(parts, ignore_index=True)
    clean["kw_net"] = clean["kw_del"] - clean["kw_rec"].fillna(0)
    return clean


def per_period(clean: pd.DataFrame, freq: str, start_column: str) -> pd.DataFrame:
    """Energy and demand per meter and UTC hour / day of the clean grid."""
    hours = clean["interval_seconds"] / 3600
    frame = clean.assign(
        period=clean["interval_start"].dt.floor(freq),
        energy=clean["demand_kw"] * hours,
        delivered=clean["kw_del"] * hours,
        received=clean["kw_rec"] * hours,
        net=clean["kw_net"] * hours,
        present=clean["quality"] != "gap",
    )
    out = frame.groupby(["meter_id", "period"]).agg(
        energy_kwh=("energy", lambda s: s.sum(min_count=1)),
        mean_kw=("demand_kw", "mean"),
        peak_kw=("demand_kw", "max"),
        delivered_kwh=("delivered", lambda s: s.sum(min_count=1)),
        received_kwh=("received", lambda s: s.sum(min_count=1)),
        net_kwh=("net", lambda s: s.sum(min_count=1)),
        present=("present", "sum"),
        interval_seconds=("interval_seconds", "min"),
    )
    # Expected: the instants of the meter's grid (anchored at its first reading) in the period.
    out = out.reset_index()
    anchor = out["meter_id"].map(clean.groupby("meter_id")["interval_start"].min())
    step = pd.to_timedelta(out["interval_seconds"], unit="s")
    start, end = out["period"], out["period"] + pd.Timedelta(freq)
    expected = np.ceil((end - anchor) / step) - np.ceil((start - anchor) / step)
    out["completeness"] = out["present"] / expected
    out = out.rename(columns={"period": start_column})
    return out[["meter_id", start_column, *FIGURES]]


def customer_intervals(clean: pd.DataFrame) -> pd.DataFrame:
    """The intervals customer marts use: meters on no feeder, with a reading; UTC calendar."""
    frame = clean[clean["feeder"].isna() & (clean["quality"] == "ok")].copy()
    frame["customer_id"] = frame["customer_id"].fillna(frame["meter_id"])
    local = frame["interval_start"].dt.tz_localize(None)  # the calendar is UTC (see top)
    frame["local"] = local
    frame["hour"] = local.dt.hour
    frame["day_type"] = np.where(local.dt.weekday >= 5, "weekend", "weekday")
    frame["energy_kwh"] = frame["demand_kw"] * frame["interval_seconds"] / 3600
    frame["month_start"] = local.dt.to_period("M").dt.start_time.dt.tz_localize("UTC")
    return frame


def expected_behavior(intervals: pd.DataFrame) -> pd.DataFrame:
    """customer_behavior: day, week (from Monday, clipped to the month) and month windows."""
    local = intervals["local"]
    month = local.dt.to_period("M").dt.start_time
    monday = local.dt.normalize() - pd.to_timedelta(local.dt.weekday, unit="D")
    week = monday.where(monday >= month, month)  # clipped to the month
    windows = {"day": local.dt.normalize(), "week": week, "month": month}
    rows = []
    for length, starts in windows.items():
        for (customer, start), w in intervals.groupby(["customer_id", starts]):
            w = w.sort_values("interval_start")
            kw, weekend = w["demand_kw"], w["day_type"] == "weekend"
            rows.append(
                {
                    "customer_id": customer,
                    "window_length": length,
                    "window_start": start.tz_localize("UTC"),
                    "window_start_local": start,
                    "tariff": w["tariff"].iloc[0],
                    "max_kw": kw.max(),
                    "mean_kw": kw.mean(),
                    "total_kwh": w["energy_kwh"].sum(),
                    "peak_hour": w.loc[kw.idxmax(), "hour"],
                    "load_factor": load_factor(kw),
                    "base_load_kw": kw.quantile(0.05),
                    "weekday_mean_kw": kw[~weekend].mean(),
                    "weekend_mean_kw": kw[weekend].mean(),
                    "night_share": share(w["energy_kwh"][w["hour"] < 6], w["energy_kwh"]),
                }
            )
    return pd.DataFrame(rows)


def load_factor(kw: pd.Series) -> float:
    """Mean / max; exactly 1 for a flat window, none where the maximum is 0."""
    if kw.max() == 0:
        return np.nan
    return 1.0 if kw.min() == kw.max() else kw.mean() / kw.max()


def share(part: pd.Series, whole: pd.Series) -> float:
    """part's sum / whole's sum; none where part is empty (unknown) or the whole is 0."""
    return part.sum() / whole.sum() if len(part) and whole.sum() else np.nan


def expected_hourly_profile(intervals: pd.DataFrame) -> pd.DataFrame:
    """customer_hourly_profile: mean kW per customer, UTC month, day type and hour of day."""
    return (
        intervals.groupby(["customer_id", "month_start", "day_type", "hour"])
        .agg(mean_kw=("demand_kw", "mean"), intervals=("demand_kw", "size"))
        .reset_index()
    )


# --- comparing ----------------------------------------------------------------------------------


def fetch(platform: PlatformUnderTest, query: str, keys: list[str]) -> pd.DataFrame:
    """A query's rows sorted by `keys` in pandas (no collation surprises), timestamptz as UTC."""
    frame = platform.query(query)
    for column in frame.columns:
        if frame[column].map(lambda v: getattr(v, "tzinfo", None) is not None).any():
            frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame.sort_values(keys).reset_index(drop=True)


def assert_same(actual: pd.DataFrame, expected: pd.DataFrame, keys: list[str]) -> None:
    """Same rows (by `keys`) and the same figures, floats to 1e-9 relative."""
    expected = expected.sort_values(keys).reset_index(drop=True)[list(actual.columns)]
    for column in actual.columns:
        if pd.api.types.is_float_dtype(expected[column]):
            actual[column] = actual[column].astype(float)
        elif pd.api.types.is_string_dtype(expected[column].dtype):  # text: one null, None
            for frame in (actual, expected):
                frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    pd.testing.assert_frame_equal(actual, expected, check_dtype=False, rtol=1e-9)


# --- May: feeder meters and a customer meter, one month ---------------------------------------


def test_clean_grid_keeps_both_directions_and_the_multiplier(may):
    """fct_intervals_clean equals the pandas grid: kW/kVA x multiplier (1 where none is given),
    a bi-directional interval keeps kw_del and kw_rec with kw_net = del - rec, a blank kW rec
    nets as 0, demand_kw is kW del or the profile's Avg Import kW, power factor passes through,
    missing intervals are 'gap' rows of nulls."""
    platform, readings = may
    columns = [
        "meter_id",
        "interval_start",
        "interval_seconds",
        "feeder",
        "multiplier",
        *VALUES,
        "quality",
    ]
    actual = fetch(
        platform,
        f"select {', '.join(columns)} from marts.fct_intervals_clean",
        ["meter_id", "interval_start"],
    )
    assert_same(actual, on_grid(readings)[columns], ["meter_id", "interval_start"])

    both = actual[(actual["kw_del"] > 0) & (actual["kw_rec"] > 0)]
    assert len(both) > 0 and set(both["meter_id"]) == {"F1"}
    key = ("F1", utc("2024-05-01 12:00"))
    noon = actual.set_index(["meter_id", "interval_start"]).loc[key]
    raw = readings.set_index(["meter_id", "interval_start"]).loc[key]
    assert noon["kw_del"] == pytest.approx(raw["kw_del"]) and raw["kw_rec"] > 0
    assert noon["kw_rec"] == pytest.approx(raw["kw_rec"])
    assert noon["kw_net"] == pytest.approx(raw["kw_del"] - raw["kw_rec"])


def test_meter_hourly_matches_pandas(may):
    """fct_meter_hourly: energy (demand x interval hours, multiplier applied), mean and peak kW,
    delivered / received / net kWh and completeness per UTC hour, for a 15-minute meter with a
    partial and a wholly missing hour, a 5-minute meter (12 intervals an hour) and a customer
    meter (no delivered / received: nulls)."""
    platform, readings = may
    actual = fetch(
        platform,
        f"select meter_id, hour_start, {', '.join(FIGURES)} from marts.fct_meter_hourly",
        ["meter_id", "hour_start"],
    )
    expected = per_period(on_grid(readings), "1h", "hour_start")
    assert_same(actual, expected, ["meter_id", "hour_start"])

    hours = actual.set_index(["meter_id", "hour_start"])
    assert hours.loc[("F1", utc("2024-05-01 10:00")), "completeness"] == pytest.approx(1 / 4)
    wholly_missing = hours.loc[("F1", utc("2024-05-01 11:00"))]
    assert wholly_missing["completeness"] == 0 and pd.isna(wholly_missing["energy_kwh"])
    last = hours.loc[("F1", utc("2024-05-02 23:00")), "completeness"]  # last reading 23:30
    assert last == pytest.approx(3 / 4)
    assert hours.loc[("F2", utc("2024-05-01 07:00")), "completeness"] == pytest.approx(10 / 12)


def test_meter_daily_matches_pandas(may):
    """fct_meter_daily: the same figures per UTC day; F1's 1 May misses 8 of 96 quarter-hours
    (completeness 88/96), F2 has 34 of 288 five-minute intervals."""
    platform, readings = may
    actual = fetch(
        platform,
        f"select meter_id, day_start, {', '.join(FIGURES)} from marts.fct_meter_daily",
        ["meter_id", "day_start"],
    )
    expected = per_period(on_grid(readings), "1D", "day_start")
    assert_same(actual, expected, ["meter_id", "day_start"])

    by_day = actual.set_index(["meter_id", "day_start"])["completeness"]
    may_1 = utc("2024-05-01")
    assert by_day[("F1", may_1)] == pytest.approx(88 / 96)
    assert by_day[("F2", may_1)] == pytest.approx(34 / 288)


def test_customer_hourly_profile_within_a_month(may):
    """customer_hourly_profile for a month: mean kW and interval count per hour of day and day
    type over the customer meter's readings; feeder meters are not customers."""
    platform, readings = may
    actual = fetch(
        platform,
        "select customer_id, month_start, day_type, hour, mean_kw, intervals"
        " from marts.customer_hourly_profile",
        ["customer_id", "month_start", "day_type", "hour"],
    )
    expected = expected_hourly_profile(customer_intervals(on_grid(readings)))
    assert set(actual["customer_id"]) == {"C-SOLO"}
    assert_same(actual, expected, ["customer_id", "month_start", "day_type", "hour"])


# --- February / March: customer behaviour, tariffs, customers ---------------------------------

BEHAVIOR = [
    "customer_id",
    "window_length",
    "window_start",
    "window_start_local",
    "tariff",
    "max_kw",
    "mean_kw",
    "total_kwh",
    "peak_hour",
    "load_factor",
    "base_load_kw",
    "weekday_mean_kw",
    "weekend_mean_kw",
    "night_share",
]
WINDOW = ["customer_id", "window_length", "window_start"]


def test_customer_behavior_windows(feb_mar):
    """customer_behavior for day, week and month windows of four customers (15-minute kW and
    half-hourly LCL kWh x 2): max / mean kW, kWh, peak hour, load factor, 5th-percentile base
    load, weekday / weekend means and night share; the week of 26 Feb is split at 1 March, the
    week of 19 Feb starts on its Monday though the data start on the Saturday."""
    platform, readings = feb_mar
    actual = fetch(platform, f"select {', '.join(BEHAVIOR)} from marts.customer_behavior", WINDOW)
    expected = expected_behavior(customer_intervals(on_grid(readings)))
    assert_same(actual, expected, WINDOW)

    weeks = actual[(actual["customer_id"] == "C-ACME") & (actual["window_length"] == "week")]
    assert weeks["window_start"].dt.strftime("%Y-%m-%d").tolist() == [
        "2024-02-19",
        "2024-02-26",
        "2024-03-01",
        "2024-03-04",
    ]
    assert len(actual[actual["window_length"] == "day"]) == 4 * 10


def test_customer_hourly_profile_per_month_across_a_month_boundary(feb_mar):
    """customer_hourly_profile gives each UTC month its own profile, also when one build covers
    two months (as `energy run` and backfills do)."""
    platform, readings = feb_mar
    actual = fetch(
        platform,
        "select customer_id, month_start, day_type, hour, mean_kw, intervals"
        " from marts.customer_hourly_profile",
        ["customer_id", "month_start", "day_type", "hour"],
    )
    expected = expected_hourly_profile(customer_intervals(on_grid(readings)))
    assert_same(actual, expected, ["customer_id", "month_start", "day_type", "hour"])


def test_usage_by_tariff(feb_mar):
    """usage_by_tariff per tariff group and month: customers, kWh, mean kWh per customer, mean
    kW, mean monthly peak and mean night share; customers without a tariff are 'unknown'."""
    platform, readings = feb_mar
    months = expected_behavior(customer_intervals(on_grid(readings)))
    months = months[months["window_length"] == "month"]
    expected = (
        months.assign(tariff=months["tariff"].fillna("unknown"))
        .groupby(["tariff", "window_start_local"])
        .agg(
            customers=("customer_id", "nunique"),
            total_kwh=("total_kwh", "sum"),
            mean_kwh_per_customer=("total_kwh", "mean"),
            mean_kw=("mean_kw", "mean"),
            mean_peak_kw=("max_kw", "mean"),
            mean_night_share=("night_share", "mean"),
        )
        .reset_index()
        .rename(columns={"window_start_local": "month_start_local"})
    )
    keys = ["tariff", "month_start_local"]
    actual = fetch(platform, "select * from marts.usage_by_tariff", keys)
    assert_same(actual, expected, keys)
    assert actual["tariff"].tolist() == ["Std", "Std", "ToU", "ToU", "unknown", "unknown"]
    assert actual["customers"].tolist() == [1, 1, 1, 1, 2, 2]


def test_dim_customer(feb_mar):
    """dim_customer: one row per customer of the profiles and of the households file (also one
    without readings), its meters, tariff and attributes (the ACORN class for LCL homes)."""
    platform, _ = feb_mar
    actual = fetch(platform, "select * from marts.dim_customer", ["customer_id"])
    households = [
        (lcl, 1, [lcl], tariff, {lcl: {"acorn": acorn, "acorn_grouped": group}})
        for lcl, tariff, acorn, group, _ in HOUSEHOLDS
    ]
    expected = pd.DataFrame(
        [
            ("C-ACME", 1, ["S100"], None, {"S100": {}}),
            ("C-BETA", 1, ["S200"], None, {"S200": {}}),
            *households,
        ],
        columns=["customer_id", "meters", "meter_ids", "tariff", "attributes_by_meter"],
    )
    assert actual.to_dict("records") == expected.to_dict("records")


# --- October: the UK autumn clock change ----------------------------------------------------


def test_dst_day_with_utc_offsets_is_complete_in_utc(october):
    """A profile whose timestamps carry offsets across 27 Oct 2024 (01:00-01:45 twice, +01:00
    then +00:00) lands on a gapless UTC grid; UTC day 27 Oct has all 96 intervals
    (completeness 1.0) and the energy of exactly those intervals."""
    platform, readings = october
    clean = fetch(
        platform,
        "select interval_start, quality from marts.fct_intervals_clean",
        ["interval_start"],
    )
    assert clean["interval_start"].tolist() == list(readings["interval_start"])
    assert (clean["quality"] == "ok").all()
    assert (clean["interval_start"].diff().dropna() == MINUTES_15).all()
    assert platform.scalar("select count(*) from marts.fct_gaps") == 0

    daily = fetch(
        platform,
        f"select meter_id, day_start, {', '.join(FIGURES)} from marts.fct_meter_daily",
        ["day_start"],
    )
    assert_same(daily, per_period(on_grid(readings), "1D", "day_start"), ["day_start"])
    day = daily.set_index("day_start").loc[utc("2024-10-27")]
    on_day = readings[readings["interval_start"].dt.strftime("%Y-%m-%d") == "2024-10-27"]
    assert len(on_day) == 96
    assert day["completeness"] == 1.0
    assert day["energy_kwh"] == pytest.approx((on_day["demand_kw"] * 0.25).sum(), rel=1e-9)


# --- June: real meters of unusual shape never break a month ------------------------------------

DEFINITIONS = Path(__file__).parent / "data" / "definitions.json"


def test_unusual_meters_build_every_asset_of_the_month(june):
    """A flat day, a meter at zero all month, a single-reading day and a meter read every two
    hours are real meters: the month run succeeds (the fixture asserts it) and every
    month-partitioned asset has its June partition."""
    from dagster import AssetKey, DagsterInstance

    from energy_assets.commands.session import platform_session

    platform, _ = june
    partitioned = json.loads(DEFINITIONS.read_text())["partitioned"]
    with platform_session(platform.settings):
        instance = DagsterInstance.get()
        missing = [
            key
            for key in partitioned
            if "2024-06" not in instance.get_materialized_partitions(AssetKey(key.split("/")))
        ]
    assert missing == []


def test_flat_zero_and_single_reading_days(june):
    """customer_behavior equals pandas for every window; the flat day's load factor is exactly
    1 (the float mean / max is 1.0000000000000007), the single reading's day is flat too (and
    has no night share: nothing was read at night), and a meter at zero has no load factor or
    night share (0 / 0), with zero demand and energy."""
    platform, readings = june
    actual = fetch(platform, f"select {', '.join(BEHAVIOR)} from marts.customer_behavior", WINDOW)
    assert_same(actual, expected_behavior(customer_intervals(on_grid(readings))), WINDOW)

    days = actual[actual["window_length"] == "day"].set_index(["customer_id", "window_start"])
    flat = days.loc[("MAC000010", utc("2024-06-03"))]
    assert flat["load_factor"] == 1.0 and flat["max_kw"] == FLAT_KWH * 3600.0 / 1800
    single = days.loc[("MAC000010", utc("2024-06-10"))]
    kw = readings.set_index(["meter_id", "interval_start"]).loc[
        ("MAC000010", SINGLE_READING), "demand_kw"
    ]
    assert (single["max_kw"], single["mean_kw"], single["base_load_kw"]) == (kw, kw, kw)
    assert (single["load_factor"], single["peak_hour"]) == (1.0, 19)
    assert pd.isna(single["night_share"])  # no reading at night: unknown, not 0
    zero = actual[actual["customer_id"] == "MAC000011"]
    assert len(zero) == 30 + 5 + 1  # days, weeks (from Monday 3 June, and 1-2 June), month
    assert zero["load_factor"].isna().all() and zero["night_share"].isna().all()
    assert (zero[["max_kw", "mean_kw", "total_kwh", "base_load_kw"]] == 0).all().all()


def test_meter_read_every_two_hours(june):
    """Completeness counts the intervals of the meter's own grid in the hour or day: an hour
    holding one 2-hour reading is complete (1, not 2), 15 June has 11 of its 12 readings."""
    platform, readings = june
    clean = on_grid(readings[readings["meter_id"] == "B2H"])
    for table, freq, start in [("hourly", "1h", "hour_start"), ("daily", "1D", "day_start")]:
        actual = fetch(
            platform,
            f"select meter_id, {start}, {', '.join(FIGURES)} from marts.fct_meter_{table}"
            " where meter_id = 'B2H'",
            [start],
        )
        assert_same(actual, per_period(clean, freq, start), [start])
        complete = actual.set_index(start)["completeness"]
        if table == "hourly":
            assert len(complete) == 30 * 12 and complete[MISSING_2H] == 0.0
            assert (complete.drop(MISSING_2H) == 1.0).all()
        else:
            assert complete[utc("2024-06-15")] == 11 / 12
            assert (complete.drop(utc("2024-06-15")) == 1.0).all()


def test_negative_delivered_kw_is_suspect_and_kept(june):
    """F2's -3.5 kW del interval: quality 'suspect', its value kept (x2: -7 kW) in the clean
    grid, summed into the feeder's MW as measured, and still a meter reporting; the month's
    hourly energy and completeness count it as a reading."""
    platform, readings = june
    columns = ["meter_id", "interval_start", "feeder", "multiplier", *VALUES, "quality"]
    clean = fetch(
        platform,
        f"select {', '.join(columns)} from marts.fct_intervals_clean where feeder = 'North'",
        ["meter_id", "interval_start"],
    )
    expected = on_grid(readings[readings["feeder"] == "North"])
    assert_same(clean, expected[columns], ["meter_id", "interval_start"])
    by_key = clean.set_index(["meter_id", "interval_start"])
    assert by_key.loc[("F2", REVERSED), ["kw_del", "demand_kw", "quality"]].tolist() == [
        -7.0,
        -7.0,
        "suspect",
    ]
    assert (clean["quality"] == "suspect").sum() == 1

    feeder = platform.query(
        "select mw_del, mw_net, meters_reporting, meters_expected from marts.fct_feeder_intervals"
        " where feeder = 'North' and interval_start = %s",
        (REVERSED,),
    ).iloc[0]
    f1_kw = by_key.loc[("F1", REVERSED), "kw_del"]
    assert feeder["mw_del"] == pytest.approx((f1_kw - 7.0) / 1000, rel=1e-12)
    assert (feeder["meters_reporting"], feeder["meters_expected"]) == (2, 2)
    hour = platform.query(
        "select delivered_kwh, completeness from marts.fct_meter_hourly"
        " where meter_id = 'F2' and hour_start = %s",
        (REVERSED,),
    ).iloc[0]
    f2 = by_key.loc["F2"]
    in_hour = f2[(f2.index >= REVERSED) & (f2.index < REVERSED + pd.Timedelta(hours=1))]
    assert hour["delivered_kwh"] == pytest.approx(in_hour["kw_del"].sum() / 4, rel=1e-12)
    assert hour["completeness"] == 1.0


def test_one_customer_definition(june):
    """dim_customer holds every meter on no feeder, here each its own customer (none has a
    customer id), and never the feeder meters F1 and F2; customer_behavior,
    customer_hourly_profile and usage_by_tariff count exactly those customers."""
    platform, _ = june
    dim = platform.query("select customer_id, meters, meter_ids from marts.dim_customer")
    assert sorted(map(tuple, dim.values.tolist())) == [
        ("B2H", 1, ["B2H"]),
        ("MAC000010", 1, ["MAC000010"]),
        ("MAC000011", 1, ["MAC000011"]),
    ]
    for table in ("customer_behavior", "customer_hourly_profile"):
        customers = platform.query(f"select distinct customer_id from marts.{table}")
        assert sorted(customers["customer_id"]) == ["B2H", "MAC000010", "MAC000011"]
    tariffs = platform.query("select tariff, customers from marts.usage_by_tariff")
    assert tariffs.values.tolist() == [["unknown", 3]]


def test_dbt_unit_tests_pass(june):
    """The dbt unit tests (given rows -> expected rows: the gap runs of fct_gaps, the month's
    grid of fct_intervals_clean) pass against a built warehouse; the platform's own builds
    leave them out (see test_dbt_args.py)."""
    from energy_assets.commands.session import platform_session
    from energy_assets.marts.dbt_project import dbt_command

    platform, _ = june
    with platform_session(platform.settings), tempfile.TemporaryDirectory() as target:
        dbt = subprocess.run(
            dbt_command("test", "--select", "test_type:unit", target=target),
            capture_output=True,
            text=True,
        )
    assert dbt.returncode == 0, dbt.stdout
    assert "PASS=3 WARN=0 ERROR=0" in dbt.stdout
