"""The anomalies' reads and writes: the month's load curves, gaps and backtest residuals from
the marts and `ml.forecasts`, and the findings and rates into `ml`. Plain functions over a
connection, no Dagster."""

from __future__ import annotations

import json
import math
from datetime import date, timedelta

import pandas as pd
import pyarrow as pa
from psycopg2 import sql
from psycopg2.extensions import connection

from energy_assets.anomalies.detectors import MonthInputs
from energy_assets.warehouse.database import (
    FINDINGS_LOCK,
    SCHEMA_LOCK,
    TIMESTAMP,
    copy_frame,
    read_arrow,
    read_frame,
)

HISTORY = timedelta(days=28)  # read before the month, for the detectors' baselines

METERS = """
select c.meter_id as target_id, c.interval_start, c.interval_end,
       case when c.quality <> 'estimated' then coalesce(c.kw_net, c.demand_kw) end as value,
       case when c.quality <> 'estimated' then coalesce(c.kw_del, c.demand_kw) end as delivered,
       c.feeder, m.timezone
from marts.fct_intervals_clean as c left join marts.dim_meter as m using (meter_id)
where c.interval_start >= %s and c.interval_start < %s
"""  # an estimated interval is judged as what it is: missing
FEEDERS = """
select feeder as target_id, interval_start,
       case when meters_reporting = meters_expected then mw_net * 1000 end as value
from marts.fct_feeder_intervals where interval_start >= %s and interval_start < %s
"""
GAPS = """
select meter_id, gap_start, gap_end, missing_intervals from marts.fct_gaps
where gap_start < %s and gap_end > %s
"""
FORECASTS = """
select target_kind, target_id, interval_start, p50, actual from ml.forecasts
where run_kind = 'backtest' and month_start >= %s and month_start <= %s
      and interval_start >= %s and interval_start < %s
"""


SERIES_TYPES = {
    "target_id": pa.string(),
    "interval_start": TIMESTAMP,
    "interval_end": TIMESTAMP,
    "value": pa.float64(),
    "delivered": pa.float64(),
    "feeder": pa.string(),
    "timezone": pa.string(),
}


def _series(conn: connection, query: str, month: date, following: date) -> pd.DataFrame:
    """The month's curves and the history before it: millions of rows, read by COPY."""
    return read_arrow(conn, query, (month - HISTORY, following), SERIES_TYPES)


def month_inputs(conn: connection, month: date, following: date) -> MonthInputs:
    return MonthInputs(
        meters=_series(conn, METERS, month, following),
        feeders=_series(conn, FEEDERS, month, following),
        gaps=read_frame(conn, GAPS, (following, month)),
        forecasts=read_frame(conn, FORECASTS, (month - HISTORY, month, month - HISTORY, following)),
    )


def meter_feeders(conn: connection) -> dict[str, str | None]:
    return dict(read_frame(conn, "select meter_id, feeder from raw.meters").values)


def _json(details: dict) -> str:
    """A finding's numbers as JSON; a number that is not finite (an infinite z against a
    baseline that never varied) becomes null, as JSON has no NaN or Infinity."""

    def finite(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value

    return json.dumps(
        {
            k: [finite(v) for v in x] if isinstance(x, list) else finite(x)
            for k, x in details.items()
        }
    )


def store_findings(
    conn: connection, month: date, found: pd.DataFrame, intervals: int
) -> float | None:
    """Replace the month's findings (its own list partition) and its rate in one transaction."""
    rate = 1000 * len(found) / intervals if intervals else None
    with conn, conn.cursor() as cur:  # short: creating a partition locks the parent table
        cur.execute("select pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))  # two runs, one month
        cur.execute(
            sql.SQL(
                "create table if not exists ml.{} partition of ml.anomalies for values in (%s)"
            ).format(sql.Identifier(f"anomalies_{month:%Y_%m}")),
            (month,),
        )
    with conn, conn.cursor() as cur:
        # Two runs storing one month take turns: the later one's delete sees the earlier rows.
        cur.execute("select pg_advisory_xact_lock(%s, %s)", (FINDINGS_LOCK, month.toordinal()))
        cur.execute("delete from ml.anomalies where month_start = %s", (month,))
        if not found.empty:
            days = [d if isinstance(d, date) else None for d in found["day"]]
            details = [_json(d) if isinstance(d, dict) else None for d in found["details"]]
            copy_frame(cur, "ml.anomalies", found.assign(day=days, details=details))
        cur.execute(
            "insert into ml.anomaly_months (month_start, intervals, findings, rate)"
            " values (%s, %s, %s, %s) on conflict (month_start) do update set"
            " intervals = excluded.intervals, findings = excluded.findings,"
            " rate = excluded.rate, computed_at = now()",
            (month, intervals, len(found), rate),
        )
    return rate


def anomaly_rates(conn: connection) -> dict[date, float | None]:
    """Findings per 1000 intervals of every month computed so far."""
    rates = read_frame(conn, "select month_start, rate from ml.anomaly_months order by 1")
    return dict(zip(rates["month_start"], rates["rate"], strict=True))
