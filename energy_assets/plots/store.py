"""What the plot assets and `energy plot` read from the marts: plain functions over a
connection, no Dagster."""

from __future__ import annotations

from datetime import date

import pandas as pd
from psycopg2.extensions import connection

from energy_assets.warehouse.database import read_frame

FEEDERS = """
select feeder, interval_start, mw_net, meters_reporting, meters_expected
from marts.fct_feeder_intervals
where interval_start >= %s and interval_start < %s
order by feeder, interval_start
"""
METERS_TOTAL = """
select interval_start, kw_total as kw, meters_reporting < meters_expected as incomplete
from marts.fct_meters_total_intervals
where interval_start >= %s and interval_start < %s
order by interval_start
"""
PROFILES = """
select customer_id, day_type, hour, mean_kw
from marts.customer_hourly_profile where month_start = %s
"""


def month_feeders(conn: connection, month: date, following: date) -> pd.DataFrame:
    """The month's feeder intervals: net MW and how many meters reported of those expected."""
    feeders = read_frame(conn, FEEDERS, (month, following))
    feeders["interval_start"] = pd.to_datetime(feeders["interval_start"], utc=True)
    feeders["mw_net"] = feeders["mw_net"].astype(float)
    return feeders


def month_meters_total(conn: connection, month: date, following: date) -> pd.DataFrame:
    """The month's meters on no feeder (households) added up per interval, in kW, and whether
    one of them missed its reading."""
    total = read_frame(conn, METERS_TOTAL, (month, following))
    total["interval_start"] = pd.to_datetime(total["interval_start"], utc=True)
    total["kw"] = total["kw"].astype(float)
    return total


def month_profiles(conn: connection, month: date, customer: str | None = None) -> pd.DataFrame:
    """`marts.customer_hourly_profile` rows of a month (of one customer when named)."""
    query, params = PROFILES, (month,)
    if customer is not None:
        query, params = PROFILES + " and customer_id = %s", (month, customer)
    profiles = read_frame(conn, query, params)
    profiles["mean_kw"] = profiles["mean_kw"].astype(float)
    return profiles
