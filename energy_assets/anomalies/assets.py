"""The monthly anomalies asset: every detector over the month, its findings stored and shaded
on the load curves."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue

from energy_assets.anomalies.detectors import month_findings
from energy_assets.anomalies.store import meter_feeders, month_inputs, store_findings
from energy_assets.partitions import monthly_asset, months_in
from energy_assets.plots.charts import inline_png, render_anomaly_plots
from energy_assets.resources import Platform


@monthly_asset(
    ["ml", "anomalies"],
    deps=[
        ["marts", "fct_intervals_clean"],
        ["marts", "fct_feeder_intervals"],
        ["ml", "forecast_backtest"],
    ],
    description="Anomalies per meter and feeder: rule checks (flatline, dropout to zero, spike, "
    "off-peak spike, reverse flow, level shift, sign flip, multiplier / CT ratio error, clock "
    "shift, stale copy, silent meter), an IsolationForest over daily load shapes, persistent "
    "day-ahead backtest residuals and the gaps, in ml.anomalies with a reason, a severity, an "
    "action and the detector's numbers each.",
)
def anomalies(context: AssetExecutionContext, platform: Platform) -> MaterializeResult:
    settings = platform.settings()
    tz = settings.default_timezone
    summary: dict = {}
    metadata: dict = {}
    with platform.connection() as conn:
        feeders_of = meter_feeders(conn)
    for month, following in months_in(context.partition_time_window):
        with platform.connection() as conn:
            inputs = month_inputs(conn, month, following)
        found = month_findings(
            inputs, month, following, tz, settings.anomaly, settings.anomaly_workers
        )
        loads = inputs.loads(month)
        intervals = len(loads["meters"]) + len(loads["feeders"])
        with platform.connection() as conn:
            rate = store_findings(conn, month, found, intervals)
        key = f"{month:%Y-%m}"
        summary[key] = {
            "intervals": intervals,
            "findings": len(found),
            "per_1000_intervals": None if rate is None else round(rate, 3),
            "by_kind": found["kind"].value_counts().to_dict(),
        }
        if intervals:
            folder = settings.home / "plots" / "anomalies" / key
            paths = render_anomaly_plots(found, loads, feeders_of, month, folder, tz)
            metadata["plot_path"] = MetadataValue.path(str(paths[-1]))
            metadata["plot"] = MetadataValue.md(
                inline_png(paths[-1], "anomalies on the load curve")
            )
    metadata["months"] = MetadataValue.json(summary)
    return MaterializeResult(metadata=metadata)
