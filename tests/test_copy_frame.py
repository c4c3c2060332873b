"""Frames into PostgreSQL with COPY: whatever the frame is concatenated from, COPY receives
clean CSV (no NUL bytes) and the rows arrive as they were; and out of it, typed by Arrow."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import psycopg2
import pyarrow as pa
import pytest

from energy_assets.anomalies.detectors import MonthInputs, month_findings
from energy_assets.anomalies.store import store_findings
from energy_assets.warehouse.database import (
    TIMESTAMP,
    copy_frame,
    csv_bytes,
    read_arrow,
    read_frame,
)

UTC_TIMES = pd.to_datetime(["2024-01-01 00:15", "2024-01-02 23:45"]).tz_localize("UTC")

# dtype -> (the values after an empty frame of that dtype, the CSV COPY must receive)
COLUMNS = {
    "str": (pd.Series(["a,b", None], dtype="str"), b'"a,b"\n\n'),
    "string[pyarrow]": (pd.Series(["x", None], dtype="string[pyarrow]"), b'"x"\n\n'),
    "object": (pd.Series(["a", None], dtype=object), b'"a"\n\n'),
    "float64": (pd.Series([1.5, np.nan]), b"1.5\n\n"),
    "double[pyarrow]": (pd.Series([-2.25, None], dtype="double[pyarrow]"), b"-2.25\n\n"),
    "int64": (pd.Series([1, 2]), b"1\n2\n"),
    "Int64": (pd.Series([7, None], dtype="Int64"), b"7\n\n"),
    "bool": (pd.Series([True, False]), b"true\nfalse\n"),
    "datetime64[ns, UTC]": (
        pd.Series(UTC_TIMES),
        b"2024-01-01 00:15:00.000000Z\n2024-01-02 23:45:00.000000Z\n",
    ),
    "date": (pd.Series([date(2024, 1, 1), None], dtype=object), b"2024-01-01\n\n"),
}


def after_an_empty_frame(values: pd.Series, name: str = "v") -> pd.DataFrame:
    """`values` as pd.concat leaves them behind an empty frame of the same dtype."""
    empty = pd.DataFrame({name: values.iloc[:0]})
    return pd.concat([empty, pd.DataFrame({name: values})], ignore_index=True)


@pytest.mark.parametrize("dtype", list(COLUMNS))
def test_csv_after_an_empty_frame_is_exactly_the_rows(dtype):
    values, expected = COLUMNS[dtype]
    assert csv_bytes(after_an_empty_frame(values)) == expected


def test_wide_frame_after_an_empty_frame_is_exactly_the_rows():
    frame = pd.concat(
        [after_an_empty_frame(values, name) for name, (values, _) in COLUMNS.items()], axis=1
    )
    lines = zip(*(expected.splitlines() for _, expected in COLUMNS.values()), strict=True)
    assert csv_bytes(frame) == b"".join(b",".join(fields) + b"\n" for fields in lines)


def test_copy_after_an_empty_frame_stores_the_rows(pg_server):
    frame = pd.concat(
        [
            pd.DataFrame({"meter": pd.Series([], dtype="str"), "value": []}),
            pd.DataFrame({"meter": ["M1", "M2", "M3"], "value": [1.5, -2.0, 3.25]}),
        ],
        ignore_index=True,
    )
    conn = psycopg2.connect(pg_server)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("create temporary table copied (meter text, value float8)")
            copy_frame(cur, "pg_temp.copied", frame)
            cur.execute("select meter, value from copied order by meter")
            assert cur.fetchall() == [("M1", 1.5), ("M2", -2.0), ("M3", 3.25)]
    finally:
        conn.close()


def test_findings_of_a_month_whose_first_target_kind_has_none_are_stored(platform):
    """The backtest residuals are judged per target kind; when the first kind (feeders) has no
    finding, its empty frame leads the month's findings."""
    times = pd.date_range("2024-01-01", "2024-02-01", freq="15min", tz="UTC", inclusive="left")
    wobble = np.random.default_rng(0).standard_normal(len(times))  # residuals of SD 1
    residual = {"feeder": np.zeros(len(times)), "meter": wobble.copy()}
    residual["meter"][500:560] = 50.0  # 15 hours 50 over the p50 (robust z about 50)
    forecasts = pd.concat(
        [
            pd.DataFrame(
                {
                    "target_kind": kind,
                    "target_id": "North" if kind == "feeder" else "M2",
                    "interval_start": times,
                    "p50": 30.0,
                    "actual": 30.0 + r,
                }
            )
            for kind, r in residual.items()
        ],
        ignore_index=True,
    )
    nothing = pd.DataFrame(
        {
            "target_id": pd.Series([], dtype="str"),
            "interval_start": pd.Series([], dtype="datetime64[ns, UTC]"),
            "value": pd.Series([], dtype="float64"),
        }
    )
    inputs = MonthInputs(
        meters=nothing.assign(delivered=nothing["value"]),
        feeders=nothing,
        gaps=pd.DataFrame(columns=["meter_id", "gap_start", "gap_end", "missing_intervals"]),
        forecasts=forecasts,
    )
    month = date(2024, 1, 1)
    found = month_findings(inputs, month, date(2024, 2, 1), "UTC")

    conn = psycopg2.connect(platform.warehouse_url)
    try:
        store_findings(conn, month, found, len(times))
    finally:
        conn.close()

    stored = platform.query(
        "select target_kind, target_id, interval_start, interval_end, detector from ml.anomalies"
    )
    assert stored.to_dict("records") == [
        {
            "target_kind": "meter",
            "target_id": "M2",
            "interval_start": pd.Timestamp("2024-01-06", tz="UTC"),  # the run and its day:
            "interval_end": pd.Timestamp("2024-01-07", tz="UTC"),  # one episode, one row
            "detector": "forecast_residual",
        }
    ]


def test_read_arrow_gives_the_rows_read_frame_gives_typed_and_in_utc(pg_server):
    """Text with commas, quotes and line breaks, empty text apart from null, a time read in
    another session timezone, NaN and null floats, an ID that looks like a number."""
    query = """
        select * from (values
            ('1001', '2024-03-31 03:30+02'::timestamptz, 1.5::float8, 'a,"b"'),
            ('', '2024-01-01 00:00+00', 'NaN', E'two\\nlines'),
            (null, null, null, null)
        ) as v (meter, at, value, note)
        where %(all)s
    """
    types = {"meter": pa.string(), "at": TIMESTAMP, "value": pa.float64(), "note": pa.string()}
    conn = psycopg2.connect(pg_server)
    try:
        conn.cursor().execute("set timezone = 'America/New_York'")
        frame = read_arrow(conn, query, {"all": True}, types)
        tuples = read_frame(conn, query, {"all": True})
    finally:
        conn.close()
    assert frame["meter"].tolist()[:2] == ["1001", ""] and pd.isna(frame["meter"].iat[2])
    assert frame["note"].tolist()[:2] == ['a,"b"', "two\nlines"] and pd.isna(frame["note"].iat[2])
    assert str(frame["at"].dtype) == "datetime64[us, UTC]"
    assert frame["at"].tolist()[:2] == [
        pd.Timestamp("2024-03-31 01:30", tz="UTC"),
        pd.Timestamp("2024-01-01 00:00", tz="UTC"),
    ]
    assert pd.isna(frame["at"].iat[2])
    assert frame["value"].iat[0] == 1.5 and frame["value"].iloc[1:].isna().all()
    pd.testing.assert_series_equal(frame["at"], pd.to_datetime(tuples["at"], utc=True))
    for column in ("meter", "note"):
        assert frame[column].fillna("<null>").tolist() == tuples[column].fillna("<null>").tolist()
