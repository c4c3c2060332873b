"""Monthly plot assets: feeder, system and meter-total load profiles and heat maps, customer
patterns.

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
    render_meters_total,
)
from energy_assets.plots.store import month_feeders, month_meters_total, month_profiles
from energy_assets.resources import Platform


@monthly_asset(
    ["plots", "load_profiles"],
    deps=[
        ["marts", "fct_feeder_intervals"],
        ["marts", "fct_system_intervals"],
        ["marts", "fct_meters_total_intervals"],
    ],
    description="Per feeder and for the system: the month's net load with missing data shaded, "
    "and a day x time-of-day heat map of the system load; the same two for the meters on no "
    "feeder (households) added up.",
)
def load_profiles(context: AssetExecutionContext, platform: Platform) -> MaterializeResult:
    settings = platform.settings()
    metadata: dict = {}
    for month, following in months_in(context.partition_time_window):
        with platform.connection() as conn:
            feeders = month_feeders(conn, month, following)
            total = month_meters_total(conn, month, following)
        key = f"{month:%Y-%m}"
        folder = settings.home / "plots" / "load" / key
        paths = []
        if not feeders.empty:
            paths += render_load_profiles(feeders, month, folder)
            metadata["system_profile"] = MetadataValue.md(inline_png(paths[-2], "system profile"))
            metadata["system_heatmap"] = MetadataValue.md(inline_png(paths[-1], "system heat map"))
        if not total.empty:
            paths += render_meters_total(total, month, folder)
            metadata["meters_total_profile"] = MetadataValue.md(
                inline_png(paths[-2], "meters on no feeder, profile")
            )
            metadata["meters_total_heatmap"] = MetadataValue.md(
                inline_png(paths[-1], "meters on no feeder, heat map")
            )
        metadata[key] = (
            MetadataValue.json([str(p) for p in paths]) if paths else "no meter data this month"
        )
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
