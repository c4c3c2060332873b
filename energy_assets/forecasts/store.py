"""The forecasts' reads and writes: targets and weather from the marts and `raw.weather`, and
forecasts, scores and models into `ml`. Plain functions over a connection, no Dagster.

Targets: every feeder (MW), the system (MW), the sum of the meters that belong to no feeder
(kW, e.g. households) and every meter (kW). Weather is the hourly mean of each `raw.weather`
variable over all sites.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import psycopg2
from psycopg2.extensions import connection
from psycopg2.extras import Json

from energy_assets.forecasts.day_ahead import METRIC_COLUMNS, Forecasts
from energy_assets.forecasts.features import WEATHER_PREFIX
from energy_assets.warehouse.database import copy_frame, read_frame

WINDOW = "interval_start >= %(start)s and interval_start < %(end)s"
METER_KW = "coalesce(kw_net, demand_kw)"  # net where the meter logs kW, else imported kW
TARGETS = {  # kind -> (query over [start, end), unit)
    "feeder": (
        f"select feeder as target_id, interval_start, mw_net as value "
        f"from marts.fct_feeder_intervals where {WINDOW}",
        "MW",
    ),
    "system": (
        f"select 'system' as target_id, interval_start, mw_total as value "
        f"from marts.fct_system_intervals where {WINDOW}",
        "MW",
    ),
    # Only intervals where every meter reported: a sum with holes is not the load.
    "meters_total": (
        f"select 'meters without feeder' as target_id, interval_start, "
        f"case when count({METER_KW}) = count(*) then sum({METER_KW}) end as value "
        f"from marts.fct_intervals_clean where feeder is null and {WINDOW} "
        f"group by interval_start",
        "kW",
    ),
    "meter": (
        f"select c.meter_id as target_id, c.interval_start, {METER_KW} as value, "
        f"case when m.tariff ilike 'tou' then 1.0 else 0.0 end as tariff_flag "
        f"from marts.fct_intervals_clean c left join raw.meters m using (meter_id) "
        f"where c.{WINDOW} "
        f"and (%(targets)s::text[] is null or c.meter_id = any(%(targets)s::text[]))",
        "kW",
    ),
}
METERS = f"select distinct meter_id from marts.fct_intervals_clean where {WINDOW}"
WEATHER = """
select date_trunc('hour', observed_at) as hour, variable, avg(value) as value
from raw.weather where observed_at >= %(start)s and observed_at < %(end)s
group by 1, 2
"""
LATEST = (
    "select max(interval_start) as latest from marts.fct_intervals_clean where quality <> 'gap'"
)


def read_series(
    conn: connection,
    kind: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    targets: list[str] | None = None,
) -> pd.DataFrame:
    """One kind's targets over [start, end) as a long frame, with weather_* columns; meters
    only those in `targets` when given."""
    window = {"start": start, "end": end}
    series = read_frame(conn, TARGETS[kind][0], {**window, "targets": targets})
    series["interval_start"] = pd.to_datetime(series["interval_start"], utc=True)
    for column in series.columns.drop(["target_id", "interval_start"]):
        series[column] = pd.to_numeric(series[column]).astype(float)
    weather = read_frame(conn, WEATHER, window)
    if not weather.empty:
        weather["hour"] = pd.to_datetime(weather["hour"], utc=True)
        wide = weather.pivot(index="hour", columns="variable", values="value").astype(float)
        hours = series["interval_start"].dt.floor("h")
        for variable in wide.columns:
            series[WEATHER_PREFIX + variable] = wide[variable].reindex(hours).to_numpy()
    return series


def meters_between(conn: connection, start: pd.Timestamp, end: pd.Timestamp) -> list[str]:
    """Every meter with a clean interval in [start, end)."""
    return read_frame(conn, METERS, {"start": start, "end": end})["meter_id"].tolist()


def latest_reading(conn: connection) -> pd.Timestamp | None:
    """The start of the newest interval with a reading, UTC; None before any data."""
    latest = read_frame(conn, LATEST)["latest"].iloc[0]
    return None if latest is None or pd.isna(latest) else pd.Timestamp(latest).tz_convert("UTC")


def _rows(result: Forecasts, run_kind: str, month: date, kind: str) -> pd.DataFrame:
    """Forecasts as ml.forecasts rows, columns in table order for COPY."""
    rows = result.rows
    seconds = (rows["interval_start"] - rows["issued_at"]).dt.total_seconds()
    return pd.DataFrame(
        {
            "run_kind": run_kind,
            "month_start": month,
            "target_kind": kind,
            "target_id": rows["target_id"].astype(str),
            "issued_at": rows["issued_at"],
            "interval_start": rows["interval_start"],
            "horizon": seconds.astype("int64").astype(str) + " seconds",  # an interval literal
            "p10": rows["p10"],
            "p50": rows["p50"],
            "p90": rows["p90"],
            "actual": rows["actual"],
            "baseline": rows["baseline"],
            "model_version": rows["model_version"],
        }
    )


def _store_models(cur, result: Forecasts) -> None:
    for m in result.models:
        cur.execute(
            "insert into ml.models values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "on conflict (model_version) do nothing",
            (
                m.version,
                m.name,
                m.target_kind,
                m.resolution.to_pytimedelta(),
                m.trained_at,
                m.train_start,
                m.train_end,
                m.model.features,
                Json(m.model.booster.save_config()),
                Json(m.calibration),
                psycopg2.Binary(m.booster_bytes),
            ),
        )


def store_backtest(conn: connection, month: date, kind: str, result: Forecasts) -> None:
    """Replace the month's backtest forecasts and scores of one target kind, in one transaction."""
    with conn, conn.cursor() as cur:
        _store_models(cur, result)
        key = (month, kind)
        cur.execute(
            "delete from ml.forecasts where run_kind = 'backtest' "
            "and month_start = %s and target_kind = %s",
            key,
        )
        cur.execute(
            "delete from ml.backtest_metrics where month_start = %s and target_kind = %s", key
        )
        if result.rows.empty:
            return
        copy_frame(cur, "ml.forecasts", _rows(result, "backtest", month, kind))
        metrics = result.metrics.assign(month_start=month, target_kind=kind)
        columns = ["month_start", "target_kind", "target_id", *METRIC_COLUMNS]
        copy_frame(cur, "ml.backtest_metrics", metrics[columns])


def store_live(conn: connection, kind: str, result: Forecasts) -> None:
    """Add a live forecast; re-issuing the same forecast replaces it."""
    if result.rows.empty:
        return
    issued = result.rows["issued_at"].iloc[0]
    month = result.rows["interval_start"].min().date().replace(day=1)
    with conn, conn.cursor() as cur:
        _store_models(cur, result)
        cur.execute(
            "delete from ml.forecasts where run_kind = 'live' and target_kind = %s "
            "and issued_at = %s",
            (kind, issued),
        )
        copy_frame(cur, "ml.forecasts", _rows(result, "live", month, kind))
