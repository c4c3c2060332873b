"""Forecast assets: the monthly day-ahead backtest and the live next-day forecast."""

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
    backtest,
    backtest_sample,
    kind_summary,
    live_forecast,
)
from energy_assets.forecasts.store import (
    TARGETS,
    latest_reading,
    meters_between,
    read_series,
    store_backtest,
    store_live,
)
from energy_assets.months import days_between
from energy_assets.partitions import monthly_asset, months_in
from energy_assets.plots.charts import inline_png, plot_last_week
from energy_assets.resources import Platform

MARTS = [
    ["marts", "fct_intervals_clean"],
    ["marts", "fct_feeder_intervals"],
    ["marts", "fct_system_intervals"],
]
PLOTTED_KINDS = ("feeder", "system", "meters_total")
OFF = "forecasts are off (ENERGY_FORECASTS)"


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
        return MaterializeResult(metadata={"scores": OFF})
    config = ForecastConfig.from_settings(settings)
    summary: dict = {}
    plots: list = []
    for month, following in months_in(context.partition_time_window):
        days = days_between(month, following)
        start = config.history_needed(days[0])
        end = config.issue_time(days[-1]) + LOOKAHEAD
        for kind in TARGETS:
            with platform.connection() as conn:
                sample = None
                if kind == "meter" and config.backtest_meters is not None:
                    sample = backtest_sample(
                        meters_between(conn, start, end), config.backtest_meters
                    )
                series = read_series(conn, kind, start, end, sample)
            result = backtest(series, kind, days, config)
            with platform.connection() as conn:
                store_backtest(conn, month, kind, result)
            summary[f"{month:%Y-%m} {kind}"] = kind_summary(result)
            context.log.info(
                f"{month:%Y-%m} {kind}: {len(result.rows)} forecasts, {len(result.models)} models"
            )
            if kind in PLOTTED_KINDS and not result.rows.empty:
                title = f"Day-ahead forecast, {kind} {{target}}, last week of {month:%B %Y}"
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
    description="The live forecast: P10/P50/P90 for the next day of every target, issued at the "
    "first cutoff after the latest data, by a model trained on everything before it.",
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
    issued = {}
    for kind in TARGETS:
        with platform.connection() as conn:
            series = read_series(conn, kind, start, end)
        result = live_forecast(series, kind, config)
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
