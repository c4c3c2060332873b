"""Monthly plot assets: feeder and system load profiles, the system heat map, customer patterns.

PNGs land under `$ENERGY_HOME/plots/<kind>/<YYYY-MM>/` and are attached to the materialization
(paths, and the main picture inline) so they show in the UI's metadata panel.
"""

import re
from datetime import date
from pathlib import Path

import pandas as pd
from dagster import (
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
)

from energy_assets.ml import image_markdown, read_frame
from energy_assets.partitions import monthly_asset, months_in
from energy_assets.plots import (
    customer_overview,
    hourly_patterns,
    largest_customers,
    load_heatmap,
    load_profile,
)
from energy_assets.resources import Platform

FEEDERS = """
select feeder, interval_start, mw_net, meters_reporting, meters_expected
from marts.fct_feeder_intervals
where interval_start >= %s and interval_start < %s
order by feeder, interval_start
"""
PROFILES = """
select customer_id, day_type, hour, mean_kw
from marts.customer_hourly_profile where month_start = %s
"""


def file_name(name: str) -> str:
    """A feeder or customer name made safe as a file name."""
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "unnamed"


def incomplete_runs(times: pd.Series, incomplete: pd.Series) -> list[tuple]:
    """(start, end) of each run of consecutive intervals that miss a meter's reading."""
    if not incomplete.any():
        return []
    step = times.diff().min() if len(times) > 1 else pd.Timedelta(minutes=15)
    flagged = times[incomplete.to_numpy()]
    run = (flagged.diff() != step).cumsum()
    return [(g.iloc[0], g.iloc[-1] + step) for _, g in flagged.groupby(run.to_numpy())]


def render_load_profiles(feeders: pd.DataFrame, month: date, folder: Path) -> list[Path]:
    """One profile per feeder, the system total (all.png) and the system heat map."""
    paths = []
    for feeder, rows in feeders.groupby("feeder"):
        times = rows["interval_start"].reset_index(drop=True)
        gaps = incomplete_runs(times, rows["meters_reporting"] < rows["meters_expected"])
        paths.append(load_profile(
            pd.Series(rows["mw_net"].to_numpy(), index=times), gaps,
            f"Feeder {feeder}, {month:%B %Y}", folder / f"{file_name(str(feeder))}.png",
        ))  # fmt: skip
    feeders = feeders.assign(short=feeders["meters_reporting"] < feeders["meters_expected"])
    system = feeders.groupby("interval_start").agg(mw=("mw_net", "sum"), short=("short", "any"))
    times = system.index.to_series().reset_index(drop=True)
    paths.append(load_profile(
        system["mw"], incomplete_runs(times, system["short"]),
        f"System total, {month:%B %Y}", folder / "all.png",
    ))  # fmt: skip
    paths.append(load_heatmap(system["mw"], f"System load, {month:%B %Y}", folder / "heatmap.png"))
    return paths


@monthly_asset(
    ["plots", "load_profiles"],
    deps=[["marts", "fct_feeder_intervals"], ["marts", "fct_system_intervals"]],
    description="Per feeder and for the system: the month's net load with missing data shaded, "
    "and a day x time-of-day heat map of the system load.",
)
def load_profiles(context: AssetExecutionContext, platform: Platform) -> MaterializeResult:
    settings = platform.settings()
    metadata: dict = {}
    for month, following in months_in(context.partition_time_window):
        feeders = read_frame(platform.warehouse_url, FEEDERS, (month, following))
        key = f"{month:%Y-%m}"
        if feeders.empty:
            metadata[key] = "no feeder data this month: no plots"
            continue
        feeders["interval_start"] = pd.to_datetime(feeders["interval_start"], utc=True)
        feeders["mw_net"] = feeders["mw_net"].astype(float)
        paths = render_load_profiles(feeders, month, settings.home / "plots" / "load" / key)
        metadata[key] = MetadataValue.json([str(p) for p in paths])
        metadata["system_profile"] = image_markdown(paths[-2], "system load profile")
        metadata["system_heatmap"] = image_markdown(paths[-1], "system heat map")
    return MaterializeResult(metadata=metadata)


def customer_folder(home: Path, month: date) -> Path:
    return home / "plots" / "customers" / f"{month:%Y-%m}"


def draw_customers(profiles: pd.DataFrame, customers: list[str], month: date,
                   folder: Path) -> list[Path]:  # fmt: skip
    """One hourly-pattern picture per named customer of `profiles` (one month's rows)."""
    chosen = profiles[profiles["customer_id"].isin(customers)]
    by_customer = dict(tuple(chosen.groupby("customer_id")))
    return hourly_patterns(
        (by_customer[name], f"Customer {name}, {month:%B %Y}",
         folder / f"{file_name(str(name))}.png")
        for name in customers if name in by_customer
    )  # fmt: skip


def month_profiles(url: str, month: date, customer: str | None = None) -> pd.DataFrame:
    """`marts.customer_hourly_profile` rows of a month (of one customer when named)."""
    query, params = PROFILES, (month,)
    if customer is not None:
        query, params = PROFILES + " and customer_id = %s", (month, customer)
    profiles = read_frame(url, query, params)
    profiles["mean_kw"] = profiles["mean_kw"].astype(float)
    return profiles


@monthly_asset(
    ["plots", "customer_patterns"],
    deps=[["marts", "customer_hourly_profile"]],
    description="Every customer's mean demand by hour of day in one overview picture, and "
    "weekday vs weekend pictures of the largest customers (ENERGY_CUSTOMER_PLOTS, default 25); "
    "`energy plot CUSTOMER --month YYYY-MM` draws any other.",
)
def customer_patterns(context: AssetExecutionContext, platform: Platform) -> MaterializeResult:
    settings = platform.settings()
    metadata: dict = {}
    for month, _ in months_in(context.partition_time_window):
        profiles = month_profiles(platform.warehouse_url, month)
        key = f"{month:%Y-%m}"
        if profiles.empty:
            metadata[key] = "no customer data this month: no plots"
            continue
        folder = customer_folder(settings.home, month)
        overview = customer_overview(profiles, f"Customers' hourly patterns, {month:%B %Y}",
                                     folder / "overview.png")  # fmt: skip
        drawn = draw_customers(profiles, largest_customers(profiles, settings.customer_plots),
                               month, folder)  # fmt: skip
        metadata[key] = MetadataValue.json({
            "customers": int(profiles["customer_id"].nunique()), "drawn": len(drawn),
            "folder": str(folder), "others": f"energy plot CUSTOMER --month {key}",
        })  # fmt: skip
        metadata["overview"] = image_markdown(overview, "customers' hourly patterns")
        if drawn:
            metadata["example"] = image_markdown(drawn[0], "largest customer's hourly pattern")
    return MaterializeResult(metadata=metadata)
