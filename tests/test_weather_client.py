"""The Open-Meteo client on recorded responses (`responses`, never the network): chunks of long
ranges, retries of 429 and 5xx, malformed bodies, timezones and daylight saving time."""

from __future__ import annotations

import json
from datetime import date

import pandas as pd
import pytest
import requests
import responses

from energy_assets.weather import open_meteo
from energy_assets.weather.open_meteo import ENDPOINTS, MalformedResponse, Site, fetch

SITE = Site("utrecht", 52.0, 5.0)
NOW = pd.Timestamp("2024-04-02 09:41", tz="UTC")


def body(times: list[str], temperatures: list[float], zone: str = "GMT") -> dict:
    """An hourly body as Open-Meteo sends it (offset-free times in the zone it names)."""
    return {
        "latitude": 52.0,
        "longitude": 5.0,
        "timezone": zone,
        "hourly_units": {"time": "iso8601", "temperature_2m": "°C"},
        "hourly": {"time": times, "temperature_2m": temperatures},
    }


def hours(start: str, count: int) -> list[str]:
    return [t.strftime("%Y-%m-%dT%H:%M") for t in pd.date_range(start, periods=count, freq="h")]


def served(request) -> tuple[int, dict, str]:
    """Answers any date range with one hour per day asked for, 0.5 x the day of the month."""
    params = request.params
    days = pd.date_range(params["start_date"], params["end_date"], freq="D")
    times = [d.strftime("%Y-%m-%dT12:00") for d in days]
    return 200, {}, json.dumps(body(times, [d.day / 2 for d in days]))


@responses.activate
def test_a_long_range_goes_in_chunks_and_comes_back_whole():
    responses.add_callback(responses.GET, ENDPOINTS["archive"], callback=served)
    rows = fetch(SITE, "archive", date(2023, 1, 1), date(2023, 12, 31), now=NOW)
    ranges = [
        (c.request.params["start_date"], c.request.params["end_date"]) for c in responses.calls
    ]
    assert ranges == [
        ("2023-01-01", "2023-04-02"),
        ("2023-04-03", "2023-07-03"),
        ("2023-07-04", "2023-10-03"),
        ("2023-10-04", "2023-12-31"),
    ]
    assert all(c.request.params["timezone"] == "GMT" for c in responses.calls)
    assert len(rows) == 365 and rows["observed_at"].is_unique
    assert rows["observed_at"].iloc[0] == pd.Timestamp("2023-01-01 12:00", tz="UTC")
    assert (
        rows.loc[rows["observed_at"] == pd.Timestamp("2023-02-14 12:00", tz="UTC"), "value"].item()
        == 7.0
    )
    assert set(rows["kind"]) == {"observed"} and rows["issued_at"].isna().all()
    assert set(rows["variable"]) == {"temperature"} and set(rows["site_id"]) == {"utrecht"}


@pytest.mark.parametrize("status", [429, 500, 503])
@responses.activate
def test_429_and_5xx_are_retried_with_backoff(status):
    url = ENDPOINTS["forecast"]
    headers = {"Retry-After": "7"} if status == 429 else {}
    for _ in range(2):
        responses.add(responses.GET, url, status=status, headers=headers)
    responses.add(responses.GET, url, json=body(hours("2024-04-02", 3), [1.0, 2.0, 3.0]))
    waits = []
    rows = fetch(SITE, "forecast", date(2024, 4, 2), date(2024, 4, 2), sleep=waits.append, now=NOW)
    assert len(responses.calls) == 3
    # A Retry-After header is honoured; otherwise the wait doubles from BACKOFF_SECONDS.
    assert waits == ([7.0, 7.0] if status == 429 else [1.0, 2.0])
    assert rows["value"].tolist() == [1.0, 2.0, 3.0]
    # A forecast is marked as one, issued when it was fetched (the hour of `now`).
    assert set(rows["kind"]) == {"forecast"}
    assert set(rows["issued_at"]) == {pd.Timestamp("2024-04-02 09:00", tz="UTC")}


@responses.activate
def test_retries_give_up_after_the_last_one():
    responses.add(responses.GET, ENDPOINTS["archive"], status=502)
    waits = []
    with pytest.raises(requests.HTTPError):
        fetch(SITE, "archive", date(2024, 1, 1), date(2024, 1, 2), sleep=waits.append, now=NOW)
    assert len(responses.calls) == open_meteo.RETRIES + 1
    assert waits == [2.0**k for k in range(open_meteo.RETRIES)]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"<html>maintenance</html>", "not JSON"),
        (json.dumps({"error": True, "reason": "x"}).encode(), "KeyError: 'hourly'"),
        (json.dumps(body(hours("2024-01-01", 2), [1.0])).encode(), "1 values for 2 times"),
        (json.dumps(body(["yesterday"], [1.0])).encode(), "ValueError"),
        (json.dumps(body(hours("2024-01-01", 1), ["warm"])).encode(), "ValueError"),
        (json.dumps([1, 2]).encode(), "not a JSON object"),
    ],
    ids=["html", "no-hourly", "short", "bad-time", "bad-value", "list"],
)
@responses.activate
def test_a_malformed_body_raises_with_its_reason_and_bytes(payload, reason):
    responses.add(responses.GET, ENDPOINTS["archive"], body=payload)
    with pytest.raises(MalformedResponse) as caught:
        fetch(SITE, "archive", date(2024, 1, 1), date(2024, 1, 1), now=NOW)
    assert reason in caught.value.reason
    assert caught.value.body == payload


@responses.activate
def test_local_times_are_read_in_the_zone_the_body_names_across_dst():
    """Europe/Amsterdam, 2024-03-31: 02:00 does not exist (01:00 -> 03:00 local is one hour);
    2024-10-27: 02:00 comes twice (summer time first)."""
    spring = ["2024-03-31T00:00", "2024-03-31T01:00", "2024-03-31T03:00", "2024-03-31T04:00"]
    autumn = ["2024-10-27T01:00", "2024-10-27T02:00", "2024-10-27T02:00", "2024-10-27T03:00"]
    for times in (spring, autumn):
        responses.add(
            responses.GET,
            ENDPOINTS["historical-forecast"],
            json=body(times, [1, 2, 3, 4], "Europe/Amsterdam"),
        )
    spring_rows = fetch(SITE, "historical-forecast", date(2024, 3, 31), date(2024, 3, 31), now=NOW)
    autumn_rows = fetch(
        SITE, "historical-forecast", date(2024, 10, 27), date(2024, 10, 27), now=NOW
    )
    utc = [t.strftime("%m-%d %H:%M") for t in spring_rows["observed_at"]]
    assert utc == ["03-30 23:00", "03-31 00:00", "03-31 01:00", "03-31 02:00"]
    utc = [t.strftime("%m-%d %H:%M") for t in autumn_rows["observed_at"]]
    assert utc == ["10-26 23:00", "10-27 00:00", "10-27 01:00", "10-27 02:00"]
    # A historical forecast's hour comes from the run of its 6-hour block (UTC).
    issued = [t.strftime("%m-%d %H:%M") for t in spring_rows["issued_at"]]
    assert issued == ["03-30 18:00", "03-31 00:00", "03-31 00:00", "03-31 00:00"]
    assert set(spring_rows["source"]) == {"open-meteo historical-forecast"}
