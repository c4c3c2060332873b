"""Python model assets on top of the marts: customer segments per month."""

import base64
from datetime import date
from pathlib import Path

import pandas as pd
from dagster import (
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
)
from psycopg2.extras import execute_values

from energy_assets import warehouse
from energy_assets.partitions import monthly_asset, months_in
from energy_assets.resources import Platform
from energy_assets.segmentation import (
    Segmentation,
    daily_shapes,
    plot_centroids,
    segment_customers,
)

MIN_CUSTOMERS = 3  # fewer cannot be split into segments worth the name

CUSTOMER_INTERVALS = """
select coalesce(m.customer_id, c.meter_id) as customer_id, c.interval_start, c.demand_kw as kw
from marts.fct_intervals_clean c
left join raw.meters m on m.meter_id = c.meter_id
where c.feeder is null and c.interval_start >= %s and c.interval_start < %s
"""


def image_markdown(path: Path, alt: str) -> MetadataValue:
    """A PNG inlined in markdown, so the UI's metadata panel shows the picture itself."""
    data = base64.b64encode(path.read_bytes()).decode()
    return MetadataValue.md(f"![{alt}](data:image/png;base64,{data})")


def read_frame(url: str, query: str, params: tuple) -> pd.DataFrame:
    conn = warehouse.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(query, params)
            return pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])
    finally:
        conn.close()


def store_segments(url: str, month: date, segmentation: Segmentation) -> None:
    """Replace the month's segments and centroids in one transaction."""
    members = segmentation.labels.value_counts()
    conn = warehouse.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("delete from ml.customer_segments where month_start = %s", (month,))
            cur.execute("delete from ml.segment_centroids where month_start = %s", (month,))
            execute_values(
                cur,
                "insert into ml.customer_segments values %s",
                [
                    (month, str(c), int(s), segmentation.k, float(segmentation.silhouette))
                    for c, s in segmentation.labels.items()
                ],  # fmt: skip
            )
            execute_values(
                cur,
                "insert into ml.segment_centroids values %s",
                [
                    (month, int(seg), int(hour), float(share), int(members[seg]))
                    for seg, row in segmentation.centroids.iterrows()
                    for hour, share in row.items()
                ],  # fmt: skip
            )
    finally:
        conn.close()


@monthly_asset(
    ["ml", "customer_segments"],
    deps=[["marts", "fct_intervals_clean"]],
    description="Customers clustered on their normalised daily load shape (K-means, the number "
    "of segments chosen by silhouette), with each segment's centroid shape and a plot of them.",
)
def customer_segments(context: AssetExecutionContext, platform: Platform) -> MaterializeResult:
    window = context.partition_time_window
    settings = platform.settings()
    summary, plots = {}, []
    for month, following in months_in(window):  # one segmentation per month of the window
        intervals = read_frame(platform.warehouse_url, CUSTOMER_INTERVALS, (month, following))
        intervals["interval_start"] = pd.to_datetime(intervals["interval_start"], utc=True)
        intervals["kw"] = intervals["kw"].astype("float64")
        shapes = daily_shapes(intervals, tz=settings.default_timezone)
        if len(shapes) < MIN_CUSTOMERS:
            summary[f"{month:%Y-%m}"] = f"{len(shapes)} customers with a week of data: too few"
        else:
            segmentation = segment_customers(shapes)
            store_segments(platform.warehouse_url, month, segmentation)
            plots.append(plot_centroids(
                segmentation, settings.home / "plots" / "segments" / f"{month:%Y-%m}.png",
                f"Customer load-shape segments, {month:%B %Y}",
            ))  # fmt: skip
            summary[f"{month:%Y-%m}"] = {
                "customers": len(shapes), "segments": segmentation.k,
                "silhouette": round(float(segmentation.silhouette), 3),
            }  # fmt: skip
    metadata = {"months": MetadataValue.json(summary)}
    if plots:
        metadata["plot_path"] = MetadataValue.path(str(plots[-1]))
        metadata["plot"] = image_markdown(plots[-1], "segment centroids")
    return MaterializeResult(metadata=metadata)
