"""Pure unit tests for format detection and file parsing: no database, no Dagster."""

from dataclasses import dataclass, field

import pandas as pd
import pytest

from energy_assets.ingest.formats import (
    Format,
    detect_format,
    load_formats,
    normalize_header,
    require_format,
)
from energy_assets.ingest.parsing import (
    ANY_VALUE,
    MAX_MULTIPLIER,
    ReadingsParser,
    bound_of,
    meter_from_filename,
    parse_meters,
    parse_weather,
)
from energy_assets.ingest.readers import open_table
from energy_assets.ingest.rejections import Rejected
from energy_assets.settings import Settings


@dataclass
class Parsed:
    format: Format
    readings: pd.DataFrame = field(default_factory=pd.DataFrame)
    meters: pd.DataFrame = field(default_factory=pd.DataFrame)


def parse_file(path, formats, timezone_for) -> Parsed:
    """A whole file through the readers and parsers the ingest uses, without a database."""
    table = open_table(path)
    match = require_format(table.header, formats, path.name)
    chunks = list(table.chunks())
    if not chunks:
        raise Rejected("header_only", f"{path.name} has a header but no data rows")
    if match.format.kind == "meters":
        return Parsed(match.format, meters=parse_meters(pd.concat(chunks), match, table.line_of))
    parser = ReadingsParser(match, path.name, timezone_for, EARLIEST)
    parts = [parser.feed(chunk, table.line_of) for chunk in chunks]
    readings = pd.concat(parts, ignore_index=True).sort_values(
        ["meter_id", "interval_start", "channel"], ignore_index=True
    )
    return Parsed(match.format, readings=readings)


FORMATS = load_formats()
EARLIEST = pd.Timestamp(Settings().first_month, tz="UTC")
FEEDER = "Start Time,kW del,kW rec,kVA del,kVA rec\n"
TWO = "Start Time,kW del,kW rec\n"


def utc(text):
    return pd.Timestamp(text, tz="UTC")


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def parse(path, tz="UTC", formats=FORMATS):
    return parse_file(path, formats, timezone_for=lambda meter: tz)


def readings(tmp_path, text, name="M1001_2024-01.csv", tz="UTC"):
    return parse(write(tmp_path, name, text), tz).readings


def rejected(tmp_path, text, name="M1001_2024-01.csv"):
    with pytest.raises(Rejected) as info:
        parse(write(tmp_path, name, text))
    return info.value


def starts(frame):
    return frame["interval_start"].drop_duplicates().tolist()


# --- header normalisation and format detection -------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("kW del", "kwdel"),
        (" KW_Del ", "kwdel"),
        ("KW__DEL", "kwdel"),
        ("Start  Time", "starttime"),
        ("\ufeffStart_Time", "starttime"),
        ("Multiplier", "multiplier"),
    ],
)
def test_normalize_header(raw, expected):
    assert normalize_header(raw) == expected


def test_shipped_formats():
    assert {"feeder_meter", "meter_metadata"} <= {fmt.name for fmt in FORMATS}


@pytest.mark.parametrize(
    "header",
    [
        ["Start Time", "kW del", "kW rec", "kVA del", "kVA rec"],
        ["START_TIME", " KW_DEL", " kw rec"],
        ["\ufeffstart time", "KW DELIVERED"],
    ],
)
def test_detect_feeder_meter(header):
    match = detect_format(header, FORMATS)
    assert match is not None
    assert match.format.name == "feeder_meter"
    assert match.columns["timestamp"] == header[0]
    assert match.columns["kw_del"] == header[1]


def test_detect_feeder_meter_maps_every_seed_column():
    header = ["Start Time", "kW del", "kW rec", "kVA del", "kVA rec"]
    match = detect_format(header, FORMATS)
    assert match.columns == {
        "timestamp": "Start Time",
        "kw_del": "kW del",
        "kw_rec": "kW rec",
        "kva_del": "kVA del",
        "kva_rec": "kVA rec",
    }


def test_detect_meter_metadata():
    match = detect_format(["ID", "Name", "Multiplier"], FORMATS)
    assert match.format.name == "meter_metadata"
    assert match.columns == {"meter_id": "ID", "feeder": "Name", "multiplier": "Multiplier"}


@pytest.mark.parametrize(
    "header",
    [["Zeit", "Wirkleistung Bezug"], ["Start Time", "Voltage"], ["kW del", "kW rec"], []],
)
def test_detect_unknown_header(header):
    assert detect_format(header, FORMATS) is None


GERMAN = """\
name: german_meter
kind: readings
timestamp: [zeit]
channels:
  kw_del: [wirkleistung bezug]
  kw_rec: [wirkleistung lieferung]
required: [kw_del]
default_interval_minutes: 15
"""


def test_user_format_makes_new_header_loadable(tmp_path):
    user_dir = tmp_path / "formats"
    user_dir.mkdir()
    (user_dir / "german.yaml").write_text(GERMAN, encoding="utf-8")
    formats = load_formats(user_dir)
    assert {"feeder_meter", "meter_metadata", "german_meter"} <= {fmt.name for fmt in formats}

    path = write(
        tmp_path,
        "M7_2024-01.csv",
        "Zeit,Wirkleistung Bezug\n2024-01-15 00:00,1.5\n2024-01-15 00:15,2.5\n",
    )
    with pytest.raises(Rejected) as info:
        parse(path)
    assert info.value.rule == "unknown_header"

    parsed = parse(path, formats=formats)
    assert parsed.format.name == "german_meter"
    assert parsed.readings["meter_id"].tolist() == ["M7", "M7"]
    assert parsed.readings["channel"].tolist() == ["kw_del", "kw_del"]
    assert parsed.readings["value"].tolist() == [1.5, 2.5]


def test_user_format_with_same_name_replaces_shipped(tmp_path):
    (tmp_path / "feeder.yml").write_text(
        GERMAN.replace("german_meter", "feeder_meter"), encoding="utf-8"
    )
    formats = load_formats(tmp_path)
    assert len(formats) == len(FORMATS)
    feeder = next(fmt for fmt in formats if fmt.name == "feeder_meter")
    assert feeder.source == tmp_path / "feeder.yml"
    assert detect_format(["Zeit", "Wirkleistung Bezug"], formats).format is feeder
    assert detect_format(["Start Time", "kW del"], formats) is None


def test_missing_user_dir_is_ignored(tmp_path):
    assert load_formats(tmp_path / "absent") == FORMATS


def test_meter_from_filename():
    assert meter_from_filename("M1001_2024-01.csv") == "M1001"
    assert meter_from_filename("M1001.csv") == "M1001"


# --- parsing readings --------------------------------------------------------------------------


def test_long_frame_has_one_row_per_meter_interval_channel(tmp_path):
    frame = readings(
        tmp_path,
        FEEDER + "2024-01-15 00:00,1,2,3,4\n2024-01-15 00:15,5,6,7,8\n2024-01-15 00:30,9,,11,12\n",
    )
    assert sorted(frame.columns) == sorted(
        ["meter_id", "interval_start", "interval_seconds", "channel", "value"]
    )
    assert len(frame) == 3 * 4 - 1
    assert set(frame["meter_id"]) == {"M1001"}
    assert set(frame["interval_seconds"]) == {900}
    assert starts(frame) == [
        utc("2024-01-15 00:00"),
        utc("2024-01-15 00:15"),
        utc("2024-01-15 00:30"),
    ]
    first = frame[frame["interval_start"] == utc("2024-01-15 00:00")]
    assert dict(zip(first["channel"], first["value"], strict=True)) == {
        "kva_del": 3,
        "kva_rec": 4,
        "kw_del": 1,
        "kw_rec": 2,
    }


def test_thirty_minute_interval_detected(tmp_path):
    frame = readings(
        tmp_path, TWO + "2024-01-15 00:00,1,2\n2024-01-15 00:30,3,4\n2024-01-15 01:00,5,6\n"
    )
    assert len(frame) == 6
    assert set(frame["interval_seconds"]) == {1800}


def test_fifteen_minute_interval_detected_across_a_gap(tmp_path):
    frame = readings(
        tmp_path,
        TWO + "2024-01-15 00:00,1,2\n2024-01-15 00:15,3,4\n"
        "2024-01-15 01:00,5,6\n2024-01-15 01:15,7,8\n",
    )
    assert set(frame["interval_seconds"]) == {900}


def test_single_row_uses_default_interval(tmp_path):
    frame = readings(tmp_path, TWO + "2024-01-15 00:00,1,2\n")
    assert frame["interval_seconds"].tolist() == [900, 900]


def test_blank_nan_and_null_are_gaps_not_zeros(tmp_path):
    frame = readings(
        tmp_path,
        TWO + "2024-01-15 00:00,,1\n2024-01-15 00:15,NaN,2\n2024-01-15 00:30,Null,null\n"
        "2024-01-15 00:45,0,n/a\n",
    )
    assert list(zip(frame["interval_start"], frame["channel"], frame["value"], strict=True)) == [
        (utc("2024-01-15 00:00"), "kw_rec", 1),
        (utc("2024-01-15 00:15"), "kw_rec", 2),
        (utc("2024-01-15 00:45"), "kw_del", 0),
    ]


def test_identical_duplicate_rows_kept_once(tmp_path):
    frame = readings(
        tmp_path,
        TWO + "2024-01-15 00:00,1,2\n2024-01-15 00:15,3,4\n"
        "2024-01-15 00:15,3,4\n2024-01-15 00:30,5,\n"
        "2024-01-15 00:30,5,\n",
    )
    assert len(frame) == 5
    assert starts(frame) == [
        utc("2024-01-15 00:00"),
        utc("2024-01-15 00:15"),
        utc("2024-01-15 00:30"),
    ]
    assert set(frame["interval_seconds"]) == {900}


def test_conflicting_duplicate_rejected_with_both_lines(tmp_path):
    error = rejected(
        tmp_path,
        TWO + "2024-01-15 00:00,1,2\n2024-01-15 00:15,3,4\n"
        "2024-01-15 00:30,5,6\n2024-01-15 00:15,3,9\n",
    )
    assert error.rule == "conflicting_duplicate"
    assert error.lines == [3, 5]


def test_duplicate_with_value_and_gap_conflicts(tmp_path):
    error = rejected(tmp_path, TWO + "2024-01-15 00:00,1,2\n2024-01-15 00:00,1,\n")
    assert error.rule == "conflicting_duplicate"
    assert error.lines == [2, 3]


def test_off_grid_timestamp_rejected(tmp_path):
    error = rejected(
        tmp_path,
        TWO + "2024-01-15 00:00,1,2\n2024-01-15 00:15,1,2\n"
        "2024-01-15 00:30,1,2\n2024-01-15 00:37,1,2\n"
        "2024-01-15 00:45,1,2\n2024-01-15 01:00,1,2\n",
    )
    assert error.rule == "off_interval_grid"
    assert error.lines == [5]


def test_off_grid_timestamp_in_short_file_reports_offending_line(tmp_path):
    error = rejected(
        tmp_path,
        TWO + "2024-01-15 00:00,1,2\n2024-01-15 00:15,1,2\n"
        "2024-01-15 00:37,1,2\n2024-01-15 00:45,1,2\n",
    )
    assert error.rule == "off_interval_grid"
    assert error.lines == [4]


@pytest.mark.parametrize(
    "text, rule, lines",
    [
        (TWO + "2024-01-15 00:00,1,2\nyesterday,3,4\n", "bad_timestamp", [3]),
        (TWO + "2024-01-15 00:00,1,2\n,3,4\n", "bad_timestamp", [3]),
        (
            TWO + "2024-01-15 00:00,1,2\n2024-01-15 00:15,3,4\n2024-01-15 00:30,3,4 kW\n",
            "non_numeric",
            [4],
        ),
        (TWO + "2024-01-15 00:00,one,2\n", "non_numeric", [2]),
        (TWO, "header_only", []),
        ("", "empty_file", []),
        ("Zeit,Wirkleistung Bezug\n2024-01-15 00:00,1\n", "unknown_header", [1]),
        (
            "Meter,Start Time,kW del\nA,2024-01-15 00:00,1\n ,2024-01-15 00:15,2\n",
            "missing_meter_id",
            [3],
        ),
    ],
    ids=[
        "bad_timestamp",
        "blank_timestamp",
        "non_numeric",
        "non_numeric_first",
        "header_only",
        "empty_file",
        "unknown_header",
        "missing_meter_id",
    ],
)
def test_rejections(tmp_path, text, rule, lines):
    error = rejected(tmp_path, text)
    assert error.rule == rule
    assert error.lines == lines


# --- values: what a meter can produce loads, what none produces is refused ---------------------

LCL = "LCLid,tstp,energy(kWh/hh)\n"
PROFILE = "Serial,Timestamp,Avg Import kW,Import kWh,Power Factor,Voltage L1,Current L1\n"
ASHRAE = "building_id,meter,timestamp,meter_reading\n"
LONG = "meter,timestamp,channel,value,unit\n"


QUANTITY_OF = {
    **dict.fromkeys(
        ["kw_del", "kva_rec", "kwh_import", "kw_l2", "steam_kwh", "reactive_kvarh", "phase_a_kw"],
        "kW, kWh, kVA, kVAh, kvar, kvarh",
    ),
    "power_factor": "power factor",
    "pf": "power factor",
    "voltage_l1": "volts",
    "current_l3": "amperes",
    "import_wh": ANY_VALUE.quantity,
    "temperature": ANY_VALUE.quantity,
}


@pytest.mark.parametrize("channel", list(QUANTITY_OF))
def test_each_channel_has_the_bound_of_its_quantity(channel):
    assert bound_of(channel).quantity == QUANTITY_OF[channel]


@pytest.mark.parametrize(
    "name, text, channel, value",
    [
        ("M1_a.csv", FEEDER + "2024-01-15 00:00,-3.5,0,1,0\n", "kw_del", -3.5),
        ("M1_b.csv", FEEDER + "2024-01-15 00:00,3.5,0,-1.25,0\n", "kva_del", -1.25),
        ("lcl.csv", LCL + "MAC1,2013-01-01 00:00:00.0000000, -0.125 \n", "kwh_import", -0.125),
        ("p.csv", PROFILE + "S1,2024-01-15 00:00,-4,-1,-0.9,230,10\n", "kw_import", -4),
        ("p.csv", PROFILE + "S1,2024-01-15 00:00,-4,-1,-0.9,230,10\n", "kwh_import", -1),
        ("p.csv", PROFILE + "S1,2024-01-15 00:00,-4,-1,-0.9,230,10\n", "power_factor", -0.9),
        ("ashrae.csv", ASHRAE + "7,0,2016-01-01 00:00:00,-12.5\n", "electricity_kwh", -12.5),
    ],
    ids=["kw_del", "kva_del", "lcl_kwh", "profile_kw", "profile_kwh", "profile_pf", "ashrae"],
)
def test_negative_readings_load_as_they_are(tmp_path, name, text, channel, value):
    frame = readings(tmp_path, text, name=name)
    assert frame.loc[frame["channel"] == channel, "value"].tolist() == [value]


@pytest.mark.parametrize(
    "name, header, row, channel",
    [
        ("M1_x.csv", FEEDER, "2024-01-15 00:15,{},0,1,0", "kw_del"),
        ("p.csv", PROFILE, "S1,2024-01-15 00:15,1,1,{},230,10", "power_factor"),
        ("p.csv", PROFILE, "S1,2024-01-15 00:15,1,1,0.9,{},10", "voltage_l1"),
        ("p.csv", PROFILE, "S1,2024-01-15 00:15,1,1,0.9,230,{}", "current_l1"),
        ("long.csv", LONG, "G1,2024-01-15T00:15:00Z,import,{},Wh", "import_wh"),
    ],
    ids=["kw", "power_factor", "volts", "amperes", "any_other"],
)
def test_values_up_to_their_bound_load_and_beyond_it_refuse(tmp_path, name, header, row, channel):
    limit = bound_of(channel).limit
    first = row.replace("00:15", "00:00").format("0") + "\n"
    for value in (limit, -limit):
        frame = readings(tmp_path, header + first + row.format(f"{value:.6g}") + "\n", name=name)
        assert frame.loc[frame["channel"] == channel, "value"].tolist() == [0, value]
    beyond = limit * 1.0001
    error = rejected(tmp_path, header + first + row.format(f"{beyond:.8g}") + "\n", name=name)
    assert (error.rule, error.lines, error.sample) == ("implausible_value", [3], f"{beyond:g}")
    assert error.message.startswith(f"line 3: {channel} {beyond:g} is beyond +-{limit:g}")


@pytest.mark.parametrize(
    "text", ["inf", "-inf", "Infinity", "-INFINITY", "+inf", "1e999", "-1e400"]
)
def test_infinite_readings_refuse_the_file(tmp_path, text):
    error = rejected(tmp_path, TWO + f"2024-01-15 00:00,1,2\n2024-01-15 00:15,3,{text}\n")
    assert (error.rule, error.lines) == ("non_finite", [3])
    assert error.message.startswith("line 3: kw_rec is ")


def test_a_huge_reading_refuses_the_file(tmp_path):
    error = rejected(tmp_path, TWO + "2024-01-15 00:00,1e308,2\n")
    assert (error.rule, error.lines, error.sample) == ("implausible_value", [2], "1e+308")


def test_weather_values_are_finite_and_bounded():
    table = pd.DataFrame(
        {
            "site_id": ["0", "0"],
            "timestamp": ["2016-01-01 00:00", "2016-01-01 01:00"],
            "air_temperature": ["5.5", "inf"],
            "wind_speed": ["3", "1e11"],
        }
    )
    match = detect_format(list(table.columns), FORMATS)
    assert match.format.name == "weather_ashrae"
    for temperature, rule in (("inf", "non_finite"), ("-4", "implausible_value")):
        table.loc[1, "air_temperature"] = temperature
        with pytest.raises(Rejected) as info:
            parse_weather(table, match, lambda record: record + 2, "UTC")
        assert (info.value.rule, info.value.lines) == (rule, [3])


def test_out_of_order_rows_accepted_and_sorted(tmp_path):
    frame = readings(
        tmp_path, TWO + "2024-01-15 00:30,5,6\n2024-01-15 00:00,1,2\n2024-01-15 00:15,3,4\n"
    )
    assert starts(frame) == [
        utc("2024-01-15 00:00"),
        utc("2024-01-15 00:15"),
        utc("2024-01-15 00:30"),
    ]
    assert frame.loc[frame["channel"] == "kw_del", "value"].tolist() == [1, 3, 5]
    assert set(frame["interval_seconds"]) == {900}


def test_meter_column_names_meters_each_on_its_own_grid(tmp_path):
    frame = readings(
        tmp_path,
        "Meter,Start Time,kW del\n"
        "A,2024-01-15 00:00,1\nB,2024-01-15 00:10,7\nA,2024-01-15 00:15,2\n"
        "B,2024-01-15 00:40,8\nA,2024-01-15 00:30,3\nB,2024-01-15 01:10,9\n"
        "B,2024-01-15 00:10,7\n",
        name="feeder-export.csv",
    )
    a = frame[frame["meter_id"] == "A"]
    b = frame[frame["meter_id"] == "B"]
    assert len(frame) == 6
    assert starts(a) == [utc("2024-01-15 00:00"), utc("2024-01-15 00:15"), utc("2024-01-15 00:30")]
    assert starts(b) == [utc("2024-01-15 00:10"), utc("2024-01-15 00:40"), utc("2024-01-15 01:10")]
    assert set(a["interval_seconds"]) == {900}
    assert set(b["interval_seconds"]) == {1800}
    assert b["value"].tolist() == [7, 8, 9]


def test_same_timestamp_for_two_meters_is_not_a_duplicate(tmp_path):
    frame = readings(
        tmp_path,
        "Meter,Start Time,kW del\nA,2024-01-15 00:00,1\nB,2024-01-15 00:00,2\n",
        name="x.csv",
    )
    assert frame["meter_id"].tolist() == ["A", "B"]
    assert frame["value"].tolist() == [1, 2]


def test_naive_timestamps_read_in_meter_timezone(tmp_path):
    winter = readings(
        tmp_path, TWO + "2024-01-15 00:00,1,2\n2024-01-15 00:15,3,4\n", tz="America/New_York"
    )
    assert starts(winter) == [utc("2024-01-15 05:00"), utc("2024-01-15 05:15")]
    summer = readings(tmp_path, TWO + "2024-07-15 00:00,1,2\n", tz="America/New_York")
    assert starts(summer) == [utc("2024-07-15 04:00")]


def test_timezone_looked_up_per_meter(tmp_path):
    zones = {"A": "America/New_York", "B": "Europe/Berlin"}
    path = write(
        tmp_path, "x.csv", "Meter,Start Time,kW del\nA,2024-01-15 00:00,1\nB,2024-01-15 00:00,2\n"
    )
    frame = parse_file(path, FORMATS, timezone_for=zones.__getitem__).readings
    assert list(zip(frame["meter_id"], frame["interval_start"], strict=True)) == [
        ("A", utc("2024-01-15 05:00")),
        ("B", utc("2024-01-14 23:00")),
    ]


def test_repeated_local_hour_at_dst_end_is_inferred(tmp_path):
    frame = readings(
        tmp_path,
        TWO + "2024-11-03 00:30,1,2\n2024-11-03 01:00,1,2\n"
        "2024-11-03 01:30,1,2\n2024-11-03 01:00,1,2\n"
        "2024-11-03 01:30,1,2\n2024-11-03 02:00,1,2\n",
        tz="America/New_York",
    )
    assert starts(frame) == [
        utc("2024-11-03 04:30"),
        utc("2024-11-03 05:00"),
        utc("2024-11-03 05:30"),
        utc("2024-11-03 06:00"),
        utc("2024-11-03 06:30"),
        utc("2024-11-03 07:00"),
    ]
    assert set(frame["interval_seconds"]) == {1800}


def test_nonexistent_local_time_rejected(tmp_path):
    path = write(tmp_path, "M1_x.csv", TWO + "2024-03-10 01:45,1,2\n2024-03-10 02:00,1,2\n")
    with pytest.raises(Rejected) as info:
        parse(path, tz="America/New_York")
    assert info.value.rule == "bad_local_time"


def test_explicit_offsets_converted_to_utc(tmp_path):
    frame = readings(
        tmp_path,
        TWO + "2024-01-15T00:00:00+02:00,1,2\n2024-01-15T00:15:00+02:00,3,4\n",
        tz="America/New_York",
    )
    assert starts(frame) == [utc("2024-01-14 22:00"), utc("2024-01-14 22:15")]
    assert set(frame["interval_seconds"]) == {900}


def test_explicit_offsets_across_dst_change_converted_to_utc(tmp_path):
    frame = readings(
        tmp_path,
        TWO + "2024-03-31T01:30:00+01:00,1,2\n"
        "2024-03-31T01:45:00+01:00,3,4\n"
        "2024-03-31T03:00:00+02:00,5,6\n",
    )
    assert starts(frame) == [
        utc("2024-03-31 00:30"),
        utc("2024-03-31 00:45"),
        utc("2024-03-31 01:00"),
    ]


def test_offsets_mixed_with_local_times_rejected(tmp_path):
    error = rejected(tmp_path, TWO + "2024-01-15T00:00:00+02:00,1,2\n2024-01-15 00:15,3,4\n")
    assert error.rule == "mixed_timezones"


def test_bom_and_vendor_spelling_in_file(tmp_path):
    path = tmp_path / "M5_2024-01.csv"
    path.write_text("START_TIME, KW_DEL, kw rec\n2024-01-15 00:00, 1.5, 2\n", encoding="utf-8-sig")
    frame = parse(path).readings
    assert frame["channel"].tolist() == ["kw_del", "kw_rec"]
    assert frame["value"].tolist() == [1.5, 2.0]
    assert frame["meter_id"].tolist() == ["M5", "M5"]


# --- parsing meter metadata --------------------------------------------------------------------


def test_meter_metadata(tmp_path):
    parsed = parse(
        write(
            tmp_path,
            "meter-data.csv",
            "ID,Name,Multiplier\nM1001,Feeder 1,2\nM1002,Feeder 1,0.5\nM1003,Feeder 2,\n",
        )
    )
    assert parsed.format.name == "meter_metadata"
    assert parsed.readings.empty
    meters = parsed.meters
    assert list(meters.columns) == ["meter_id", "feeder", "multiplier"]
    assert meters["meter_id"].tolist() == ["M1001", "M1002", "M1003"]
    assert meters["feeder"].tolist() == ["Feeder 1", "Feeder 1", "Feeder 2"]
    assert meters["multiplier"].dtype == float
    assert meters["multiplier"].tolist() == [2.0, 0.5, 1.0]


def test_meter_metadata_non_numeric_multiplier(tmp_path):
    error = rejected(
        tmp_path, "ID,Name,Multiplier\nM1001,Feeder 1,2\nM1002,Feeder 1,x2\n", name="meter-data.csv"
    )
    assert error.rule == "non_numeric"
    assert error.lines == [3]
    assert error.sample == "x2"


@pytest.mark.parametrize(
    "multiplier", ["-1", "0", "-0", "1e9", "inf", "-inf", "Infinity", "1000001"]
)
def test_meter_metadata_multiplier_out_of_range(tmp_path, multiplier):
    text = f"ID,Name,Multiplier\nM1001,Feeder 1,2\nM1002,Feeder 1,{multiplier}\n"
    error = rejected(tmp_path, text, name="meter-data.csv")
    assert (error.rule, error.lines, error.sample) == ("bad_multiplier", [3], multiplier)
    assert error.message.startswith(f"line 3: meter M1002: multiplier {multiplier!r}")


def test_meter_metadata_multiplier_up_to_its_bound(tmp_path):
    text = f"ID,Name,Multiplier\nM1,F1,{MAX_MULTIPLIER:.0f}\nM2,F1,0.001\nM3,F1,\n"
    meters = parse(write(tmp_path, "meter-data.csv", text)).meters
    assert meters["multiplier"].tolist() == [MAX_MULTIPLIER, 0.001, 1.0]


@pytest.mark.parametrize("zone", ["Mars/Olympus", "europe/london", "localtime", "+01:00"])
def test_meter_metadata_timezone_must_be_a_zone(tmp_path, zone):
    text = f"ID,Name,Timezone\nM1,F1,Europe/London\nM2,F1,\nM3,F1,{zone}\n"
    error = rejected(tmp_path, text, name="meter-data.csv")
    assert (error.rule, error.lines, error.sample) == ("bad_timezone", [4], zone)
    meters = parse(write(tmp_path, "meter-data.csv", text.replace(zone, "UTC"))).meters
    assert meters["timezone"].fillna("-").tolist() == ["Europe/London", "-", "UTC"]


def test_meter_metadata_duplicate_meter(tmp_path):
    error = rejected(tmp_path, "ID,Name\nM1,F1\nM2,F1\nM1,F2\n", name="meter-data.csv")
    assert error.rule == "duplicate_meter"
    assert error.lines == [2, 4]


def feed_in_chunks(tmp_path, text, chunk_rows, tz="UTC", name="M1_x.csv"):
    """Feed a file to one ReadingsParser `chunk_rows` records at a time, as ingest does."""
    path = write(tmp_path, name, text)
    table = open_table(path, chunk_rows=chunk_rows)
    match = require_format(table.header, FORMATS, name)
    parser = ReadingsParser(match, name, lambda m: tz, EARLIEST)
    frames = [parser.feed(chunk, table.line_of) for chunk in table.chunks()]
    return parser, pd.concat(frames, ignore_index=True)


def test_state_carries_across_chunks(tmp_path):
    rows = "".join(f"2024-01-15 {h:02d}:{m:02d},{h}\n" for h in range(3) for m in (0, 30))
    parser, frame = feed_in_chunks(tmp_path, "Start Time,kW del\n" + rows, chunk_rows=1)
    # The step is learnt from the second chunk, not guessed from the first, lone row.
    assert parser.summary().loc["M1", "interval_seconds"] == 1800
    assert len(frame) == 6 and not parser.needs_duplicate_check

    with pytest.raises(Rejected) as info:  # a clash split over two chunks
        feed_in_chunks(
            tmp_path,
            "Start Time,kW del\n2024-01-15 00:00,1\n2024-01-15 00:15,2\n2024-01-15 00:15,3\n",
            chunk_rows=2,
        )
    assert info.value.rule == "conflicting_duplicate" and info.value.lines == [3, 4]

    parser, _ = feed_in_chunks(
        tmp_path, "Start Time,kW del\n2024-01-15 01:00,1\n2024-01-15 00:00,2\n", chunk_rows=1
    )
    assert parser.needs_duplicate_check  # back in time across chunks: checked in the database


def test_repeated_dst_hour_split_across_chunks(tmp_path):
    local = [
        "2024-10-27 00:30",
        "2024-10-27 01:00",
        "2024-10-27 01:30",
        "2024-10-27 01:00",
        "2024-10-27 01:30",
        "2024-10-27 02:00",
    ]
    text = "Start Time,kW del\n" + "".join(f"{t},{i}\n" for i, t in enumerate(local))
    _, frame = feed_in_chunks(tmp_path, text, chunk_rows=2, tz="Europe/London")
    utc = frame.sort_values("value")["interval_start"].dt.strftime("%H:%M").tolist()
    assert utc == ["23:30", "00:00", "00:30", "01:00", "01:30", "02:00"]
