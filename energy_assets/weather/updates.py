"""What the weather fetch asks Open-Meteo for, where its rows go, and what happens to a body
that cannot be read: plain functions over dates, connections and folders, no Dagster.

Each run asks, per site, the archive (observations, about five days behind) for the days after
the last observation stored, from a year before today on a first run; the historical forecasts
for the same days; and today's forecast for the next days (issued when fetched).
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
from psycopg2.extensions import connection

from energy_assets.ingest.raw_tables import upsert_weather
from energy_assets.warehouse.database import read_frame

ARCHIVE_LAG_DAYS = 5  # the archive holds days up to about five days ago
FIRST_RUN_DAYS = 365  # how far back a site's first fetch reaches
FORECAST_DAYS = 3  # today's forecast: today and the days after
LATEST = """
select site_id, max(observed_at) as latest from raw.weather
where kind = 'observed' and source = 'open-meteo archive' group by site_id
"""


def ranges(latest: pd.Timestamp | None, today: date) -> dict[str, tuple[date, date]]:
    """Per endpoint, the days [first, last] a site needs, given its latest archived hour.

    >>> sorted(ranges(None, date(2024, 6, 30)).items())[0]
    ('archive', (datetime.date(2023, 7, 1), datetime.date(2024, 6, 25)))
    """
    first = today - timedelta(days=FIRST_RUN_DAYS) if latest is None else latest.date()
    last = today - timedelta(days=ARCHIVE_LAG_DAYS)
    out = {"forecast": (today, today + timedelta(days=FORECAST_DAYS - 1))}
    if first <= last:
        out["archive"] = out["historical-forecast"] = (first, last)
    return out


def latest_observations(conn: connection) -> dict[str, pd.Timestamp]:
    """Each site's latest hour from the archive in raw.weather."""
    rows = read_frame(conn, LATEST)
    return {r.site_id: pd.Timestamp(r.latest) for r in rows.itertuples()}


def store(conn: connection, rows: pd.DataFrame) -> None:
    """Fetched rows into raw.weather (COPY, one transaction)."""
    with conn, conn.cursor() as cur:
        upsert_weather(cur, [rows])


def quarantine(folder: Path, name: str, body: bytes, reason: str) -> Path:
    """Keep a body that could not be read, beside a `.reason.json` saying why."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_bytes(body)
    reason_file = path.with_name(path.name + ".reason.json")
    reason_file.write_text(json.dumps({"rule": "malformed_response", "message": reason}) + "\n")
    return path
