"""Forecast assets: the monthly backtest of the forecast product and the live forecast."""

from dagster import (
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    MetadataValue,
    asset,
)

from energy_assets.forecasts.day_ahead import (
    LOOKAHEAD,
    ForecastConfig,
    Forecasts,
    backtest,
    backtest_sample,
    kind_summary,
    live_forecast,
)
from energy_assets.forecasts.store import (
    TARGETS,
    feeder_count,
    latest_reading,
    live_series,
    meters_between,
    read_series,
    read_weather,
    store_backtest,
    store_live,
    target_timezones,
)
from energy_assets.months import days_between
from energy_assets.partitions import monthly_asset, months_in
from energy_assets.plots.charts import inline_png, plot_last_week
from energy_assets.resources import Platform

MARTS = [
    ["marts", "fct_intervals_clean"],
    ["marts", "fct_feeder_intervals"],
    ["marts", "fct_system_intervals"],
    ["marts", "fct_meters_total_intervals"],
]
PLOTTED_KINDS = ("feeder", "system", "meters_total")
OFF = "forecasts are off (ENERGY_FORECASTS)"


@monthly_asset(
    ["ml", "forecast_backtest"],
    deps=MARTS,
    description="Rolling-origin backtest of the forecast product (ENERGY_FORECAST_ISSUE) over "
    "the month: P10/P50/P90 forecasts issued as they would have been, by models retrained "
    "weekly on earlier data only, in ml.forecasts; scores against the seasonal-naive forecast "
    "and the 4-week same-slot mean, each target's data verdict and the weather's source in "
    "ml.backtest_metrics; models in ml.models. Feeders, system and meter total in full; single "
    "meters as a fixed sample of ENERGY_BACKTEST_METERS (default 50, or all).",
)
def forecast_backtest(context: AssetExecutionContext, platform: Platform) -> MaterializeResult:
    settings = platform.settings()
    if not settings.forecasts:
        return MaterializeResult(metadata={"scores": OFF})
    config = ForecastConfig.from_settings(settings)
    summary: dict = {}
    plots: list = []
    for month, following in months_in(context.partition_time_window):
        days = days_between(month, following)
        start = config.history_needed(days[0])
        end = config.product.issues_on(days[-1], config.tz)[-1].end + LOOKAHEAD
        with platform.connection() as conn:
            weather = read_weather(conn, start, end)
            single_feeder = feeder_count(conn) == 1
        results: dict[str, Forecasts] = {}
        for kind in TARGETS:
            if kind == "system" and single_feeder and "feeder" in results:
                result = results["feeder"].relabelled("system", "system")  # the same series
            else:
                with platform.connection() as conn:
                    sample = None
                    if kind == "meter":  # the meters with readings to be forecast this month
                        first = config.product.issues_on(days[0], config.tz)[0].start
                        meters = meters_between(conn, first, end)
                        sample = backtest_sample(meters, config.backtest_meters) or meters
                    series = read_series(conn, kind, start, end, sample)
                    zones = target_timezones(conn, kind)
                result = backtest(series, kind, days, config, weather, zones)
            results[kind] = result
            with platform.connection() as conn:
                store_backtest(conn, month, kind, result)
            summary[f"{month:%Y-%m} {kind}"] = kind_summary(result)
            context.log.info(
                f"{month:%Y-%m} {kind}: {len(result.rows)} forecasts, {len(result.models)} models"
            )
            if kind in PLOTTED_KINDS and not result.rows.empty:
                title = f"Forecast, {kind} {{target}}, last week of {month:%B %Y}"
                folder = settings.home / "plots" / "forecasts" / f"{month:%Y-%m}"
                unit = TARGETS[kind][1]
                plots += plot_last_week(result.rows, title, folder, kind, config.tz, unit)
    metadata = {"scores": MetadataValue.json(summary)}
    for path in plots[-4:]:  # the last month's feeders, system and meter total
        metadata[f"plot {path.stem}"] = MetadataValue.md(inline_png(path, path.stem))
    return MaterializeResult(metadata=metadata)


@asset(
    key=AssetKey(["ml", "day_ahead_forecast"]),
    deps=[AssetKey(dep) for dep in MARTS],
    group_name="ml",
    description="The live forecast: P10/P50/P90 for the product's next window after the latest "
    "reading of every target (ENERGY_FORECAST_ISSUE), by a model trained on everything before "
    "its issue; the meters' model on the backtest's fixed sample of meters "
    "(ENERGY_BACKTEST_METERS), as the backtest judged it.",
)
def day_ahead_forecast(context: AssetExecutionContext, platform: Platform) -> MaterializeResult:
    settings = platform.settings()
    if not settings.forecasts:
        return MaterializeResult(metadata={"forecasts": OFF})
    config = ForecastConfig.from_settings(settings)
    with platform.connection() as conn:
        latest = latest_reading(conn)
    if latest is None:
        return MaterializeResult(metadata={"forecasts": "no data yet"})
    end = latest + LOOKAHEAD
    start = config.history_needed(end.date())
    with platform.connection() as conn:
        weather = read_weather(conn, start, end)
    issued = {}
    for kind in TARGETS:
        with platform.connection() as conn:
            series, sample = live_series(conn, kind, config, latest, start, end)
            zones = target_timezones(conn, kind)
        result = live_forecast(series, kind, config, weather, zones, sample)
        with platform.connection() as conn:
            store_live(conn, kind, result)
        if not result.rows.empty:
            first = result.rows["issued_at"].iloc[0]
            issued[kind] = {
                "issued_at": first.isoformat(),
                "targets": int(result.rows["target_id"].nunique()),
            }
        context.log.info(f"{kind}: {len(result.rows)} live forecasts")
    return MaterializeResult(metadata={"forecasts": MetadataValue.json(issued)})
