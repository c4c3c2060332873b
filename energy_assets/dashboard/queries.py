"""What the dashboard reads: one function per question, over a connection as the analyst role.

Plain functions, no Streamlit: each takes a connection and the page's choices and returns a
frame (or a list), reading a bounded window (a month, a few days, one target) through the
marts' indexes, so no page waits on a whole-table scan. The pages call them through
`reads.cached`, which caches each answer for a minute.

Load series come back as (interval_start, value, complete, estimated): `complete` is false where
a meter of the load has no reading (shaded as missing), `estimated` true where a meter's value
was estimated (shaded as estimated).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
from psycopg2 import sql
from psycopg2.extensions import connection

from energy_assets.months import months_between, next_month
from energy_assets.warehouse.database import read_frame

ESTIMATED = "estimated"
"""The `quality` of an estimated interval in marts.fct_intervals_clean (when estimates are on,
`ENERGY_ESTIMATE_MAX_INTERVALS`): shaded wherever it occurs."""
SEVERITIES = ("high", "medium", "low")
"""ml.anomalies' severities, most urgent first: the order findings are counted and listed in."""
SEVERITY_RANK = sql.SQL("array_position({}::text[], severity)").format(
    sql.Literal(list(SEVERITIES))
)
WORK_LIST_ROWS = 500
"""Findings listed at most on the anomalies page (the strongest first); the rest are counted."""

FOUND = 50
"""Ids a search offers at most."""
UNITS = {"system": "MW", "feeder": "MW", "meters_total": "kW", "meter": "kW"}
METERS_TOTAL = "meters without feeder"
"""The one target of kind meters_total: the meters on no feeder (households), added up."""
WINDOW = "interval_start >= %(start)s and interval_start < %(end)s"
METER_KW = "coalesce(kw_net, demand_kw)"
LOADS = {
    "system": f"""
        select s.interval_start, s.mw_total as value,
               coalesce(f.complete, true) as complete, s.meters_estimated > 0 as estimated
        from marts.fct_system_intervals s
        left join (select interval_start,
                          bool_and(meters_reporting = meters_expected) as complete
                   from marts.fct_feeder_intervals where {WINDOW} group by 1) f
            using (interval_start)
        where s.{WINDOW}""",
    "feeder": f"""
        select f.interval_start, f.mw_net as value, f.mw_del, f.mw_rec, f.pf_net,
               f.meters_reporting = f.meters_expected as complete,
               f.meters_estimated > 0 as estimated
        from marts.fct_feeder_intervals f
        where f.feeder = %(target)s and f.{WINDOW}""",
    "meters_total": f"""
        select interval_start, kw_total as value, meters_reporting = meters_expected as complete,
               meters_estimated > 0 as estimated
        from marts.fct_meters_total_intervals where {WINDOW}""",
    "meter": f"""
        select interval_start, {METER_KW} as value, quality <> 'gap' as complete,
               quality = %(estimated)s as estimated
        from marts.fct_intervals_clean where meter_id = %(target)s and {WINDOW}""",
}
"""Load of each target kind over [start, end): MW for feeders and the system, kW for meters."""


def data_months(conn: connection) -> list[date]:
    """Every month from the first to the last reading loaded, newest first."""
    first, last = read_frame(
        conn, "select min(first_interval) as f, max(last_interval) as l from marts.dim_meter"
    ).iloc[0]
    if pd.isna(first):
        return []
    return months_between(
        pd.Timestamp(first).tz_convert("UTC"), pd.Timestamp(last).tz_convert("UTC")
    )[::-1]


def months_with(conn: connection, what: str, *args: str) -> list[date]:
    """The months, newest first, that have anomaly runs (`anomalies`), segments (`segments`),
    a target's forecasts (`forecasts`, kind, target) or a customer's readings (`customer`, id)."""
    query = {
        "anomalies": "select month_start from ml.anomaly_months",
        "segments": "select distinct month_start from ml.segment_centroids",
        "forecasts": """select month_start from ml.backtest_metrics
            where target_kind = %s and target_id = %s""",
        "customer": """select date_trunc('month', t at time zone 'UTC')::date from (
            select generate_series(min(m.first_interval), max(m.last_interval),
                                   interval '1 month') as t
            from marts.dim_customer c join marts.dim_meter m on m.meter_id = any(c.meter_ids)
            where c.customer_id = %s) s""",
    }[what]
    frame = read_frame(conn, f"select * from ({query}) q order by 1 desc", args)
    return frame.iloc[:, 0].tolist()


def latest_reading(conn: connection, kind: str) -> datetime | None:
    """The last interval with data of the system (feeders) or of the meters on no feeder."""
    query = {
        "system": "select max(interval_start) from marts.fct_system_intervals",
        "meters_total": "select max(last_interval) from marts.dim_meter where feeder is null",
    }[kind]
    return read_frame(conn, query).iat[0, 0]


def load(
    conn: connection, kind: str, start: datetime | date, end: datetime | date, target: str = ""
) -> pd.DataFrame:
    """The load of a target over [start, end), oldest first (see the module's docstring)."""
    params = {"start": start, "end": end, "target": target, "estimated": ESTIMATED}
    frame = read_frame(conn, LOADS[kind] + " order by 1", params)
    frame["interval_start"] = pd.to_datetime(frame["interval_start"], utc=True)
    for column in frame.columns.drop(["interval_start", "complete", "estimated"]):
        frame[column] = pd.to_numeric(frame[column]).astype(float)
    return frame.astype({"complete": bool, "estimated": bool})


def live_forecast(conn: connection, kind: str, target: str) -> pd.DataFrame:
    """The latest live forecast of a target: interval_start, p10, p50, p90, issued_at."""
    frame = read_frame(
        conn,
        """select interval_start, p10, p50, p90, issued_at from ml.forecasts
        where run_kind = 'live' and target_kind = %(kind)s and target_id = %(target)s
          and issued_at = (select max(issued_at) from ml.forecasts where run_kind = 'live'
                           and target_kind = %(kind)s and target_id = %(target)s)
        order by interval_start""",
        {"kind": kind, "target": target},
    )
    frame["interval_start"] = pd.to_datetime(frame["interval_start"], utc=True)
    return frame


def anomaly_counts(conn: connection, month: date) -> pd.DataFrame:
    """The month's findings per severity and kind, the most urgent severity first."""
    query = sql.SQL(
        "select severity, kind, count(*) as findings from ml.anomalies where month_start = %s"
        " group by severity, kind order by {rank}, findings desc, kind"
    ).format(rank=SEVERITY_RANK)
    return read_frame(conn, query, (month,))


def anomalies(
    conn: connection,
    month: date,
    kinds: list[str] | None = None,
    severities: list[str] | None = None,
    target: str = "",
) -> tuple[pd.DataFrame, int]:
    """The month's findings matching the filters, the most severe first and the strongest
    within a severity (at most WORK_LIST_ROWS of them), and how many match in all. Empty
    filters match everything; `target` is part of the target's id."""
    query = sql.SQL(
        "select target_kind, target_id, kind, severity, action, interval_start, interval_end,"
        " day, score, detector, reason, count(*) over () as matching from ml.anomalies"
        " where month_start = %(month)s"
        " and (%(kinds)s::text[] is null or kind = any(%(kinds)s::text[]))"
        " and (%(severities)s::text[] is null or severity = any(%(severities)s::text[]))"
        " and position(lower(%(target)s) in lower(target_id)) > 0"
        " order by {rank}, score desc, target_id, interval_start, day limit %(limit)s"
    ).format(rank=SEVERITY_RANK)
    params = {
        "month": month,
        "kinds": kinds or None,
        "severities": severities or None,
        "target": target,
        "limit": WORK_LIST_ROWS,
    }
    frame = read_frame(conn, query, params)
    matching = int(frame["matching"].iat[0]) if len(frame) else 0
    for column in ("interval_start", "interval_end"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame.drop(columns="matching"), matching


def anomaly_kinds(conn: connection, month: date) -> list[str]:
    return read_frame(
        conn, "select distinct kind from ml.anomalies where month_start = %s order by 1", (month,)
    )["kind"].tolist()


def files_since(conn: connection, since: datetime) -> pd.DataFrame:
    """Files processed since `since`, newest first: name, status, rows, months, rule, reason."""
    return read_frame(
        conn,
        """select name, status, rows, array_to_string(months, ', ') as months, rule, reason,
                  processed_at
        from raw.files where processed_at >= %s
        order by processed_at desc, file_id desc""",
        (since,),
    )


def freshness(conn: connection, months: int = 12) -> pd.DataFrame:
    """Per month with loaded files (the latest `months`): files, the last load, the latest
    reading, when the month's run last judged it (its anomalies) and whether that came after
    the last file."""
    frame = read_frame(
        conn,
        """with loaded as (
            select month_start, count(*) as files, max(processed_at) as last_loaded,
                   least(max(last_interval), month_start + interval '1 month') as latest_reading
            from raw.files, unnest(months) as month_start
            where status = 'loaded' group by month_start
            order by month_start desc limit %s)
        select l.month_start, l.files, l.last_loaded, l.latest_reading,
               a.computed_at as rebuilt_at,
               coalesce(a.computed_at >= l.last_loaded, false) as up_to_date
        from loaded l left join ml.anomaly_months a using (month_start)
        order by l.month_start desc""",
        (months,),
    )
    return frame


def feeders(conn: connection) -> list[str]:
    return read_frame(conn, "select feeder from marts.dim_feeder order by feeder")[
        "feeder"
    ].tolist()


def feeder_gaps(conn: connection, feeder: str, month: date) -> pd.DataFrame:
    """Gaps of the feeder's meters that overlap the month, longest first."""
    return read_frame(
        conn,
        """select g.meter_id, g.gap_start, g.gap_end, g.missing_intervals
        from marts.fct_gaps g join marts.dim_meter m using (meter_id)
        where m.feeder = %s and g.gap_start < %s and g.gap_end > %s
        order by g.missing_intervals desc, g.meter_id, g.gap_start""",
        (feeder, next_month(month), month),
    )


def forecast_targets(conn: connection) -> pd.DataFrame:
    """Targets with backtest scores (target_kind, target_id), kinds in a fixed order."""
    return read_frame(
        conn,
        """select target_kind, target_id
        from (select distinct target_kind, target_id from ml.backtest_metrics) t
        order by array_position(array['system', 'feeder', 'meters_total', 'meter'], target_kind),
                 target_id""",
    )


def forecast_vs_actual(conn: connection, kind: str, target: str, month: date) -> pd.DataFrame:
    """The month's forecasts of a target, the latest issue per interval and run kind:
    run_kind, interval_start, p10, p50, p90, actual, baseline."""
    frame = read_frame(
        conn,
        """select distinct on (run_kind, interval_start) run_kind, interval_start,
               p10, p50, p90, actual, baseline
        from ml.forecasts
        where run_kind in ('backtest', 'live') and month_start = %s and target_kind = %s
          and target_id = %s
        order by run_kind, interval_start, issued_at desc""",
        (month, kind, target),
    )
    frame["interval_start"] = pd.to_datetime(frame["interval_start"], utc=True)
    return frame


def backtest_scores(conn: connection, kind: str, target: str) -> pd.DataFrame:
    """A target's backtest scores per month, against the seasonal-naive baseline."""
    return read_frame(
        conn,
        """select month_start, intervals, wape, baseline_wape, mae, baseline_mae, mase,
               coverage_p10_p90
        from ml.backtest_metrics where target_kind = %s and target_id = %s
        order by month_start desc""",
        (kind, target),
    )


def models(conn: connection, limit: int = 50) -> pd.DataFrame:
    """The model registry, newest first (without the boosters). The fallback rule's row, which
    was never trained, records 'epoch' for its times: shown empty, not as 1970."""
    return read_frame(
        conn,
        """select name, model_version, nullif(trained_at, 'epoch') as trained_at,
               nullif(train_start, 'epoch') as train_start,
               nullif(train_end, 'epoch') as train_end, metrics
        from ml.models as m order by m.trained_at desc, m.name limit %s""",
        (limit,),
    )


def find(conn: connection, table: str, text: str, limit: int = FOUND) -> list[str]:
    """Customer ids (`customer`) or meter ids (`meter`) containing `text`, in order."""
    relation, column = {
        "customer": ("marts.dim_customer", "customer_id"),
        "meter": ("marts.dim_meter", "meter_id"),
    }[table]
    query = sql.SQL(
        "select {c} from {t} where position(lower(%s) in lower({c})) > 0 order by {c} limit %s"
    ).format(c=sql.Identifier(column), t=sql.SQL(relation))
    return read_frame(conn, query, (text, limit))[column].tolist()


def customer_behaviour(
    conn: connection, customer: str, month: date, window_length: str
) -> pd.DataFrame:
    """The customer's windows (day, week or month) that start in the month, from
    marts.customer_behavior."""
    return read_frame(
        conn,
        """select window_start_local, max_kw, mean_kw, total_kwh, peak_hour, load_factor,
               base_load_kw, weekday_mean_kw, weekend_mean_kw, night_share
        from marts.customer_behavior
        where customer_id = %s and window_length = %s and window_start >= %s
          and window_start < %s
        order by window_start""",
        (customer, window_length, month, next_month(month)),
    )


def customer_profile(conn: connection, customer: str, month: date) -> pd.DataFrame:
    """Mean kW by local hour, weekdays and weekends (marts.customer_hourly_profile)."""
    frame = read_frame(
        conn,
        """select day_type, hour, mean_kw from marts.customer_hourly_profile
        where customer_id = %s and month_start = %s order by day_type, hour""",
        (customer, month),
    )
    frame["mean_kw"] = frame["mean_kw"].astype(float)
    return frame


def segment_centroids(conn: connection, month: date) -> pd.DataFrame:
    """The month's segment shapes: segment, hour, share of daily energy, customers."""
    return read_frame(
        conn,
        """select segment, hour, share, customers from ml.segment_centroids
        where month_start = %s order by segment, hour""",
        (month,),
    )


def segment_sizes(conn: connection, month: date, months: int = 12) -> pd.DataFrame:
    """Customers per segment for the `months` months up to `month` (near-empty ones too)."""
    return read_frame(
        conn,
        """select month_start, segment, count(*) as customers from ml.customer_segments
        where month_start > %s and month_start <= %s group by 1, 2 order by 1, 2""",
        (month - timedelta(days=31 * months), month),
    )


def segment_members(conn: connection, month: date) -> pd.DataFrame:
    """Each customer's segment in the month (`segments.store.NEAR_EMPTY_SEGMENT`: set apart
    as near-empty)."""
    return read_frame(
        conn,
        """select customer_id, segment from ml.customer_segments where month_start = %s
        order by customer_id""",
        (month,),
    )


def tariff_usage(conn: connection, first: date, last: date) -> pd.DataFrame:
    """marts.usage_by_tariff for the months first..last."""
    frame = read_frame(
        conn,
        """select tariff, month_start_local::date as month, customers, total_kwh,
               mean_kwh_per_customer, mean_peak_kw, mean_night_share
        from marts.usage_by_tariff
        where month_start_local >= %s and month_start_local < %s
        order by month, tariff""",
        (first, next_month(last)),
    )
    for column in ("total_kwh", "mean_kwh_per_customer", "mean_peak_kw", "mean_night_share"):
        frame[column] = pd.to_numeric(frame[column]).astype(float)
    return frame


def completeness(conn: connection, first: date, last: date) -> pd.DataFrame:
    """Mean daily completeness per meter and month (0-1) over the months first..last."""
    frame = read_frame(
        conn,
        """select d.meter_id, coalesce(m.feeder, '') as feeder,
               date_trunc('month', d.day_start at time zone 'UTC')::date as month,
               avg(d.completeness) as completeness
        from marts.fct_meter_daily d left join marts.dim_meter m using (meter_id)
        where d.day_start >= %s and d.day_start < %s
        group by 1, 2, 3 order by 1, 3""",
        (first, next_month(last)),
    )
    frame["completeness"] = frame["completeness"].astype(float)
    return frame
