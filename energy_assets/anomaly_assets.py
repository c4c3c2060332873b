"""The monthly anomalies asset, its anomaly-rate check and the plots marking what it found."""

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    MetadataValue,
    asset_check,
)

from energy_assets import warehouse
from energy_assets.anomalies import (
    FINDING_COLUMNS,
    find_anomalies,
    forecast_residuals,
    gap_findings,
    within,
)
from energy_assets.ml import image_markdown, read_frame
from energy_assets.partitions import monthly_asset, monthly_partitions, months_in
from energy_assets.plot_assets import file_name
from energy_assets.plots import LOAD_COLOUR, _figure, _save
from energy_assets.resources import Platform

HISTORY = timedelta(days=28)  # read before the month, for the detectors' baselines
RATE_CEILING = 20.0  # findings per 1000 intervals that warn when no earlier month compares
MIN_MONTHS = 3  # earlier months needed before the rate is judged against them

METERS = """
select meter_id as target_id, interval_start, interval_end,
       coalesce(kw_net, demand_kw) as value, coalesce(kw_del, demand_kw) as delivered
from marts.fct_intervals_clean where interval_start >= %s and interval_start < %s
"""
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
where run_kind = 'backtest' and month_start = %s
"""
COLUMNS = ["month_start", "target_kind", *FINDING_COLUMNS]


def _series(url: str, query: str, month: date, following: date) -> pd.DataFrame:
    frame = read_frame(url, query, (month - HISTORY, following))
    for column in ("value", "delivered"):
        if column in frame:
            frame[column] = frame[column].astype("float64")
    return frame


def month_findings(url: str, month: date, following: date, tz: str) -> tuple[pd.DataFrame, dict]:
    """Every detector over one month: meters and feeders by the rules and the forest, meter
    gaps from marts.fct_gaps, backtest residuals from ml.forecasts. Also the load curves."""
    start, end = (pd.Timestamp(d, tz="UTC") for d in (month, following))
    meters = _series(url, METERS, month, following)
    feeders = _series(url, FEEDERS, month, following)
    parts = [
        find_anomalies(meters, start, end, tz=tz).assign(target_kind="meter"),
        find_anomalies(feeders, start, end, tz=tz).assign(target_kind="feeder"),
        within(gap_findings(read_frame(url, GAPS, (following, month))), start, end, tz).assign(
            target_kind="meter"),
        within(forecast_residuals(read_frame(url, FORECASTS, (month,))), start, end, tz),
    ]  # fmt: skip
    found = [p for p in parts if not p.empty] or [pd.DataFrame(columns=COLUMNS[1:])]
    found = pd.concat(found, ignore_index=True)
    found = found.reindex(columns=COLUMNS[1:]).assign(month_start=month)[COLUMNS]
    in_month = {
        name: frame[frame["interval_start"] >= start]
        for name, frame in (("meters", meters), ("feeders", feeders))
    }
    return found, in_month


def store_findings(url: str, month: date, found: pd.DataFrame, intervals: int) -> float | None:
    """Replace the month's findings (its own list partition) and its rate in one transaction."""
    rate = 1000 * len(found) / intervals if intervals else None
    conn = warehouse.connect(url)
    try:
        with conn, conn.cursor() as cur:  # short: creating a partition locks the parent table
            cur.execute(
                f"create table if not exists ml.anomalies_{month:%Y_%m} partition of ml.anomalies"
                " for values in (%s)",
                (month,),
            )
        with conn, conn.cursor() as cur:
            cur.execute("delete from ml.anomalies where month_start = %s", (month,))
            if not found.empty:
                days = [d if isinstance(d, date) else None for d in found["day"]]
                warehouse.copy_frame(cur, "ml.anomalies", found.assign(day=days))
            cur.execute(
                "insert into ml.anomaly_months (month_start, intervals, findings, rate)"
                " values (%s, %s, %s, %s) on conflict (month_start) do update set"
                " intervals = excluded.intervals, findings = excluded.findings,"
                " rate = excluded.rate, computed_at = now()",
                (month, intervals, len(found), rate),
            )
    finally:
        conn.close()
    return rate


def finding_spans(found: pd.DataFrame, tz: str) -> list[tuple[pd.Timestamp, pd.Timestamp, str]]:
    """(start, end, kind) of each finding on the time axis; a day finding spans its local day."""
    spans = []
    for row in found.itertuples(index=False):
        if pd.notna(row.interval_start):
            spans.append((row.interval_start, row.interval_end, row.kind))
        else:
            day = pd.Timestamp(str(row.day)).tz_localize(tz).tz_convert("UTC")
            spans.append((day, day + pd.Timedelta(days=1), row.kind))
    return spans


def plot_anomalies(load: pd.Series, spans: list, title: str, path: Path, unit: str) -> Path:
    """The load curve with each finding shaded in its kind's colour (legend: kind and count)."""
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(load.index, load.to_numpy(), color=LOAD_COLOUR, linewidth=0.8, label="Net load")
    kinds = sorted({kind for _, _, kind in spans})
    colours = {kind: f"C{i + 1}" for i, kind in enumerate(kinds)}  # C0 is the load curve
    for kind in kinds:
        mine = [(a, b) for a, b, k in spans if k == kind]
        for a, b in mine:
            ax.axvspan(a, max(b, a + pd.Timedelta(minutes=30)), color=colours[kind], alpha=0.3,
                       linewidth=0)  # fmt: skip
        ax.axvspan(mine[0][0], mine[0][0], color=colours[kind], alpha=0.3,
                   label=f"{kind} ({len(mine)})")  # fmt: skip
    ax.set(title=title, xlabel="Time (UTC)", ylabel=f"Net load ({unit})")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.autofmt_xdate()
    return _save(fig, path)


def render_anomaly_plots(
    found: pd.DataFrame, loads: dict[str, pd.DataFrame], meter_feeders: dict, month: date,
    folder: Path, tz: str,
) -> list[Path]:  # fmt: skip
    """Per feeder (its own findings and its meters') and for the system; without feeders, the
    total of all meters. The system picture is last."""
    feeders, meters = loads["feeders"], loads["meters"]
    paths = []
    for feeder, rows in feeders.groupby("target_id"):
        mine = found[((found["target_kind"] == "feeder") & (found["target_id"] == feeder))
                     | found["target_id"].map(meter_feeders).eq(feeder)]  # fmt: skip
        load = pd.Series(rows["value"].to_numpy() / 1000, index=rows["interval_start"])
        paths.append(plot_anomalies(load, finding_spans(mine, tz), f"Feeder {feeder}, anomalies,"
                                    f" {month:%B %Y}", folder / f"{file_name(str(feeder))}.png",
                                    "MW"))  # fmt: skip
    source, unit, title = (feeders, "MW", "System") if not feeders.empty else (meters, "kW",
                                                                              "All meters")
    total = source.groupby("interval_start")["value"].sum(min_count=1)
    if unit == "MW":
        total = total / 1000
    paths.append(plot_anomalies(total.sort_index(), finding_spans(found, tz),
                                f"{title}, anomalies, {month:%B %Y}", folder / "all.png", unit))
    return paths


@monthly_asset(
    ["ml", "anomalies"],
    deps=[["marts", "fct_intervals_clean"], ["marts", "fct_feeder_intervals"],
          ["ml", "forecast_backtest"]],  # fmt: skip
    description="Anomalies per meter and feeder: rule checks (flatline, dropout to zero, spike, "
    "off-peak spike, reverse flow, level shift, sign flip), an IsolationForest over daily load "
    "shapes, day-ahead backtest residuals and the gaps, in ml.anomalies with a reason each.",
)
def anomalies(context: AssetExecutionContext, platform: Platform) -> MaterializeResult:
    settings = platform.settings()
    url, tz = platform.warehouse_url, settings.default_timezone
    summary: dict = {}
    metadata: dict = {}
    meter_feeders = dict(read_frame(url, "select meter_id, feeder from raw.meters", ()).values)
    for month, following in months_in(context.partition_time_window):
        found, loads = month_findings(url, month, following, tz)
        intervals = len(loads["meters"]) + len(loads["feeders"])
        rate = store_findings(url, month, found, intervals)
        key = f"{month:%Y-%m}"
        summary[key] = {
            "intervals": intervals, "findings": len(found),
            "per_1000_intervals": None if rate is None else round(rate, 3),
            "by_kind": found["kind"].value_counts().to_dict(),
        }  # fmt: skip
        if intervals:
            paths = render_anomaly_plots(found, loads, meter_feeders, month,
                                         settings.home / "plots" / "anomalies" / key, tz)
            metadata["plot_path"] = MetadataValue.path(str(paths[-1]))
            metadata["plot"] = image_markdown(paths[-1], "anomalies on the load curve")
    metadata["months"] = MetadataValue.json(summary)
    return MaterializeResult(metadata=metadata)


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
    return low <= rate <= high, (f"{rate:.2f} per 1000 intervals, usual range "
                                 f"{max(low, 0):.2f}..{high:.2f} over {len(earlier)} months")


@asset_check(
    asset=AssetKey(["ml", "anomalies"]),
    partitions_def=monthly_partitions,
    description="Warns when a month's anomaly rate (findings per 1000 intervals) falls outside "
    "the usual range of the months before it.",
)
def anomaly_rate_usual(
    context: AssetCheckExecutionContext, platform: Platform
) -> AssetCheckResult:
    rates = read_frame(platform.warehouse_url,
                       "select month_start, rate from ml.anomaly_months order by month_start", ())
    rates = dict(zip(rates["month_start"], rates["rate"], strict=True))
    verdicts = {}
    for month, _ in months_in(context.partition_time_window):
        earlier = [r for m, r in rates.items() if m < month and r is not None]
        verdicts[f"{month:%Y-%m}"] = rate_verdict(rates.get(month), earlier)
    return AssetCheckResult(
        passed=all(ok for ok, _ in verdicts.values()),
        severity=AssetCheckSeverity.WARN,
        metadata={month: text for month, (_, text) in verdicts.items()},
    )
