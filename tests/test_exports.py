"""CSV exports of the marts (seed toolkit layouts), streamed by COPY, checked against the marts."""

from __future__ import annotations

import csv
import io
import re
from datetime import date

import pandas as pd
import psycopg2
import pytest
from meter_files import expected_marts, three_meters_two_feeders, write_meter_file

from energy_assets.commands.run import run_once
from energy_assets.marts.exports import EXPORTS, export_csv

JAN, FEB = date(2024, 1, 1), date(2024, 2, 1)
FEEDER_COLUMNS = [
    "MW_del",
    "MW_rec",
    "MVA_del",
    "MVA_rec",
    "MW_net",
    "MVA_net",
    "PF_net",
    "Estimated",
]


class WriteOnly:
    """A stream with nothing but `write`: what COPY needs, and all an export may use."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        return len(data)


def export(platform, kind: str, name: str | None = None, first=JAN, last=FEB):
    """(rows returned, the CSV parsed, its raw text)."""
    out = io.BytesIO()
    rows = export_csv(
        platform.warehouse_url, kind, out, name=name, first_month=first, last_month=last
    )
    text = out.getvalue().decode()
    return rows, pd.read_csv(io.StringIO(text)), text


def utc(column: pd.Series) -> pd.Series:
    return pd.to_datetime(column, format="ISO8601", utc=True)


def write_customer_meters(dropbox) -> None:
    """Two customer meters beside the feeder meters, 1-3 January 2024: H1 (a feeder-meter file
    whose metadata has not arrived: on no feeder, its own customer) with a gap of 3 intervals
    on 2 January from 10:00, and S1, customer C-ACME, in a customer-profile file."""
    write_meter_file(
        dropbox,
        "H1_2024-01.csv",
        "2024-01-01",
        "2024-01-04",
        5,
        7,
        drop=[("2024-01-02 10:00", "2024-01-02 10:30")],
    )
    times = pd.date_range("2024-01-01", "2024-01-04", freq="15min", inclusive="left", tz="UTC")
    pd.DataFrame(
        {
            "Serial": "S1",
            "Customer Ref": "C-ACME",
            "Timestamp": times.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Avg Import kW": (10 + times.hour / 4).round(3),
        }
    ).to_csv(dropbox / "load_profile_S1.csv", index=False)


def test_exports_equal_the_marts(platform):
    inputs = three_meters_two_feeders(platform.settings.dropbox)
    write_customer_meters(platform.settings.dropbox)
    expected = expected_marts(inputs)
    assert run_once(platform.settings).ok
    url = platform.warehouse_url

    # feeder: case-insensitive name, seed columns, every interval of Jan..Feb in time order
    rows, north, text = export(platform, "feeder", "north")
    assert list(north.columns) == ["Start Time", *FEEDER_COLUMNS]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+00", north["Start Time"].iloc[0])
    mart = platform.query(
        "select interval_start, mw_del, mw_rec, mva_del, mva_rec, mw_net, mva_net, pf_net,"
        " meters_estimated from marts.fct_feeder_intervals where feeder = 'North'"
        " order by interval_start"
    )
    assert rows == len(north) == len(mart) == 60 * 96
    assert utc(north["Start Time"]).tolist() == mart["interval_start"].tolist()
    pd.testing.assert_frame_equal(
        north[FEEDER_COLUMNS].set_axis(mart.columns[1:], axis=1).astype(float),
        mart.iloc[:, 1:].astype(float),
        rtol=1e-12,
    )
    assert (north["Estimated"] == 0).all()  # estimates are off by default
    want = expected["feeder"].query("feeder == 'North'")
    assert north["MW_net"].to_numpy() == pytest.approx(want["mw_net"].to_numpy(), rel=1e-9)

    # Feb only: exactly Feb's rows
    rows, feb, _ = export(platform, "feeder", "North", FEB, FEB)
    assert rows == len(feb) == 29 * 96
    assert feb["Start Time"].str.startswith("2024-02-").all()
    pd.testing.assert_frame_equal(feb, north.iloc[31 * 96 :].reset_index(drop=True))

    # system: all.csv, MW_net a copy of MW_total
    rows, system, _ = export(platform, "system")
    assert list(system.columns) == [
        "Start Time",
        "MW_total",
        "MVA_total",
        "PF_total",
        "MW_net",
        "Estimated",
    ]
    mart = platform.query("select mw_total from marts.fct_system_intervals order by interval_start")
    assert rows == len(system) == len(mart) == len(expected["system"])
    assert system["MW_total"].sum() == pytest.approx(mart["mw_total"].sum(), rel=1e-12)
    assert system["MW_net"].equals(system["MW_total"])

    # gaps: every gap overlapping the range, whole (the one across Jan/Feb included)
    rows, gaps, _ = export(platform, "gaps")
    mart = platform.query(
        "select meter_id, gap_start, gap_end, missing_intervals from marts.fct_gaps"
        " order by meter_id, gap_start"
    )
    assert rows == len(gaps) == len(mart) == len(expected["gaps"]) + 1 > 1  # and H1's
    gaps[["gap_start", "gap_end"]] = gaps[["gap_start", "gap_end"]].apply(utc)
    pd.testing.assert_frame_equal(gaps, mart, check_dtype=False)
    _, feb_m1, _ = export(platform, "gaps", "M1", FEB, FEB)
    assert feb_m1.values.tolist() == [  # one gap from Jan 31 22:00 to Feb 1 01:00
        ["M1", "2024-01-31 22:00:00+00", "2024-02-01 01:00:00+00", 12]
    ]

    # customer: H1 has no customer id (nor a feeder), so it is its own customer; S1 is C-ACME's
    for customer, meter in (("H1", "H1"), ("C-ACME", "S1")):
        rows, frame, _ = export(platform, "customer", customer)
        assert list(frame.columns) == ["Start Time", "kW", "Estimated"]
        clean = platform.query(
            "select count(*) as n, sum(demand_kw) as kw from marts.fct_intervals_clean"
            " where meter_id = %s",
            (meter,),
        )
        assert rows == len(frame) == clean["n"][0] == 3 * 96
        assert frame["kW"].sum() == pytest.approx(clean["kw"][0], rel=1e-12)
        assert frame["kW"].isna().sum() == (3 if meter == "H1" else 0)  # gaps empty, not zeros

    # a range without rows: header only
    out = io.BytesIO()
    assert (
        export_csv(
            url,
            "feeder",
            out,
            name="South",
            first_month=date(2023, 1, 1),
            last_month=date(2023, 12, 1),
        )
        == 0
    )
    assert out.getvalue().decode().splitlines() == [",".join(["Start Time", *FEEDER_COLUMNS])]

    # streamed by COPY into anything with `write`, row by row
    stream = WriteOnly()
    rows = export_csv(url, "feeder", stream, name="South", first_month=JAN, last_month=FEB)
    assert len(stream.chunks) > rows > 0
    assert b"".join(stream.chunks).decode().count("\n") == rows + 1

    # names are data, never SQL; unknown ones list the known ones
    for kind, name, message in [
        ("feeder", "O'Brien", 'unknown feeder "O\'Brien"; known feeders: North, South'),
        ("feeder", None, "the feeder export needs a name; known feeders: North, South"),
        ("customer", "x'); drop table raw.meters; --", "known customers: C-ACME, H1$"),
        ("customer", "M1", "unknown customer 'M1'; known customers: C-ACME, H1$"),
        ("gaps", "M4", "unknown meter 'M4'; known meters: H1, M1, M2, M3, S1$"),
        ("system", "North", "the system export takes no name"),
        ("lp", None, f"unknown export 'lp'; known exports: {', '.join(EXPORTS)}"),
    ]:
        with pytest.raises(ValueError, match=message):
            export_csv(url, kind, io.BytesIO(), name=name, first_month=JAN, last_month=FEB)
    assert platform.scalar("select count(*) from raw.meters") == 4  # M1-M3 and S1


def test_export_before_any_marts_is_a_value_error(platform):
    out = io.BytesIO()  # relations exist but hold nothing yet: a header and no rows
    assert export_csv(platform.warehouse_url, "system", out, first_month=JAN, last_month=JAN) == 0
    assert out.getvalue().decode().splitlines() == [
        "Start Time,MW_total,MVA_total,PF_total,MW_net,Estimated"
    ]
    conn = psycopg2.connect(platform.warehouse_url)
    with conn, conn.cursor() as cur:
        cur.execute("drop schema marts cascade")  # a warehouse the platform never set up
    conn.close()
    with pytest.raises(ValueError, match="marts are not built yet"):
        export_csv(platform.warehouse_url, "system", io.BytesIO(), first_month=JAN, last_month=JAN)
    with pytest.raises(ValueError, match="is before first month"):
        export_csv(platform.warehouse_url, "system", io.BytesIO(), first_month=FEB, last_month=JAN)


FORMULAS = ['=HYPERLINK("x")', "+1", "@SUM(A1)", "-2+3"]


def test_formula_like_names_are_text_and_negative_numbers_stay_numbers(platform):
    """Meters named like spreadsheet formulas (OWASP's CSV injection) come out as text cells
    with a leading ', whatever the export; numbers are never touched: a feeder's negative MW
    stays -0.0035. Meter =HYPERLINK("x") is on feeder @SUM(A1) and reads -3.5 kW at 12:00;
    meter +1 has no metadata, so it is its own customer; each meter misses its 06:00 reading."""
    dropbox = platform.settings.dropbox
    times = pd.date_range("2024-01-01", "2024-01-02", freq="15min", inclusive="left")
    rows = []
    for meter in FORMULAS:
        kw = pd.Series(20.0, index=times).drop(pd.Timestamp("2024-01-01 06:00"))
        if meter == FORMULAS[0]:
            kw[pd.Timestamp("2024-01-01 12:00")] = -3.5
        rows.append(
            pd.DataFrame(
                {
                    "meter": meter,
                    "timestamp": kw.index.strftime("%Y-%m-%d %H:%M"),
                    "channel": "kW del",
                    "value": kw.to_numpy(),
                }
            )
        )
    pd.concat(rows).to_csv(dropbox / "formulas.csv", index=False)
    pd.DataFrame({"ID": [FORMULAS[0]], "Name": ["@SUM(A1)"], "Multiplier": [1]}).to_csv(
        dropbox / "meter-data.csv", index=False
    )
    report = run_once(platform.settings)
    assert report.ok and [r["status"] for r in report.files] == ["loaded", "loaded"]

    _, _, text = export(platform, "gaps", first=JAN, last=JAN)
    cells = list(csv.reader(io.StringIO(text)))
    assert cells[0] == ["meter_id", "gap_start", "gap_end", "missing_intervals"]
    assert sorted(row[0] for row in cells[1:]) == sorted("'" + m for m in FORMULAS)
    assert {tuple(row[1:]) for row in cells[1:]} == {
        ("2024-01-01 06:00:00+00", "2024-01-01 06:15:00+00", "1")
    }
    assert '"\'=HYPERLINK(""x"")"' in text  # quoted as CSV, the quotes doubled
    _, _, text = export(platform, "gaps", FORMULAS[0], first=JAN, last=JAN)
    assert [row[0] for row in csv.reader(io.StringIO(text))] == ["meter_id", "'" + FORMULAS[0]]

    rows, feeder, text = export(platform, "feeder", "@SUM(A1)", first=JAN, last=JAN)
    assert rows == 96  # the gap interval included, empty
    noon = next(line for line in text.splitlines() if line.startswith("2024-01-01 12:00:00"))
    assert noon.split(",")[1] == "-0.0035"  # MW_del: a number, as is
    assert feeder.loc[feeder["Start Time"].str.startswith("2024-01-01 12:00"), "MW_del"].item() == (
        -0.0035
    )

    rows, customer, _ = export(platform, "customer", "+1", first=JAN, last=JAN)
    assert rows == 96 and customer["kW"].isna().sum() == 1
    assert customer["kW"].sum() == pytest.approx(95 * 20.0)
