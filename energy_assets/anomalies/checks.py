"""The anomaly-rate check: a month whose findings per 1000 intervals leave the usual range
warns, so a broken detector or a broken month stands out without reading every finding."""

import numpy as np
from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetCheckSeverity

from energy_assets.anomalies.store import anomaly_rates
from energy_assets.partitions import monthly_asset_check, months_in
from energy_assets.resources import Platform

RATE_CEILING = 20.0  # findings per 1000 intervals that warn when no earlier month compares
MIN_MONTHS = 3  # earlier months needed before the rate is judged against them


def rate_verdict(rate: float | None, earlier: list[float]) -> tuple[bool, str]:
    """Is a month's rate (findings per 1000 intervals) within the usual range of earlier months
    (median +- 3 MAD; a MAD floor of 10% of the median keeps steady histories from warning on
    noise), or under RATE_CEILING while fewer than MIN_MONTHS months compare?"""
    if rate is None:
        return True, "no intervals"
    if len(earlier) < MIN_MONTHS:
        return rate <= RATE_CEILING, f"{rate:.2f} per 1000 intervals (ceiling {RATE_CEILING:g})"
    median = float(np.median(earlier))
    mad = max(float(np.median(np.abs(np.asarray(earlier) - median))), 0.1 * median, 0.05)
    low, high = median - 3 * mad, median + 3 * mad
    usual = f"usual range {max(low, 0):.2f}..{high:.2f} over {len(earlier)} months"
    return low <= rate <= high, f"{rate:.2f} per 1000 intervals, {usual}"


@monthly_asset_check(
    ["ml", "anomalies"],
    description="Warns when a month's anomaly rate (findings per 1000 intervals) falls outside "
    "the usual range of the months before it.",
)
def anomaly_rate_usual(context: AssetCheckExecutionContext, platform: Platform) -> AssetCheckResult:
    with platform.connection() as conn:
        rates = anomaly_rates(conn)
    verdicts = {}
    for month, _ in months_in(context.partition_time_window):
        earlier = [r for m, r in rates.items() if m < month and r is not None]
        verdicts[f"{month:%Y-%m}"] = rate_verdict(rates.get(month), earlier)
    return AssetCheckResult(
        passed=all(ok for ok, _ in verdicts.values()),
        severity=AssetCheckSeverity.WARN,
        metadata={month: text for month, (_, text) in verdicts.items()},
    )
