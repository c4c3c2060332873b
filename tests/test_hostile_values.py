"""Values that fight back, through the real ingest: a reading a meter can produce loads (negative
ones too), a value no meter produces quarantines its file with a rule and the line to fix.

Data rows sit on file line i + 2 (header on line 1), which is what the expected `lines` count on.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pandas as pd
import pytest
from hostile_files import Case, count, csv, kw_sum, rows

from energy_assets.commands.run import run_once
from energy_assets.ingest.loader import Ingest
from energy_assets.ingest.parsing import BOUNDS, MAX_MULTIPLIER
from energy_assets.warehouse.database import apply_schema

KW_LIMIT = next(b.limit for b in BOUNDS if "kw" in b.words)
PROFILE = ["Serial", "Customer Ref", "Timestamp", "Avg Import kW", "Import kWh", "Power Factor"]


def quarantined(name: str, text: str, rule: str, lines: list[int]) -> Case:
    return Case(name, text.encode(), "quarantined", rule, lines=lines)


def loaded(name: str, text: str, n: int, **extra) -> Case:
    return Case(name, text.encode(), "loaded", rows=n, **extra)


def with_value(name: str, row: int, column: int, value: str) -> tuple[str, list[list[str]]]:
    data = rows(8, 10)
    data[row][column] = value
    return name, data


def profile_rows(n: int) -> list[list[str]]:
    first = datetime(2024, 1, 1)
    return [
        [
            "EML1",
            "CUST-1",
            f"{first + i * timedelta(minutes=15):%Y-%m-%d %H:%M}",
            "4.0",
            "1.0",
            "0.95",
        ]
        for i in range(n)
    ]


def metadata(multiplier: str = "1", timezone: str = "UTC") -> str:
    return f"ID,Name,Multiplier,Timezone\nOK1,North,1,UTC\nM9,North,{multiplier},{timezone}\n"


# --- refused: values no meter produces ---------------------------------------------------------


def overflowing_kw_del():  # 1e308 x a multiplier of 120 is infinity in the marts
    name, data = with_value("HUGE_2024-01.csv", 4, 1, "1e308")
    return quarantined(name, csv(data), "implausible_value", [6])


def just_above_the_kw_bound():
    name, data = with_value("ABOVE_2024-01.csv", 1, 3, f"{KW_LIMIT * 1.001:.0f}")
    return quarantined(name, csv(data), "implausible_value", [3])


def infinite_kva_rec():
    name, data = with_value("INF_2024-01.csv", 2, 4, "inf")
    return quarantined(name, csv(data), "non_finite", [4])


def infinity_spelled_out():
    name, data = with_value("INFINITY_2024-01.csv", 6, 1, "-Infinity")
    return quarantined(name, csv(data), "non_finite", [8])


def number_too_large_for_a_float():
    name, data = with_value("E999_2024-01.csv", 3, 2, "1e999")
    return quarantined(name, csv(data), "non_finite", [5])


def infinite_power_factor():
    data = profile_rows(8)
    data[5][5] = "Infinity"
    return quarantined("pf_inf.csv", csv(data, PROFILE), "non_finite", [7])


def power_factor_above_one():
    data = profile_rows(8)
    data[2][5] = "1.5"
    return quarantined("pf_high.csv", csv(data, PROFILE), "implausible_value", [4])


def multiplier_case(label: str, value: str):
    return quarantined(f"meters-{label}.csv", metadata(multiplier=value), "bad_multiplier", [3])


def unknown_timezone():
    text = metadata(timezone="Mars/Olympus")
    return quarantined("meters-tz.csv", text, "bad_timezone", [3])


# --- loaded: what a meter can produce ----------------------------------------------------------


def negative_kw_del():  # a reversed CT: data to flag, not a file to refuse
    name, data = with_value("NEGKW_2024-01.csv", 6, 1, "-3.50")
    return loaded(name, csv(data), count(data), meter="NEGKW", kw_del=kw_sum(data))


def negative_kva_del():
    name, data = with_value("NEGKVA_2024-01.csv", 2, 3, "-1.25")
    return loaded(name, csv(data), count(data), meter="NEGKVA")


def at_the_kw_bound():
    name, data = with_value("BOUND_2024-01.csv", 0, 1, f"{-KW_LIMIT:.0f}")
    return loaded(name, csv(data), count(data), meter="BOUND", kw_del=kw_sum(data))


def multiplier_at_the_bound():
    return loaded("meters-max.csv", metadata(multiplier=f"{MAX_MULTIPLIER:.0f}"), 0)


CASES = {
    "overflowing_kw_del": overflowing_kw_del,
    "just_above_the_kw_bound": just_above_the_kw_bound,
    "infinite_kva_rec": infinite_kva_rec,
    "infinity_spelled_out": infinity_spelled_out,
    "number_too_large_for_a_float": number_too_large_for_a_float,
    "infinite_power_factor": infinite_power_factor,
    "power_factor_above_one": power_factor_above_one,
    "multiplier_minus_one": lambda: multiplier_case("minus-one", "-1"),
    "multiplier_zero": lambda: multiplier_case("zero", "0"),
    "multiplier_1e9": lambda: multiplier_case("1e9", "1e9"),
    "multiplier_inf": lambda: multiplier_case("inf", "inf"),
    "unknown_timezone": unknown_timezone,
    "negative_kw_del": negative_kw_del,
    "negative_kva_del": negative_kva_del,
    "at_the_kw_bound": at_the_kw_bound,
    "multiplier_at_the_bound": multiplier_at_the_bound,
}


def ingest(platform, files: dict[str, bytes]):
    apply_schema(platform.warehouse_url)
    paths = []
    for name, data in files.items():
        path = platform.settings.dropbox / name
        path.write_bytes(data)
        paths.append(path)
    with Ingest(platform.settings, platform.warehouse_url) as session:
        outcomes = [session.ingest_file(path) for path in paths]
    return {outcome.name: outcome for outcome in outcomes}


def verdict(platform, case: Case, outcome) -> dict:
    """What happened to the file, in the terms of `Case`."""
    mine = platform.query(
        "select meter_id, channel, value from raw.readings where file_id = %s",
        (outcome.file_id,),
    )
    got = {"status": outcome.status, "rows": len(mine)}
    if case.status == "quarantined":
        stored = outcome.stored_as
        reason_file = stored.with_name(stored.name + ".reason.json")
        reason = json.loads(reason_file.read_text()) if reason_file.exists() else {}
        rule = platform.scalar("select rule from raw.files where file_id = %s", (outcome.file_id,))
        got |= {"rule": reason.get("rule"), "lines": reason.get("lines"), "raw.files rule": rule}
    if case.meter is not None:
        got["meters"] = sorted(mine["meter_id"].unique())
    if case.kw_del is not None:
        got["kw_del"] = float(mine.loc[mine["channel"] == "kw_del", "value"].sum())
    return got


def expected(case: Case) -> dict:
    want = {"status": case.status, "rows": case.rows or 0}
    if case.status == "quarantined":
        want |= {"rule": case.rule, "lines": case.lines, "raw.files rule": case.rule}
    if case.meter is not None:
        want["meters"] = [case.meter]
    if case.kw_del is not None:
        want["kw_del"] = pytest.approx(case.kw_del)
    return want


def test_each_value_gets_its_verdict(platform):
    cases = {label: make() for label, make in CASES.items()}
    outcomes = ingest(platform, {case.name: case.data for case in cases.values()})

    problems = {
        label: (want, got)
        for label, case in cases.items()
        if (got := verdict(platform, case, outcomes[case.name])) != (want := expected(case))
    }
    assert problems == {}, "files that got the wrong verdict: (expected, got)"
    assert (
        platform.scalar("select multiplier from raw.meters where meter_id = 'M9'") == MAX_MULTIPLIER
    )


def lcl_block(households: dict[str, list[str]]) -> str:
    """`LCLid,tstp,energy(kWh/hh)`: every household's half hours of 2013-06-01, in turn."""
    start = datetime(2013, 6, 1)
    lines = ["LCLid,tstp,energy(kWh/hh)"]
    for household, values in households.items():
        for i, value in enumerate(values):
            when = start + i * timedelta(minutes=30)
            lines.append(f"{household},{when:%Y-%m-%d %H:%M:%S.0000000}, {value} ")
    return "\n".join(lines) + "\n"


def test_one_households_negative_readings_load_beside_the_others(platform):
    healthy = [f"{0.1 + 0.01 * i:.3f}" for i in range(48)]
    reversed_ct = [f"{-(0.2 + 0.01 * i):.3f}" if 16 <= i < 40 else v for i, v in enumerate(healthy)]
    reversed_ct[5] = "Null"  # a gap, which stays a gap
    households = {
        "MAC000001": healthy,
        "MAC000002": reversed_ct,
        "MAC000003": healthy[:30],
        "MAC000004": healthy,
    }

    outcome = ingest(platform, {"block_2013-06.csv": lcl_block(households).encode()})

    assert (outcome["block_2013-06.csv"].status, outcome["block_2013-06.csv"].format) == (
        "loaded",
        "lcl_halfhourly",
    )
    stored = platform.query(
        "select meter_id, interval_start, value from raw.readings order by 1, 2"
    )
    start = pd.Timestamp("2013-06-01", tz="UTC")
    want = pd.DataFrame(
        [
            (household, start + i * pd.Timedelta(minutes=30), float(value))
            for household, values in households.items()
            for i, value in enumerate(values)
            if value != "Null"
        ],
        columns=["meter_id", "interval_start", "value"],
    )
    assert stored.groupby("meter_id").size().to_dict() == {
        "MAC000001": 48,
        "MAC000002": 47,
        "MAC000003": 30,
        "MAC000004": 48,
    }
    pd.testing.assert_frame_equal(stored, want, check_dtype=False)
    negative = stored[stored["value"] < 0]
    assert (negative["meter_id"].unique().tolist(), len(negative)) == (["MAC000002"], 24)


def test_values_at_the_bounds_build_the_month(platform):
    """The largest reading times the largest multiplier passes through the marts: no float8
    overflow anywhere in a rebuild; one beyond the bound never gets that far."""
    dropbox = platform.settings.dropbox
    data = rows(8, 10, start="2024-03-01 00:00")
    data[3][1] = f"{KW_LIMIT:.0f}"
    (dropbox / "BIG_2024-03.csv").write_text(csv(data))
    (dropbox / "meter-data.csv").write_text(f"ID,Name,Multiplier\nBIG,North,{MAX_MULTIPLIER:.0f}\n")
    beyond = [row[:] for row in data]
    beyond[3][1] = "1e308"
    (dropbox / "WORSE_2024-03.csv").write_text(csv(beyond))

    report = run_once(platform.settings)

    assert report.ok, report.table()
    statuses = {row["file"]: row["status"] for row in report.files}
    assert statuses == {
        "BIG_2024-03.csv": "loaded",
        "meter-data.csv": "loaded",
        "WORSE_2024-03.csv": "quarantined",
    }
    peak = platform.scalar(
        "select max(kw_del) from marts.fct_intervals_clean where meter_id = 'BIG'"
    )
    assert peak == KW_LIMIT * MAX_MULTIPLIER
    assert platform.scalar("select max(mw_del) from marts.fct_feeder_intervals") == (
        KW_LIMIT * MAX_MULTIPLIER / 1000
    )
