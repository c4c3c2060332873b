"""The forecasts' reads and writes: targets and weather from the marts and `raw.weather`, and
forecasts, scores and models into `ml`. Plain functions over a connection, no Dagster.

Targets: every feeder (MW), the system (MW), the sum of the meters that belong to no feeder
(kW, e.g. households) and every meter (kW). Weather is long (valid hour, variable, issue time
of a forecast or null for an observation, value), each the mean over all sites.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import psycopg2
import pyarrow as pa
from psycopg2.extensions import connection
from psycopg2.extras import Json

from energy_assets.forecasts.day_ahead import (
    METRIC_COLUMNS,
    ForecastConfig,
    Forecasts,
    backtest_sample,
)
from energy_assets.forecasts.model import target_scores
from energy_assets.warehouse.database import (
    TIMESTAMP,
    copy_frame,
    meter_timezones,
    read_arrow,
    read_frame,
)

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
        f"case when meters_reporting = meters_expected then kw_total end as value "
        f"from marts.fct_meters_total_intervals where {WINDOW}",
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
SERIES_TYPES = {
    "target_id": pa.string(),
    "interval_start": TIMESTAMP,
    "value": pa.float64(),
    "tariff_flag": pa.float64(),
}
# A meter alone on its feeder is forecast as the feeder: its own backtest would repeat it.
METERS = f"""
select distinct meter_id from marts.fct_intervals_clean
where {WINDOW} and (feeder is null or feeder in (
    select feeder from raw.meters where feeder is not null group by feeder having count(*) > 1
))
"""
WEATHER = """
select date_trunc('hour', observed_at) as valid_at, variable, issued_at, avg(value) as value
from raw.weather where observed_at >= %(start)s and observed_at < %(end)s
group by 1, 2, 3
"""
FEEDER_ZONES = """
select feeder, min(timezone) as timezone from raw.meters where feeder is not null
group by feeder having count(distinct timezone) = 1 and count(timezone) = count(*)
"""
FEEDERS = "select count(distinct feeder) from raw.meters where feeder is not null"
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
    """One kind's targets over [start, end) as a long frame; meters only those in `targets`
    when given."""
    params = {"start": start, "end": end, "targets": targets}
    return read_arrow(conn, TARGETS[kind][0], params, SERIES_TYPES)


def read_weather(conn: connection, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """raw.weather over [start, end) in the forecasts' long layout, hourly means over sites."""
    weather = read_frame(conn, WEATHER, {"start": start, "end": end})
    if weather.empty:
        return weather
    for column in ("valid_at", "issued_at"):
        weather[column] = pd.to_datetime(weather[column], utc=True)
    return weather.astype({"value": float})


def target_timezones(conn: connection, kind: str) -> dict[str, str]:
    """Targets' own timezones: a meter's from its metadata, a feeder's where all its meters
    share one; others follow ENERGY_TIMEZONE."""
    if kind == "meter":
        with conn.cursor() as cur:
            return meter_timezones(cur)
    if kind == "feeder":
        zones = read_frame(conn, FEEDER_ZONES)
        return dict(zip(zones["feeder"], zones["timezone"], strict=True))
    return {}


def feeder_count(conn: connection) -> int:
    return read_frame(conn, FEEDERS).iloc[0, 0]


def meters_between(conn: connection, start: pd.Timestamp, end: pd.Timestamp) -> list[str]:
    """Every meter with a clean interval in [start, end)."""
    return read_frame(conn, METERS, {"start": start, "end": end})["meter_id"].tolist()


def live_series(
    conn: connection,
    kind: str,
    config: ForecastConfig,
    latest: pd.Timestamp,
    start: pd.Timestamp,
    end: pd.Timestamp,
) -> tuple[pd.DataFrame, set[str] | None]:
    """A live forecast's series of `kind` over [start, end), and the targets its model trains
    on (None: all of them).

    The meters' model trains on the backtest's fixed sample of the meters that read lately
    (ENERGY_BACKTEST_METERS), the model the backtest judges; the other meters are read from
    `config.recent_needed` only. Every meter's whole history would cost memory and time in
    proportion to all meters' years (21 GB for 5,566 households' three months), for a model
    that samples 40,000 rows of it.
    """
    if kind != "meter":
        return read_series(conn, kind, start, end), None
    recent_start = max(start, config.recent_needed(latest))
    sample = backtest_sample(meters_between(conn, recent_start, end), config.backtest_meters)
    if sample is None:
        return read_series(conn, kind, start, end), None
    history = read_series(conn, kind, start, end, sample)
    recent = read_series(conn, kind, recent_start, end)
    recent = recent[~recent["target_id"].isin(sample)]
    return pd.concat([history, recent], ignore_index=True), set(sample)


def month_verdicts(conn: connection, month: date) -> pd.DataFrame:
    """target_kind, target_id, verdict of every target backtested in `month`."""
    return read_frame(
        conn,
        "select target_kind, target_id, verdict from ml.backtest_metrics where month_start = %s"
        " order by 1, 2",
        (month,),
    )


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
            "same_slot": rows["same_slot"],
            "verdict": rows["verdict"],
        }
    )


def _store_models(cur, result: Forecasts) -> None:
    """Every model of the result, with its scores per target on the result's forecasts (a
    model whose forecasts span two months keeps the latest month's)."""
    scores = target_scores(result.rows) if not result.rows.empty else {}
    for m in result.models:
        cur.execute(
            "insert into ml.models values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "on conflict (model_version) do update "
            "set target_metrics = ml.models.target_metrics || excluded.target_metrics",
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
                Json(scores.get(m.version, {})),
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
    issued = [t.to_pydatetime() for t in result.rows["issued_at"].unique()]
    month = result.rows["interval_start"].min().date().replace(day=1)
    with conn, conn.cursor() as cur:
        _store_models(cur, result)
        cur.execute(
            "delete from ml.forecasts where run_kind = 'live' and target_kind = %s "
            "and issued_at = any(%s)",
            (kind, issued),
        )
        copy_frame(cur, "ml.forecasts", _rows(result, "live", month, kind))
