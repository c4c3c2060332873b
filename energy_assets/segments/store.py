"""The segments' reads and writes: customers' intervals from the marts, segments and centroids
into `ml`. Plain functions over a connection, no Dagster."""

from __future__ import annotations

from datetime import date

import pandas as pd
from psycopg2.extensions import connection
from psycopg2.extras import execute_values

from energy_assets.segments.segmentation import Segmentation
from energy_assets.warehouse.database import read_frame

CUSTOMER_INTERVALS = """
select customers.customer_id, c.interval_start, c.demand_kw as kw
from marts.fct_intervals_clean c
join (select customer_id, unnest(meter_ids) as meter_id from marts.dim_customer) customers
    on customers.meter_id = c.meter_id
where c.interval_start >= %s and c.interval_start < %s
"""


def customer_intervals(conn: connection, month: date, following: date) -> pd.DataFrame:
    """Demand of the customer meters per customer (`marts.dim_customer`) and interval."""
    intervals = read_frame(conn, CUSTOMER_INTERVALS, (month, following))
    intervals["interval_start"] = pd.to_datetime(intervals["interval_start"], utc=True)
    intervals["kw"] = intervals["kw"].astype("float64")
    return intervals


def store_segments(conn: connection, month: date, segmentation: Segmentation) -> None:
    """Replace the month's segments and centroids in one transaction."""
    members = segmentation.labels.value_counts()
    with conn, conn.cursor() as cur:
        cur.execute("delete from ml.customer_segments where month_start = %s", (month,))
        cur.execute("delete from ml.segment_centroids where month_start = %s", (month,))
        execute_values(
            cur,
            "insert into ml.customer_segments values %s",
            [
                (month, str(c), int(s), segmentation.k, float(segmentation.silhouette))
                for c, s in segmentation.labels.items()
            ],
        )
        execute_values(
            cur,
            "insert into ml.segment_centroids values %s",
            [
                (month, int(seg), int(hour), float(share), int(members[seg]))
                for seg, row in segmentation.centroids.iterrows()
                for hour, share in row.items()
            ],
        )
