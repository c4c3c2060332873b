"""Monthly plot assets: feeder and system load profiles, the system heat map, customer patterns.

PNGs land under `$ENERGY_HOME/plots/<kind>/<YYYY-MM>/` and are attached to the materialization
(paths, and the main picture inline) so they show in the UI's metadata panel.
"""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue

from energy_assets.partitions import monthly_asset, months_in
from energy_assets.plots.charts import (
    customer_folder,
    customer_overview,
    draw_customers,
    inline_png,
    largest_customers,
    render_load_profiles,
)
from energy_assets.plots.store import month_feeders, month_profiles
from energy_assets.resources import Platform


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
        with platform.connection() as conn:
            feeders = month_feeders(conn, month, following)
        key = f"{month:%Y-%m}"
        if feeders.empty:
            metadata[key] = "no feeder data this month: no plots"
            continue
        paths = render_load_profiles(feeders, month, settings.home / "plots" / "load" / key)
        metadata[key] = MetadataValue.json([str(p) for p in paths])
        metadata["system_profile"] = MetadataValue.md(inline_png(paths[-2], "system load profile"))
        metadata["system_heatmap"] = MetadataValue.md(inline_png(paths[-1], "system heat map"))
    return MaterializeResult(metadata=metadata)


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
        with platform.connection() as conn:
            profiles = month_profiles(conn, month)
        key = f"{month:%Y-%m}"
        if profiles.empty:
            metadata[key] = "no customer data this month: no plots"
            continue
        folder = customer_folder(settings.home, month)
        overview = customer_overview(
            profiles, f"Customers' hourly patterns, {month:%B %Y}", folder / "overview.png"
        )
        largest = largest_customers(profiles, settings.customer_plots)
        drawn = draw_customers(profiles, largest, month, folder)
        metadata[key] = MetadataValue.json(
            {
                "customers": int(profiles["customer_id"].nunique()),
                "drawn": len(drawn),
                "folder": str(folder),
                "others": f"energy plot CUSTOMER --month {key}",
            }
        )
        metadata["overview"] = MetadataValue.md(inline_png(overview, "customers' hourly patterns"))
        if drawn:
            example = inline_png(drawn[0], "largest customer's hourly pattern")
            metadata["example"] = MetadataValue.md(example)
    return MaterializeResult(metadata=metadata)
