"""Weather into raw.weather on a real platform: the Open-Meteo asset on recorded responses
(observations and forecasts with their issue times, idempotent, a malformed body quarantined
with its reason) and a dropped weather file whose local times follow ENERGY_TIMEZONE."""

from __future__ import annotations

import json

import pandas as pd
import responses
from dagster import DagsterInstance

from energy_assets.commands.session import platform_session
from energy_assets.weather.open_meteo import ENDPOINTS

DARKSKY = (  # two lines of the LCL data's weather file, in its layout
    "visibility,windBearing,temperature,time,dewPoint,pressure,windSpeed,humidity\n"
    '5.97,104,10.24,"2013-07-01 12:00:00",8.86,1011.02,3.03,0.91\n'
    '4.88,99,9.76,"2013-07-01 13:00:00",8.83,1011.6,3.78,0.94\n'
)


def hourly(request) -> tuple[int, dict, str]:
    """Every hour of the days asked for, temperature = the hour of day."""
    params = request.params
    end = pd.Timestamp(params["end_date"]) + pd.Timedelta(days=1)
    times = pd.date_range(params["start_date"], end, freq="h", inclusive="left")
    body = {
        "timezone": "GMT",
        "hourly": {
            "time": [t.strftime("%Y-%m-%dT%H:%M") for t in times],
            "temperature_2m": [float(t.hour) for t in times],
        },
    }
    return 200, {}, json.dumps(body)


def fetch_weather(settings) -> None:
    with platform_session(settings):
        from energy_assets.definitions import defs

        job = defs.resolve_job_def("weather_job")
        assert job.execute_in_process(instance=DagsterInstance.get()).success


@responses.activate
def test_weather_is_fetched_marked_and_stored_once(platform, monkeypatch):
    monkeypatch.setenv("ENERGY_WEATHER_SITES", "utrecht=52.0,5.0")
    settings = platform.settings.__class__.from_env()
    responses.add_callback(responses.GET, ENDPOINTS["archive"], callback=hourly)
    responses.add_callback(responses.GET, ENDPOINTS["forecast"], callback=hourly)
    responses.add(responses.GET, ENDPOINTS["historical-forecast"], body=b"<html>busy</html>")
    fetch_weather(settings)

    today = pd.Timestamp.now(tz="UTC").normalize()
    kinds = platform.query(
        "select kind, source, count(*) as n, min(observed_at) as first, max(observed_at) as last,"
        " count(issued_at) as issued, count(file_id) as files from raw.weather group by 1, 2"
        " order by 1 desc"
    )
    observed, forecast = kinds.itertuples()
    # A year of observations up to five days ago, read as UTC; no issue time, no file.
    assert observed.kind == "observed" and observed.source == "open-meteo archive"
    assert observed.first == today - pd.Timedelta(days=365)
    assert observed.last == today - pd.Timedelta(days=4) - pd.Timedelta(hours=1)
    assert observed.n == 361 * 24 and observed.issued == 0 and observed.files == 0
    # Today's forecast for three days, issued when fetched.
    assert forecast.kind == "forecast" and forecast.n == 3 * 24 and forecast.issued == 72
    assert platform.scalar("select count(distinct issued_at) from raw.weather") == 1
    assert (
        platform.scalar(
            "select count(*) from raw.weather"
            " where extract(hour from observed_at at time zone 'UTC') <> value"
        )
        == 0
    )
    # The unreadable historical forecasts are quarantined with their reason.
    quarantined = sorted((settings.quarantine / "weather").iterdir())
    assert [p.suffix for p in quarantined] == [".json", ".json"]
    assert quarantined[0].read_bytes() == b"<html>busy</html>"
    assert json.loads(quarantined[1].read_text())["message"].startswith("not JSON")

    # The next fetch starts from the latest observation: the rows it sends again replace theirs.
    fetch_weather(settings)
    again = platform.query("select kind, count(*) as n from raw.weather group by 1 order by 1 desc")
    assert again["n"].iloc[0] == observed.n
    assert responses.calls[-2].request.params["start_date"] == str(observed.last.date())


def test_a_dropped_weather_file_is_read_in_the_platforms_timezone(platform, monkeypatch):
    """Dark Sky's labels carry no offset: with ENERGY_TIMEZONE=Europe/London, 12:00 on a July
    day is 11:00 UTC, never 12:00 UTC."""
    monkeypatch.setenv("ENERGY_TIMEZONE", "Europe/London")
    settings = platform.settings.__class__.from_env()
    (settings.dropbox / "weather_hourly_darksky.csv").write_text(DARKSKY)
    with platform_session(settings):
        from energy_assets.definitions import defs

        config = {"ops": {"ingest_files": {"config": {"files": ["weather_hourly_darksky.csv"]}}}}
        job = defs.resolve_job_def("ingest_dropbox")
        assert job.execute_in_process(run_config=config, instance=DagsterInstance.get()).success
    rows = platform.query(
        "select observed_at, value, kind, issued_at from raw.weather"
        " where variable = 'temperature' order by 1"
    )
    assert rows["observed_at"].tolist() == [
        pd.Timestamp("2013-07-01 11:00", tz="UTC"),
        pd.Timestamp("2013-07-01 12:00", tz="UTC"),
    ]
    assert rows["value"].tolist() == [10.24, 9.76]
    assert (rows["kind"] == "observed").all() and rows["issued_at"].isna().all()
