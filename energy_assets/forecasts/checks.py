"""The data-sufficiency check: which targets of a month were forecast by the 4-week same-slot
mean instead of the model, and why (their verdicts in ml.backtest_metrics)."""

from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetCheckSeverity

from energy_assets.forecasts.store import month_verdicts
from energy_assets.partitions import monthly_asset_check, months_in
from energy_assets.resources import Platform

SHOWN = 20  # targets named per verdict and month


@monthly_asset_check(
    ["ml", "forecast_backtest"],
    description="Warns when a target of the month had too little, too incomplete or flat "
    "history (insufficient_history, completeness, flatline) and got the 4-week same-slot mean "
    "instead of the model; the metadata counts the verdicts and names the targets.",
)
def forecast_data_sufficient(
    context: AssetCheckExecutionContext, platform: Platform
) -> AssetCheckResult:
    metadata, fallbacks = {}, 0
    for month, _ in months_in(context.partition_time_window):
        with platform.connection() as conn:
            verdicts = month_verdicts(conn, month)
        for verdict, rows in verdicts.groupby("verdict"):
            targets = [
                f"{k} {t}" for k, t in zip(rows["target_kind"], rows["target_id"], strict=True)
            ]
            named = ", ".join(targets[:SHOWN]) + (" ..." if len(targets) > SHOWN else "")
            metadata[f"{month:%Y-%m} {verdict}"] = f"{len(targets)}: {named}"
            fallbacks += len(targets) * (verdict != "ok")
    return AssetCheckResult(
        passed=fallbacks == 0, severity=AssetCheckSeverity.WARN, metadata=metadata
    )
