"""Forecast assets: the monthly day-ahead backtest, the live next-day forecast and its schedule.

Targets come from the marts: every feeder (MW), the system (MW), the sum of the meters that
belong to no feeder (kW, e.g. households) and every meter (kW). Weather is the hourly mean of
each `raw.weather` variable over all sites.
"""

from datetime import date, timedelta

import pandas as pd
import psycopg2
from dagster import (
    AssetExecutionContext,
    AssetKey,
    DefaultScheduleStatus,
    MaterializeResult,
    MetadataValue,
    ScheduleDefinition,
    asset,
    define_asset_job,
)

from energy_assets import warehouse
from energy_assets.backtest import (
    METRIC_COLUMNS,
    ForecastConfig,
    Forecasts,
    backtest,
    backtest_sample,
)
from energy_assets.backtest import live_forecast as forecast_next_day
from energy_assets.forecasting import WEATHER_PREFIX, forecast_metrics
from energy_assets.ml import image_markdown, read_frame
from energy_assets.partitions import monthly_asset, months_in
from energy_assets.plot_assets import file_name
from energy_assets.plots import forecast_band
from energy_assets.resources import Platform
from energy_assets.settings import Settings

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
MARTS = [
    ["marts", "fct_intervals_clean"], ["marts", "fct_feeder_intervals"],
    ["marts", "fct_system_intervals"],
]  # fmt: skip
PLOTTED_KINDS = ("feeder", "system", "meters_total")


def read_series(
    url: str, kind: str, start: pd.Timestamp, end: pd.Timestamp, targets: list[str] | None = None
) -> pd.DataFrame:
    """One kind's targets over [start, end) as a long frame, with weather_* columns; meters
    only those in `targets` when given."""
    window = {"start": start, "end": end}
    series = read_frame(url, TARGETS[kind][0], {**window, "targets": targets})
    series["interval_start"] = pd.to_datetime(series["interval_start"], utc=True)
    for column in series.columns.drop(["target_id", "interval_start"]):
        series[column] = pd.to_numeric(series[column]).astype(float)
    weather = read_frame(url, WEATHER, window)
    if not weather.empty:
        weather["hour"] = pd.to_datetime(weather["hour"], utc=True)
        wide = weather.pivot(index="hour", columns="variable", values="value").astype(float)
        hours = series["interval_start"].dt.floor("h")
        for variable in wide.columns:
            series[WEATHER_PREFIX + variable] = wide[variable].reindex(hours).to_numpy()
    return series


def _rows(result: Forecasts, run_kind: str, month: date, kind: str) -> pd.DataFrame:
    """Forecasts as ml.forecasts rows, columns in table order for COPY."""
    rows = result.rows
    seconds = (rows["interval_start"] - rows["issued_at"]).dt.total_seconds()
    return pd.DataFrame({
        "run_kind": run_kind, "month_start": month, "target_kind": kind,
        "target_id": rows["target_id"].astype(str), "issued_at": rows["issued_at"],
        "interval_start": rows["interval_start"],
        "horizon": seconds.astype("int64").astype(str) + " seconds",  # an interval literal
        "p10": rows["p10"], "p50": rows["p50"], "p90": rows["p90"],
        "actual": rows["actual"], "baseline": rows["baseline"],
        "model_version": rows["model_version"],
    })  # fmt: skip


def _store_models(cur, result: Forecasts) -> None:
    for m in result.models:
        cur.execute(
            "insert into ml.models values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "on conflict (model_version) do nothing",
            (m.version, m.name, m.target_kind, m.resolution.to_pytimedelta(), m.trained_at,
             m.train_start, m.train_end, m.model.features,
             psycopg2.extras.Json(m.model.booster.save_config()),
             psycopg2.extras.Json(m.calibration), psycopg2.Binary(m.booster_bytes)),
        )  # fmt: skip


def store_backtest(url: str, month: date, kind: str, result: Forecasts) -> None:
    """Replace the month's backtest forecasts and scores of one target kind, in one transaction."""
    conn = warehouse.connect(url)
    try:
        with conn, conn.cursor() as cur:
            _store_models(cur, result)
            key = (month, kind)
            cur.execute("delete from ml.forecasts where run_kind = 'backtest' "
                        "and month_start = %s and target_kind = %s", key)  # fmt: skip
            cur.execute("delete from ml.backtest_metrics where month_start = %s "
                        "and target_kind = %s", key)  # fmt: skip
            if result.rows.empty:
                return
            warehouse.copy_frame(cur, "ml.forecasts", _rows(result, "backtest", month, kind))
            metrics = result.metrics.assign(month_start=month, target_kind=kind)
            columns = ["month_start", "target_kind", "target_id", *METRIC_COLUMNS]
            warehouse.copy_frame(cur, "ml.backtest_metrics", metrics[columns])
    finally:
        conn.close()


def store_live(url: str, kind: str, result: Forecasts) -> None:
    """Add a live forecast; re-issuing the same forecast replaces it."""
    if result.rows.empty:
        return
    issued = result.rows["issued_at"].iloc[0]
    month = result.rows["interval_start"].min().date().replace(day=1)
    conn = warehouse.connect(url)
    try:
        with conn, conn.cursor() as cur:
            _store_models(cur, result)
            cur.execute("delete from ml.forecasts where run_kind = 'live' and target_kind = %s "
                        "and issued_at = %s", (kind, issued))  # fmt: skip
            warehouse.copy_frame(cur, "ml.forecasts", _rows(result, "live", month, kind))
    finally:
        conn.close()


def local_days(month: date, following: date) -> list[date]:
    return [month + timedelta(days=k) for k in range((following - month).days)]


def kind_summary(result: Forecasts) -> dict:
    """Pooled scores of one kind: WAPE of model and baseline, coverage."""
    if result.rows.empty:
        return {}
    rows = result.rows.dropna(subset=["actual", "p10", "p50", "p90", "baseline"])
    if rows.empty:
        return {}
    m = forecast_metrics(rows["actual"], rows["p10"], rows["p50"], rows["p90"], rows["baseline"],
                         1.0)  # fmt: skip
    return {"targets": int(rows["target_id"].nunique()),
            **{k: round(m[k], 4) for k in ("wape", "baseline_wape", "coverage_p10_p90")}}


def plot_last_week(result: Forecasts, kind: str, month: date, settings: Settings) -> list:
    """Forecast vs actual with the P10-P90 band over the backtest's last week, per target."""
    rows = result.rows
    last_week = rows[rows["issued_at"] > rows["issued_at"].max() - pd.Timedelta(days=7)]
    paths = []
    for target, r in last_week.groupby("target_id"):
        times = r["interval_start"].dt.tz_convert(settings.default_timezone)
        local = r.assign(interval_start=times)
        folder = settings.home / "plots" / "forecasts" / f"{month:%Y-%m}"
        paths.append(forecast_band(
            local, f"Day-ahead forecast, {kind} {target}, last week of {month:%B %Y}",
            folder / f"{kind}-{file_name(str(target))}.png", TARGETS[kind][1],
        ))  # fmt: skip
    return paths


@monthly_asset(
    ["ml", "forecast_backtest"],
    deps=MARTS,
    description="Rolling-origin day-ahead backtest over the month: P10/P50/P90 forecasts issued "
    "at the cutoff before each day, retrained weekly on earlier data only, in ml.forecasts; "
    "scores against the seasonal-naive forecast in ml.backtest_metrics; models in ml.models. "
    "Feeders, system and meter total in full; single meters as a fixed sample of "
    "ENERGY_BACKTEST_METERS (default 50, or all).",
)
def forecast_backtest(context: AssetExecutionContext, platform: Platform) -> MaterializeResult:
    settings = platform.settings()
    if not settings.forecasts:
        return MaterializeResult(metadata={"scores": "forecasts are off (ENERGY_FORECASTS)"})
    config = ForecastConfig.from_env(settings.default_timezone)
    summary: dict = {}
    plots: list = []
    for month, following in months_in(context.partition_time_window):
        days = local_days(month, following)
        start = config.history_needed(days[0])
        end = config.issue_time(days[-1]) + pd.Timedelta(days=3)
        for kind in TARGETS:
            sample = None
            if kind == "meter" and config.backtest_meters is not None:
                meters = read_frame(platform.warehouse_url, METERS, {"start": start, "end": end})
                sample = backtest_sample(meters["meter_id"].tolist(), config.backtest_meters)
            series = read_series(platform.warehouse_url, kind, start, end, sample)
            result = backtest(series, kind, days, config)
            store_backtest(platform.warehouse_url, month, kind, result)
            summary[f"{month:%Y-%m} {kind}"] = kind_summary(result)
            context.log.info(f"{month:%Y-%m} {kind}: {len(result.rows)} forecasts, "
                             f"{len(result.models)} models")  # fmt: skip
            if kind in PLOTTED_KINDS and not result.rows.empty:
                plots += plot_last_week(result, kind, month, settings)
    metadata = {"scores": MetadataValue.json(summary)}
    for path in plots[-4:]:  # the last month's feeders, system and meter total
        metadata[f"plot {path.stem}"] = image_markdown(path, path.stem)
    return MaterializeResult(metadata=metadata)


@asset(
    key=AssetKey(["ml", "day_ahead_forecast"]),
    deps=[AssetKey(dep) for dep in MARTS],
    group_name="ml",
    description="The live forecast: P10/P50/P90 for the next day of every target, issued at the "
    "first cutoff after the latest data, by a model trained on everything before it.",
)
def day_ahead_forecast(context: AssetExecutionContext, platform: Platform) -> MaterializeResult:
    settings = platform.settings()
    if not settings.forecasts:
        return MaterializeResult(metadata={"forecasts": "forecasts are off (ENERGY_FORECASTS)"})
    config = ForecastConfig.from_env(settings.default_timezone)
    latest = read_frame(
        platform.warehouse_url,
        "select max(interval_start) as latest from marts.fct_intervals_clean "
        "where quality = 'ok'",
        {},
    )["latest"].iloc[0]
    if latest is None or pd.isna(latest):
        return MaterializeResult(metadata={"forecasts": "no data yet"})
    end = pd.Timestamp(latest).tz_convert("UTC") + pd.Timedelta(days=3)
    start = config.history_needed(end.date())
    issued = {}
    for kind in TARGETS:
        result = forecast_next_day(read_series(platform.warehouse_url, kind, start, end), kind,
                                   config)  # fmt: skip
        store_live(platform.warehouse_url, kind, result)
        if not result.rows.empty:
            first = result.rows["issued_at"].iloc[0]
            issued[kind] = {"issued_at": first.isoformat(),
                            "targets": int(result.rows["target_id"].nunique())}  # fmt: skip
        context.log.info(f"{kind}: {len(result.rows)} live forecasts")
    return MaterializeResult(metadata={"forecasts": MetadataValue.json(issued)})


day_ahead_job = define_asset_job(
    "day_ahead_job", selection=[day_ahead_forecast]
)
day_ahead_schedule = ScheduleDefinition(
    name="day_ahead_daily",
    job=day_ahead_job,
    cron_schedule="15 0 * * *",  # just after the default 00:00 cutoff
    execution_timezone=Settings.from_env().default_timezone,
    default_status=DefaultScheduleStatus.RUNNING,
)
