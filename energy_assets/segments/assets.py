"""The customer segments asset: customers clustered by load shape, month by month."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue

from energy_assets.partitions import monthly_asset, months_in
from energy_assets.plots.charts import inline_png, plot_centroids
from energy_assets.resources import Platform
from energy_assets.segments.segmentation import (
    daily_shapes,
    near_empty,
    segment_customers,
    split_halves,
)
from energy_assets.segments.store import customer_intervals, store_segments

MIN_CUSTOMERS = 3  # fewer cannot be split into segments worth the name


@monthly_asset(
    ["ml", "customer_segments"],
    deps=[["marts", "fct_intervals_clean"]],
    description="Customers clustered on their normalised daily load shape (K-means; the number "
    "of segments is the best by silhouette among those stable between the month's odd and even "
    "days), near-empty meters set apart, with each segment's centroid shape and a plot of them.",
)
def customer_segments(context: AssetExecutionContext, platform: Platform) -> MaterializeResult:
    settings = platform.settings()
    summary, plots = {}, []
    for month, following in months_in(context.partition_time_window):
        with platform.connection() as conn:
            intervals = customer_intervals(conn, month, following)
        tz = settings.default_timezone
        empty = near_empty(intervals)
        shapes = daily_shapes(intervals, tz=tz).drop(index=empty, errors="ignore")
        if len(shapes) < MIN_CUSTOMERS:
            summary[f"{month:%Y-%m}"] = f"{len(shapes)} customers with a week of data: too few"
            continue
        segmentation = segment_customers(shapes, halves=split_halves(intervals, shapes.index, tz))
        with platform.connection() as conn:
            store_segments(conn, month, segmentation, empty)
        path = settings.home / "plots" / "segments" / f"{month:%Y-%m}.png"
        sizes = segmentation.labels.value_counts()
        title = f"Customer load-shape segments, {month:%B %Y}"
        plots.append(plot_centroids(segmentation.centroids, sizes, path, title))
        summary[f"{month:%Y-%m}"] = {
            "customers": len(shapes),
            "segments": segmentation.k,
            "silhouette": round(float(segmentation.silhouette), 3),
            "near_empty": empty,
        }
    metadata = {"months": MetadataValue.json(summary)}
    if plots:
        metadata["plot_path"] = MetadataValue.path(str(plots[-1]))
        metadata["plot"] = MetadataValue.md(inline_png(plots[-1], "segment centroids"))
    return MaterializeResult(metadata=metadata)
