"""A client of Open-Meteo's weather API: observations (archive), the forecasts of the past
(historical-forecast) and today's forecast, as rows in raw.weather's long layout.

Plain `requests`, no database, no Dagster. Long ranges go in chunks of CHUNK_DAYS; HTTP 429 and
5xx are retried with exponential backoff (a `Retry-After` header is honoured); a body that is not
the expected JSON raises `MalformedResponse` with a reason, for the caller to quarantine.

Times: every request asks for UTC (`timezone=GMT`). A body that says it is in another zone
(`timezone`, e.g. `Europe/Amsterdam`) has its offset-free times read in that zone, with its
daylight saving changes: never silently as UTC.

Rows: site_id, observed_at (the hour the value is for, UTC), variable, value, kind
(`observed` or `forecast`), issued_at (when a forecast was available; null for observations),
source (the endpoint).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd
import requests

ENDPOINTS = {
    "archive": "https://archive-api.open-meteo.com/v1/archive",
    "historical-forecast": "https://historical-forecast-api.open-meteo.com/v1/forecast",
    "forecast": "https://api.open-meteo.com/v1/forecast",
}
KINDS = {"archive": "observed", "historical-forecast": "forecast", "forecast": "forecast"}
VARIABLES = {  # Open-Meteo hourly variable -> the platform's weather variable
    "temperature_2m": "temperature",
    "relative_humidity_2m": "humidity",
    "surface_pressure": "pressure",
    "cloud_cover": "cloud_cover",
    "wind_speed_100m": "wind_speed",
    "shortwave_radiation": "radiation",
}
CHUNK_DAYS = 92  # days per request: long ranges are split, which keeps every response small
RETRIES = 5
BACKOFF_SECONDS = 1.0  # doubled after every retry
RUN_HOURS = 6  # a historical forecast's hour comes from the model run of its 6-hour block
TIMEOUT_SECONDS = 60


class MalformedResponse(Exception):
    """The API answered, but not with the weather asked for; `body` is what it sent."""

    def __init__(self, reason: str, body: bytes):
        super().__init__(reason)
        self.reason, self.body = reason, body


@dataclass(frozen=True)
class Site:
    """A place to fetch weather for: its site id in raw.weather and its coordinates."""

    site_id: str
    latitude: float
    longitude: float


def chunks(start: date, end: date, days: int = CHUNK_DAYS) -> list[tuple[date, date]]:
    """[start, end] (inclusive, as the API counts) in pieces of at most `days` days.

    >>> [(a.day, b.day) for a, b in chunks(date(2024, 1, 1), date(2024, 1, 10), 4)]
    [(1, 4), (5, 8), (9, 10)]
    """
    pieces, first = [], start
    while first <= end:
        last = min(first + timedelta(days=days - 1), end)
        pieces.append((first, last))
        first = last + timedelta(days=1)
    return pieces


def get_json(
    url: str,
    params: dict,
    session: requests.Session,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[object, bytes]:
    """GET and decode (the JSON and the bytes it came in), retrying 429 and 5xx with backoff;
    other HTTP errors raise at once."""
    for attempt in range(RETRIES + 1):
        response = session.get(url, params=params, timeout=TIMEOUT_SECONDS)
        retry = response.status_code == 429 or response.status_code >= 500
        if not retry or attempt == RETRIES:
            break
        wait = BACKOFF_SECONDS * 2**attempt
        after = response.headers.get("Retry-After", "")
        sleep(float(after) if after.isdigit() else wait)
    response.raise_for_status()
    try:
        return response.json(), response.content
    except ValueError as exc:
        raise MalformedResponse(f"not JSON: {exc}", response.content) from exc


def read_times(body: dict) -> pd.DatetimeIndex:
    """The body's hourly times in UTC, read in the zone the body names (GMT unless it says)."""
    hourly = body["hourly"]
    times = pd.to_datetime(pd.Series(hourly["time"]), format="ISO8601")
    zone = body.get("timezone") or "GMT"
    if times.dt.tz is not None:
        return pd.DatetimeIndex(times.dt.tz_convert("UTC"))
    # A repeated hour (DST ends) is summer time first; a skipped one cannot appear in the body.
    first = ~times.duplicated(keep="first")
    local = times.dt.tz_localize(zone, ambiguous=first.to_numpy(), nonexistent="raise")
    return pd.DatetimeIndex(local.dt.tz_convert("UTC"))


def parse(
    body: dict, raw: bytes, site: Site, endpoint: str, fetched_at: pd.Timestamp
) -> pd.DataFrame:
    """The body's hourly values as raw.weather rows; MalformedResponse when they cannot be."""
    try:
        times = read_times(body)
        hourly = body["hourly"]
        frames = []
        for name, variable in VARIABLES.items():
            if name not in hourly:
                continue
            values = pd.to_numeric(pd.Series(hourly[name], dtype=object), errors="raise")
            if len(values) != len(times):
                raise ValueError(f"{name} has {len(values)} values for {len(times)} times")
            frames.append(
                pd.DataFrame(
                    {
                        "observed_at": times,
                        "variable": variable,
                        "value": values.to_numpy(dtype=float),
                    }
                )
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedResponse(f"unexpected body: {type(exc).__name__}: {exc}", raw) from exc
    if not frames:
        raise MalformedResponse("no hourly variable asked for is in the body", raw)
    rows = pd.concat(frames, ignore_index=True).dropna(subset=["value"])
    kind = KINDS[endpoint]
    if endpoint == "forecast":
        issued = pd.Series(fetched_at.floor("h"), index=rows.index)
    elif endpoint == "historical-forecast":
        issued = rows["observed_at"].dt.floor(f"{RUN_HOURS}h")
    else:
        issued = pd.Series(pd.NaT, index=rows.index, dtype="datetime64[ns, UTC]")
    return rows.assign(
        site_id=site.site_id, kind=kind, issued_at=issued, source=f"open-meteo {endpoint}"
    )[["site_id", "observed_at", "variable", "value", "kind", "issued_at", "source"]]


def fetch(
    site: Site,
    endpoint: str,
    start: date,
    end: date,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
    now: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Hourly weather of `site` from one endpoint over the days [start, end], in chunks."""
    session = session or requests.Session()
    now = now if now is not None else pd.Timestamp.now(tz="UTC")
    frames = []
    for first, last in chunks(start, end):
        params = {
            "latitude": site.latitude,
            "longitude": site.longitude,
            "hourly": ",".join(VARIABLES),
            "timezone": "GMT",
            "start_date": first.isoformat(),
            "end_date": last.isoformat(),
        }
        body, raw = get_json(ENDPOINTS[endpoint], params, session, sleep)
        if not isinstance(body, dict):
            raise MalformedResponse("the body is not a JSON object", raw)
        frames.append(parse(body, raw, site, endpoint, now))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
