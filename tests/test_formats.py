"""One test per declared input format: a representative file loads into the raw layer with the
rows, meters, channels and UTC bounds that pandas computes independently from the same file."""

from __future__ import annotations

import functools
import gzip
import io

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA

from energy_assets.commands.run import run_once
from energy_assets.ingest.loader import FileOutcome, Ingest
from energy_assets.settings import Settings
from energy_assets.warehouse.database import apply_schema

LCL = SHARED_DATA / "lcl_london_2013_60hh"
HOUSEHOLDS = ["MAC000005", "MAC000028", "MAC000041", "MAC000065", "MAC000124"]
"""Two tariffs, two households that stop early (28, 65), one with many missing slots (124) and
one stuck at zero for days (41)."""

PROFILE_CHANNELS = {
    "Avg Import kW": "kw_import",
    "Import kWh": "kwh_import",
    "Power Factor": "power_factor",
    **{f"Voltage L{i}": f"voltage_l{i}" for i in (1, 2, 3)},
    **{f"Current L{i}": f"current_l{i}" for i in (1, 2, 3)},
    **{f"Power L{i}": f"kw_l{i}" for i in (1, 2, 3)},
}
DARKSKY_VARIABLES = {
    "temperature": "temperature",
    "dewPoint": "dew_point",
    "humidity": "humidity",
    "pressure": "pressure",
    "windSpeed": "wind_speed",
    "windBearing": "wind_direction",
    "visibility": "visibility",
}
ASHRAE_VARIABLES = {
    "air_temperature": "temperature",
    "dew_temperature": "dew_point",
    "cloud_coverage": "cloud_cover",
    "precip_depth_1_hr": "precipitation",
    "sea_level_pressure": "pressure",
    "wind_direction": "wind_direction",
    "wind_speed": "wind_speed",
}


# --- helpers ------------------------------------------------------------------------------------


def shared(name: str):
    path = LCL / name
    if not path.exists():
        pytest.skip(f"{name}: this test needs ../shared/data (real LCL London data) at {LCL}")
    return path


def utc(values) -> pd.Series:
    return pd.to_datetime(pd.Series(values), utc=True).dt.as_unit("us")


def text_table(text: str) -> pd.DataFrame:
    """A CSV as pandas reads it, every cell verbatim text (spaces kept, blanks as "")."""
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)


def numbers(text: pd.Series) -> pd.Series:
    """Numbers from text cells; blank and `Null` / `NULL` are missing values."""
    text = text.str.strip()
    return pd.to_numeric(text.mask(text.str.lower().isin(["", "null"])))


@pytest.fixture
def load(platform):
    """Write a file into the dropbox and ingest it; the outcome must be `loaded`."""
    apply_schema(platform.warehouse_url)

    def load_file(name: str, content: str | pd.DataFrame) -> FileOutcome:
        path = platform.settings.dropbox / name
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8", newline="")
        elif path.suffix == ".xlsx":
            content.to_excel(path, index=False, engine="openpyxl")
        else:
            content.to_csv(path, index=False, date_format="%Y-%m-%d %H:%M:%S")
        with Ingest(platform.settings, platform.warehouse_url) as ingest:
            outcome = ingest.ingest_file(path)
        assert outcome.status == "loaded", outcome.reason
        return outcome

    return load_file


def summary(frame: pd.DataFrame, keys: list[str], time: str) -> pd.DataFrame:
    """Per key: rows with a value, first and last time, sum of values."""
    frame = frame.dropna(subset=["value"])
    out = frame.groupby(keys, as_index=False).agg(
        rows=("value", "size"), first=(time, "min"), last=(time, "max"), total=("value", "sum")
    )
    return out.sort_values(keys, ignore_index=True)


def assert_loaded(platform, table: str, expected: pd.DataFrame, keys: list[str], time: str):
    """`raw.<table>` summarised per key equals `summary(expected)`."""
    cols = ", ".join(keys)
    got = platform.query(
        f"select {cols}, count(*) as rows, min({time}) as first, max({time}) as last,"
        f" sum(value) as total from raw.{table} group by {cols}"
    )
    got = got.sort_values(keys, ignore_index=True)
    want = summary(expected, keys, time)
    for frame in (got, want):
        frame["first"], frame["last"] = utc(frame["first"]), utc(frame["last"])
    pd.testing.assert_frame_equal(got, want, check_dtype=False, rtol=1e-9)


def assert_readings(platform, expected: pd.DataFrame, interval_seconds: dict[str, int]):
    """`expected`: long form meter_id, channel, interval_start (UTC), value (NaN = missing)."""
    assert_loaded(platform, "readings", expected, ["meter_id", "channel"], "interval_start")
    steps = platform.query(
        "select meter_id, array_agg(distinct interval_seconds) as s from raw.readings group by 1"
    )
    assert dict(zip(steps.meter_id, steps.s, strict=True)) == {
        m: [s] for m, s in interval_seconds.items()
    }


def melt(frame: pd.DataFrame, meter: str, time: pd.Series, channels: dict[str, str]):
    """A wide frame -> long expected readings."""
    parts = [
        pd.DataFrame(
            {
                "meter_id": frame[meter].to_numpy(),
                "channel": name,
                "interval_start": time.to_numpy(),
                "value": pd.to_numeric(frame[col]).to_numpy(),
            }
        )
        for col, name in channels.items()
    ]
    return pd.concat(parts, ignore_index=True)


@functools.cache
def lcl_text() -> str:
    """The header and every line of `HOUSEHOLDS` from the real file, byte for byte."""
    wanted = tuple(f"{h}," for h in HOUSEHOLDS)
    with gzip.open(shared("halfhourly_kwh.csv.gz"), "rt", encoding="utf-8", newline="") as f:
        header = next(f)
        return header + "".join(line for line in f if line.startswith(wanted))


def lcl_expected(table: pd.DataFrame, time: str, value: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "meter_id": table["LCLid"],
            "channel": "kwh_import",
            "interval_start": utc(pd.to_datetime(table[time]).dt.tz_localize("UTC")),
            "value": numbers(table[value]),
        }
    )


def customer_profile(meters: dict[str, str], times: pd.DatetimeIndex, seed: int = 0):
    """Seed-000 style load profile: per meter and 15-minute interval, averages and phases."""
    rng = np.random.default_rng(seed)
    n, frames = len(times), []
    for serial, customer in meters.items():
        kw = rng.uniform(5, 60, n).round(3)
        pf = rng.uniform(0.85, 0.99, n).round(3)
        phase_kw = (kw[:, None] * rng.dirichlet([20, 20, 20], n)).round(3)
        volts = rng.normal(240, 2, (n, 3)).round(1)
        amps = (phase_kw * 1000 / (volts * pf[:, None])).round(2)
        frame = pd.DataFrame(
            {
                "Serial": serial,
                "Customer Ref": customer,
                "Timestamp": times,
                "Avg Import kW": kw,
                "Import kWh": (kw / 4).round(4),
                "Power Factor": pf,
            }
        )
        for i in range(3):
            frame[f"Voltage L{i + 1}"] = volts[:, i]
        for i in range(3):
            frame[f"Current L{i + 1}"] = amps[:, i]
        for i in range(3):
            frame[f"Power L{i + 1}"] = phase_kw[:, i]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def generic_long(meters: dict[str, pd.DatetimeIndex], channels: list[tuple[str, str]]):
    """`meter,timestamp,channel,value,unit` rows in time order, explicit UTC (`Z`) stamps."""
    rng = np.random.default_rng(7)
    rows = [
        (meter, t, channel, round(float(rng.uniform(0, 20)), 3), unit)
        for meter, times in meters.items()
        for t in times
        for channel, unit in channels
    ]
    frame = pd.DataFrame(rows, columns=["meter", "time", "channel", "value", "unit"])
    frame = frame.sort_values("time", kind="stable", ignore_index=True)
    frame.insert(1, "timestamp", frame.pop("time").dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return frame


def generic_expected(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "meter_id": frame["meter"],
            "channel": (frame["channel"] + "_" + frame["unit"]).str.lower(),
            "interval_start": utc(frame["timestamp"]),
            "value": frame["value"],
        }
    )


# --- LCL (real data) ----------------------------------------------------------------------------


def test_lcl_restructured_layout(platform, load):
    text = lcl_text()
    table = text_table(text)
    assert table["energy(kWh/hh)"].str.startswith(" ").all(), "values keep their spaces"
    expected = lcl_expected(table, "tstp", "energy(kWh/hh)")

    outcome = load("lcl_sample.csv", text)

    assert (outcome.format, outcome.kind) == ("lcl_halfhourly", "readings")
    assert outcome.rows == expected["value"].notna().sum()
    assert platform.scalar("select count(distinct meter_id) from raw.readings") == 5
    assert_readings(platform, expected, dict.fromkeys(HOUSEHOLDS, 1800))
    bounds = platform.query(
        "select min(interval_start) as a, max(interval_start) as b from raw.readings"
    )
    times = pd.to_datetime(table["tstp"]).dt.tz_localize("UTC")
    assert utc(bounds.iloc[0]).tolist() == utc([times.min(), times.max()]).tolist()
    assert platform.scalar("select sum(value) from raw.readings") == pytest.approx(
        expected["value"].sum(), rel=1e-9
    )


def test_lcl_original_layout_with_tariff_and_nulls(platform, load):
    real = text_table(lcl_text())
    tariffs = text_table(shared("households.csv").read_text()).set_index("LCLid")["stdorToU"]
    values = real["energy(kWh/hh)"].copy()
    values.iloc[::5000] = "Null"  # the original export's missing readings
    assert (values == "Null").sum() >= 10
    original = pd.DataFrame(
        {
            "LCLid": real["LCLid"],
            "stdorToU": real["LCLid"].map(tariffs),
            "DateTime": real["tstp"] + ".0000000",
            "KWH/hh (per half hour) ": values,
        }
    )
    text = "\n".join(",".join(row) for row in [original.columns, *original.to_numpy()]) + "\n"
    expected = lcl_expected(original, "DateTime", "KWH/hh (per half hour) ")

    outcome = load("LCL-June2015v2_0.csv", text)

    assert outcome.format == "lcl_halfhourly"
    assert outcome.rows == len(real) - (values == "Null").sum()
    assert_readings(platform, expected, dict.fromkeys(HOUSEHOLDS, 1800))
    zeros = (numbers(values) == 0).sum()
    assert platform.scalar("select count(*) from raw.readings where value = 0") == zeros
    meters = platform.query("select meter_id, tariff from raw.meters")
    assert dict(zip(meters.meter_id, meters.tariff, strict=True)) == tariffs[HOUSEHOLDS].to_dict()
    assert set(tariffs[HOUSEHOLDS]) == {"Std", "ToU"}


def test_lcl_households(platform, load):
    path = shared("households.csv")
    table = text_table(path.read_text())

    outcome = load("households.csv", path.read_text())

    assert (outcome.format, outcome.kind, outcome.rows) == ("lcl_households", "meters", len(table))
    got = platform.query("select meter_id, customer_id, tariff, attributes from raw.meters")
    for key in ("acorn", "acorn_grouped"):
        got[key] = [attributes.get(key) for attributes in got["attributes"]]
    want = pd.DataFrame(
        {
            "meter_id": table["LCLid"],
            "customer_id": table["LCLid"],
            "tariff": table["stdorToU"],
            "acorn": table["Acorn"],
            "acorn_grouped": table["Acorn_grouped"],
        }
    )
    pd.testing.assert_frame_equal(
        got[want.columns].sort_values("meter_id", ignore_index=True),
        want.sort_values("meter_id", ignore_index=True),
    )


def test_darksky_london_weather(platform, load):
    path = shared("weather_hourly_darksky_london.csv")
    text = path.read_bytes().decode("utf-8")  # the CRs inside quoted fields kept
    table = text_table(text)
    assert (table["pressure"] == "NULL").sum() == 13  # the 13 missing pressures
    assert not pd.to_datetime(table["time"]).is_monotonic_increasing
    expected = pd.concat(
        [
            pd.DataFrame(
                {
                    "site_id": "london",
                    "variable": name,
                    "observed_at": utc(pd.to_datetime(table["time"]).dt.tz_localize("UTC")),
                    "value": numbers(table[col]),
                }
            )
            for col, name in DARKSKY_VARIABLES.items()
        ],
        ignore_index=True,
    )

    outcome = load("weather_hourly_darksky.csv", text)

    assert (outcome.format, outcome.kind) == ("weather_darksky", "weather")
    assert outcome.rows == expected["value"].notna().sum()
    assert_loaded(platform, "weather", expected, ["site_id", "variable"], "observed_at")
    n = platform.scalar("select count(*) from raw.weather where variable = 'temperature'")
    assert n == len(table)


# --- ASHRAE (generated) -------------------------------------------------------------------------

ASHRAE_HOURS = pd.date_range("2016-01-01", periods=48, freq="h")
ASHRAE_METERS = {"0": [0, 1], "1": [0], "2": [0, 1]}  # building -> meter codes


def test_ashrae_building_meters(platform, load):
    rng = np.random.default_rng(4)
    rows = [
        (building, code, t.strftime("%Y-%m-%d %H:%M:%S"), round(float(rng.uniform(0, 300)), 4))
        for t in ASHRAE_HOURS
        for building, codes in ASHRAE_METERS.items()
        for code in codes
    ]
    frame = pd.DataFrame(rows, columns=["building_id", "meter", "timestamp", "meter_reading"])
    frame.loc[::17, "meter_reading"] = 0.0
    expected = pd.DataFrame(
        {
            "meter_id": frame["building_id"],
            "channel": frame["meter"].map({0: "electricity_kwh", 1: "chilled_water_kwh"}),
            "interval_start": utc(pd.to_datetime(frame["timestamp"]).dt.tz_localize("UTC")),
            "value": frame["meter_reading"],
        }
    )

    outcome = load("train.csv", frame)

    assert (outcome.format, outcome.rows) == ("ashrae_meter", 48 * 5)
    assert_readings(platform, expected, dict.fromkeys(ASHRAE_METERS, 3600))
    channels = platform.query("select distinct channel from raw.readings")["channel"]
    assert set(channels) == {"electricity_kwh", "chilled_water_kwh"}


def test_ashrae_building_metadata(platform, load):
    text = (
        "site_id,building_id,primary_use,square_feet,year_built,floor_count\n"
        "0,0,Education,7432,2008,\n"
        "0,1,Education,2720,2004,\n"
        "1,2,Lodging/residential,27926,,3\n"
    )

    outcome = load("building_metadata.csv", text)

    assert (outcome.format, outcome.kind, outcome.rows) == ("ashrae_buildings", "meters", 3)
    got = platform.query("select meter_id, site_id, attributes from raw.meters order by 1")
    assert got["site_id"].tolist() == ["0", "0", "1"]
    assert got["attributes"].tolist() == [
        {"primary_use": "Education", "square_feet": "7432", "year_built": "2008"},
        {"primary_use": "Education", "square_feet": "2720", "year_built": "2004"},
        {"primary_use": "Lodging/residential", "square_feet": "27926", "floor_count": "3"},
    ]


def test_ashrae_weather(platform, load):
    rng = np.random.default_rng(5)
    frames = []
    for site in ("0", "1"):
        n = len(ASHRAE_HOURS)
        frames.append(
            pd.DataFrame(
                {
                    "site_id": site,
                    "timestamp": ASHRAE_HOURS.strftime("%Y-%m-%d %H:%M:%S"),
                    "air_temperature": rng.normal(10, 5, n).round(1),
                    "cloud_coverage": rng.choice([0.0, 2.0, 4.0, 6.0, np.nan], n),
                    "dew_temperature": rng.normal(3, 4, n).round(1),
                    "precip_depth_1_hr": rng.choice([-1.0, 0.0, 0.0, 3.0, np.nan], n),
                    "sea_level_pressure": rng.normal(1019, 5, n).round(1),
                    "wind_direction": rng.choice(np.arange(0.0, 360.0, 10.0), n),
                    "wind_speed": rng.uniform(0, 10, n).round(1),
                }
            )
        )
    frame = pd.concat(frames, ignore_index=True)
    frame.loc[5, "sea_level_pressure"] = np.nan
    expected = pd.concat(
        [
            pd.DataFrame(
                {
                    "site_id": frame["site_id"],
                    "variable": name,
                    "observed_at": utc(pd.to_datetime(frame["timestamp"]).dt.tz_localize("UTC")),
                    "value": frame[col],
                }
            )
            for col, name in ASHRAE_VARIABLES.items()
        ],
        ignore_index=True,
    )

    outcome = load("weather_train.csv", frame)

    assert (outcome.format, outcome.kind) == ("weather_ashrae", "weather")
    assert outcome.rows == expected["value"].notna().sum()
    assert_loaded(platform, "weather", expected, ["site_id", "variable"], "observed_at")


# --- customer load profile and generic long (generated) ---------------------------------------


@pytest.mark.parametrize("suffix", ["csv", "xlsx"])
def test_customer_profile(platform, load, suffix):
    times = pd.date_range("2024-02-05", periods=2 * 96, freq="15min")
    frame = customer_profile({"EML1922004": "CUST-0042", "EML1922117": "CUST-0077"}, times)
    frame.loc[300:303, "Voltage L3"] = np.nan  # a phase dropout on the second meter
    expected = melt(
        frame, "Serial", utc(frame["Timestamp"].dt.tz_localize("UTC")), PROFILE_CHANNELS
    )

    outcome = load(f"load_profile_feb.{suffix}", frame)

    assert (outcome.format, outcome.kind) == ("customer_profile", "readings")
    assert outcome.rows == 2 * 192 * 12 - 4
    assert_readings(platform, expected, {"EML1922004": 900, "EML1922117": 900})
    meters = platform.query("select meter_id, customer_id from raw.meters")
    assert dict(zip(meters.meter_id, meters.customer_id, strict=True)) == {
        "EML1922004": "CUST-0042",
        "EML1922117": "CUST-0077",
    }


def test_generic_long_channel_and_unit(platform, load):
    times = pd.date_range("2024-05-01", periods=96, freq="15min", tz="UTC")
    frame = generic_long({"G-01": times, "G-02": times}, [("Import", "kWh"), ("Reactive", "kVArh")])

    outcome = load("export.csv", frame)

    assert (outcome.format, outcome.rows) == ("generic_long", 2 * 96 * 2)
    assert_readings(platform, generic_expected(frame), {"G-01": 900, "G-02": 900})
    channels = platform.query("select distinct channel from raw.readings")["channel"]
    assert set(channels) == {"import_kwh", "reactive_kvarh"}
    bounds = platform.query(
        "select min(interval_start) as a, max(interval_start) as b from raw.readings"
    )
    assert utc(bounds.iloc[0]).tolist() == utc([times[0], times[-1]]).tolist()


def test_interval_length_detected_per_meter(platform, load):
    frame = generic_long(
        {
            "FAST": pd.date_range("2024-05-01", periods=24, freq="5min", tz="UTC"),
            "SLOW": pd.date_range("2024-05-01", periods=24, freq="60min", tz="UTC"),
        },
        [("import", "kWh")],
    )

    outcome = load("mixed_intervals.csv", frame)

    assert outcome.rows == 48
    assert_readings(platform, generic_expected(frame), {"FAST": 300, "SLOW": 3600})
    spans = platform.query("select meter_id, interval_seconds from raw.file_meters")
    assert dict(zip(spans.meter_id, spans.interval_seconds, strict=True)) == {
        "FAST": 300,
        "SLOW": 3600,
    }


# --- daylight saving time -----------------------------------------------------------------------


def test_customer_profile_in_london_time_across_dst(platform, monkeypatch):
    monkeypatch.setenv("ENERGY_TIMEZONE", "Europe/London")
    settings = Settings.from_env()
    files = {  # meter -> (first day, last day, the local day with a clock change)
        "DST-SPRING": ("2024-03-30", "2024-04-01", "2024-03-31"),
        "DST-FALL": ("2024-10-26", "2024-10-28", "2024-10-27"),
    }
    local = {}
    for meter, (first, last, _) in files.items():
        start = pd.Timestamp(first, tz="Europe/London")
        end = pd.Timestamp(last, tz="Europe/London") + pd.DateOffset(days=1)
        local[meter] = pd.date_range(start, end, freq="15min", inclusive="left")
        wall = local[meter].tz_localize(None)  # what the meter logs: repeated / skipped hours
        assert wall.has_duplicates == (meter == "DST-FALL")
        frame = customer_profile({meter: "CUST-" + meter}, wall, seed=len(local))
        frame.to_csv(
            settings.dropbox / f"{meter}.csv", index=False, date_format="%Y-%m-%d %H:%M:%S"
        )

    report = run_once(settings)

    assert report.ok, report.table()
    assert [f["status"] for f in report.files] == ["loaded", "loaded"], report.table()
    for meter, (_, _, day) in files.items():
        per_channel = platform.query(
            "select channel, count(*) as n, count(distinct interval_start) as d,"
            " min(interval_start) as a, max(interval_start) as b"
            " from raw.readings where meter_id = %s group by channel",
            (meter,),
        )
        assert len(per_channel) == 12
        assert (per_channel.n == len(local[meter])).all() and (per_channel.d == per_channel.n).all()
        assert set(utc(per_channel.a)) == {local[meter][0].tz_convert("UTC")}
        assert set(utc(per_channel.b)) == {local[meter][-1].tz_convert("UTC")}
        midnight = pd.Timestamp(day, tz="Europe/London")
        in_day = platform.scalar(
            "select count(distinct interval_start) from raw.readings where meter_id = %s"
            " and interval_start >= %s and interval_start < %s",
            (meter, midnight.to_pydatetime(), (midnight + pd.DateOffset(days=1)).to_pydatetime()),
        )
        assert in_day == (92 if meter == "DST-SPRING" else 100), meter
        clean = platform.query(
            "select count(*) as n, count(*) filter (where quality = 'gap') as gaps"
            " from marts.fct_intervals_clean where meter_id = %s",
            (meter,),
        )
        assert (clean.n[0], clean.gaps[0]) == (len(local[meter]), 0), meter
