"""The weather fetch: Open-Meteo's observations and forecasts for every configured site into
raw.weather, on the `weather_daily` schedule."""

import pandas as pd
import requests
from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

from energy_assets.resources import Platform
from energy_assets.weather.open_meteo import MalformedResponse, Site, fetch
from energy_assets.weather.updates import latest_observations, quarantine, ranges, store


@asset(
    key=AssetKey(["raw", "open_meteo_weather"]),
    group_name="raw",
    description="Hourly weather of the sites in ENERGY_WEATHER_SITES from Open-Meteo into "
    "raw.weather: observations (archive), the forecasts of the past (historical-forecast) and "
    "today's forecast, each row marked observed or forecast with its issue time. A body that "
    "cannot be read is quarantined under quarantine/weather/ with its reason.",
)
def open_meteo_weather(context: AssetExecutionContext, platform: Platform) -> MaterializeResult:
    settings = platform.settings()
    if not settings.weather_sites:
        return MaterializeResult(metadata={"weather": "no sites (ENERGY_WEATHER_SITES)"})
    now = pd.Timestamp.now(tz="UTC")
    with platform.connection() as conn:
        latest = latest_observations(conn)
    fetched, refused = {}, {}
    session = requests.Session()
    for site in (Site(*s) for s in settings.weather_sites):
        for endpoint, (first, last) in ranges(latest.get(site.site_id), now.date()).items():
            name = f"{site.site_id} {endpoint} {first}..{last}"
            try:
                rows = fetch(site, endpoint, first, last, session=session, now=now)
            except MalformedResponse as exc:
                stem = f"{site.site_id}-{endpoint}-{now:%Y%m%dT%H%M%S}"
                quarantine(settings.quarantine / "weather", stem, exc.body, exc.reason)
                refused[name] = exc.reason
                continue
            with platform.connection() as conn:
                store(conn, rows)
            fetched[name] = len(rows)
            context.log.info(f"{name}: {len(rows)} rows")
    return MaterializeResult(
        metadata={"rows": MetadataValue.json(fetched), "quarantined": MetadataValue.json(refused)}
    )
