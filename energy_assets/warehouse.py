"""The warehouse side of ingest: schema, month partitions and bulk loads into PostgreSQL."""

from __future__ import annotations

import io
from collections.abc import Iterable
from datetime import date

import pandas as pd
import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection

from energy_assets.settings import SQL_DIR

_PARTITION_LOCK = 7_310_001  # advisory lock key: creating month partitions


def connect(url: str) -> connection:
    return psycopg2.connect(url, application_name="energy_assets")


def apply_schema(url: str) -> None:
    """Run every `sql/*.sql` file in name order; each is idempotent."""
    conn = connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("select pg_advisory_xact_lock(%s)", (_PARTITION_LOCK,))
            for path in sorted(SQL_DIR.glob("*.sql")):
                cur.execute(path.read_text(encoding="utf-8"))
    finally:
        conn.close()


def month_start(ts: pd.Timestamp) -> date:
    return date(ts.year, ts.month, 1)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def months_between(first: pd.Timestamp, last: pd.Timestamp) -> list[date]:
    """Every month from the one holding `first` to the one holding `last` (UTC)."""
    months, month, end = [], month_start(first), month_start(last)
    while month <= end:
        months.append(month)
        month = next_month(month)
    return months


def ensure_month_partitions(conn: connection, months: Iterable[date]) -> None:
    """Create the `raw.readings` partitions for `months` in a short transaction of their own.

    Kept out of the load transaction: creating a partition locks the parent table, and holding
    that lock for a whole file's load would block every reader.
    """
    with conn, conn.cursor() as cur:
        cur.execute("select pg_advisory_xact_lock(%s)", (_PARTITION_LOCK,))
        for month in sorted(set(months)):
            cur.execute(
                sql.SQL(
                    "create table if not exists raw.{} partition of raw.readings "
                    "for values from (%s) to (%s)"
                ).format(sql.Identifier(f"readings_{month:%Y_%m}")),
                (f"{month} 00:00+00", f"{next_month(month)} 00:00+00"),
            )


def copy_readings(cur, readings: pd.DataFrame, file_id: int) -> None:
    """Bulk-load long-form readings with COPY (tab-separated text, UTC ISO timestamps)."""
    frame = readings[["meter_id", "interval_start", "interval_seconds", "channel", "value"]]
    frame = frame.assign(
        interval_start=frame["interval_start"].dt.strftime("%Y-%m-%d %H:%M:%S+00"),
        file_id=file_id,
    )
    buffer = io.StringIO()
    frame.to_csv(buffer, sep="\t", header=False, index=False, float_format="%.10g")
    buffer.seek(0)
    cur.copy_expert(
        "copy raw.readings (meter_id, interval_start, interval_seconds, channel, value, file_id)"
        " from stdin with (format text)",
        buffer,
    )


def meter_spans(cur, meter_ids: list[str]) -> dict[str, tuple[pd.Timestamp, pd.Timestamp]]:
    """First and last interval already loaded per meter."""
    cur.execute(
        "select meter_id, min(first_interval), max(last_interval) from raw.file_meters"
        " where meter_id = any(%s) group by meter_id",
        (meter_ids,),
    )
    return {m: (pd.Timestamp(a), pd.Timestamp(b)) for m, a, b in cur.fetchall()}


def meter_timezones(cur) -> dict[str, str]:
    cur.execute("select meter_id, timezone from raw.meters where timezone is not null")
    return dict(cur.fetchall())
