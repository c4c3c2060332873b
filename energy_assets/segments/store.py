"""The segments' reads and writes: customers' intervals from the marts, segments and centroids
into `ml`. Plain functions over a connection, no Dagster."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pyarrow as pa
from psycopg2.extensions import connection

from energy_assets.segments.segmentation import Segmentation
from energy_assets.warehouse.database import TIMESTAMP, copy_frame, read_arrow

NEAR_EMPTY_SEGMENT = -1
"""The `segment` of a customer set apart as near-empty (not clustered) in ml.customer_segments."""

CUSTOMER_INTERVALS = """
select customers.customer_id, c.interval_start, c.demand_kw as kw
from marts.fct_intervals_clean c
join (select customer_id, unnest(meter_ids) as meter_id from marts.dim_customer) customers
    on customers.meter_id = c.meter_id
where c.interval_start >= %s and c.interval_start < %s
"""
INTERVAL_TYPES = {"customer_id": pa.string(), "interval_start": TIMESTAMP, "kw": pa.float64()}


def customer_intervals(conn: connection, month: date, following: date) -> pd.DataFrame:
    """Demand of the customer meters per customer (`marts.dim_customer`) and interval."""
    return read_arrow(conn, CUSTOMER_INTERVALS, (month, following), INTERVAL_TYPES)


def store_segments(
    conn: connection, month: date, segmentation: Segmentation, near_empty: list[str]
) -> None:
    """Replace the month's segments (near-empty customers as NEAR_EMPTY_SEGMENT) and centroids
    in one transaction."""
    labels = pd.concat(
        [segmentation.labels, pd.Series(NEAR_EMPTY_SEGMENT, index=pd.Index(near_empty))]
    )
    members = pd.DataFrame(
        {
            "month_start": month,
            "customer_id": labels.index.astype(str),
            "segment": labels.to_numpy(dtype=int),
            "k": segmentation.k,
            "silhouette": float(segmentation.silhouette),
        }
    )
    shares = segmentation.centroids.stack().rename("share").reset_index()
    shares.columns = ["segment", "hour", "share"]
    sizes = segmentation.labels.value_counts()
    centroids = shares.assign(month_start=month, customers=shares["segment"].map(sizes))
    with conn, conn.cursor() as cur:
        cur.execute("delete from ml.customer_segments where month_start = %s", (month,))
        cur.execute("delete from ml.segment_centroids where month_start = %s", (month,))
        copy_frame(cur, "ml.customer_segments", members)
        copy_frame(
            cur,
            "ml.segment_centroids",
            centroids[["month_start", "segment", "hour", "share", "customers"]],
        )
