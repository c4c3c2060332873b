"""The dashboard's pages run by Streamlit's AppTest against one real platform: the sample feeders
(January 2024) and real London households (January and February 2013, a vacant one among them)
loaded by `energy run`, forecasts on, read through the analyst role. Every number a page shows
is checked against the marts and `ml`, queried here as the platform's own user."""

from __future__ import annotations

import base64
import gzip
import json
import os
import shutil
import subprocess
from datetime import date, timedelta

import numpy as np
import pandas as pd
import psycopg2
import pytest
from browser import check_page, chromium_page
from conftest import SHARED_DATA, configured_platform, copied_databases, free_port
from playwright.sync_api import sync_playwright
from streamlit.testing.v1 import AppTest
from test_roles import ANALYST_PASSWORD
from up_process import answers, wait_for

from energy_assets.cli import main
from energy_assets.commands.dashboard import dashboard_env, streamlit_command
from energy_assets.commands.run import run_once
from energy_assets.dashboard import figures, queries
from energy_assets.dashboard.app import PAGES, TITLES
from energy_assets.ingest.sample import write_sample
from energy_assets.segments.store import NEAR_EMPTY_SEGMENT
from energy_assets.warehouse.roles import analyst_url

LCL = SHARED_DATA / "lcl_london_2013_60hh"
HOUSEHOLDS = (
    "MAC000003",  # storage heating: most of its energy at night
    "MAC000024",
    "MAC000005",  # ToU
    "MAC000052",  # ToU
    "MAC000040",
    "MAC000085",
    "MAC000037",  # vacant: 2-6 W all year
)
JANUARY_2024, JANUARY_2013, FEBRUARY_2013 = date(2024, 1, 1), date(2013, 1, 1), date(2013, 2, 1)


def write_households(dropbox) -> None:
    """The chosen households' January and February 2013, lines verbatim, and their metadata."""
    with (
        gzip.open(LCL / "halfhourly_kwh.csv.gz", "rt") as source,
        open(dropbox / "lcl.csv", "w") as out,
    ):
        out.write(next(source))
        for line in source:
            if line.split(",", 1)[0] in HOUSEHOLDS and (",2013-01-" in line or ",2013-02-" in line):
                out.write(line)
    shutil.copy(LCL / "households.csv", dropbox)


def backtest(platform, month: str) -> None:
    """The forecast backtest of one month alone, as the month run runs it (the whole month runs
    with forecasts on would cost minutes more)."""
    from dagster import DagsterInstance, materialize

    from energy_assets.commands.session import platform_session
    from energy_assets.forecasts.assets import forecast_backtest
    from energy_assets.resources import Platform

    resource = Platform(home=str(platform.settings.home), warehouse_url=platform.warehouse_url)
    with platform_session(platform.settings):
        result = materialize(
            [forecast_backtest],
            partition_key=month,
            instance=DagsterInstance.get(),
            resources={"platform": resource},
        )
    assert result.success


@pytest.fixture(scope="module")
def seeded(pg_server, templates, tmp_path_factory):
    """One platform for the module, loaded by a real `energy run` (forecasts off), the
    households' February backtested, the analyst's URL set."""
    if not LCL.exists():
        pytest.skip("needs ../shared/data/lcl_london_2013_60hh (real London households)")
    with pytest.MonkeyPatch.context() as patch, copied_databases(pg_server, templates) as urls:
        platform = configured_platform(patch, tmp_path_factory.mktemp("dashboard") / "home", urls)
        write_sample(platform.settings.dropbox, months=("2024-01",))
        write_households(platform.settings.dropbox)
        report = run_once(platform.settings)
        assert report.ok, report.table()
        patch.setenv("ENERGY_FORECASTS", "on")
        patch.setenv("ENERGY_BACKTEST_METERS", "1")  # the pages show the meters' total
        patch.setenv("ENERGY_FORECAST_ROUNDS", "20")  # x a bag of 3: forecasts of any accuracy
        backtest(platform, "2013-02")
        conn = psycopg2.connect(platform.warehouse_url)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("alter role energy_analyst password %s", (ANALYST_PASSWORD,))
        conn.close()
        url = analyst_url(platform.warehouse_url).replace(
            "energy_analyst@", f"energy_analyst:{ANALYST_PASSWORD}@"
        )
        patch.setenv("ENERGY_ANALYST_URL", url)
        yield platform


def page(name: str, **choices) -> AppTest:
    """The page run once, then with each widget (by key) set to its choice and run again."""
    app = AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=60).run()
    for key, value in choices.items():
        assert not app.exception, [e.message for e in app.exception]
        app.get_by_key(key).set_value(value)
        app.run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def table(app: AppTest, column: str) -> pd.DataFrame:
    """The first table on the page with `column` (AppTest does not find tables by key)."""
    return next(frame.value for frame in app.dataframe if column in frame.value.columns)


def metrics(app: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in app.metric}


def charts(app: AppTest) -> list[dict]:
    """The Plotly figures on the page, as JSON."""
    return [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]


def trace(figure: dict, name: str, axis: str = "y") -> list:
    """The values on `axis` of the figure's trace `name`."""
    data = next(t for t in figure["data"] if t.get("name") == name)[axis]
    if isinstance(data, dict):  # Plotly's binary encoding of a numeric array
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"]).tolist()
    return list(data)


def test_network_status_shows_the_latest_loads_findings_files_and_freshness(seeded):
    app = page("network")
    shown = metrics(app)
    values = [m.value for m in app.metric]  # system, then households: the labels repeat
    system = seeded.query(
        "select interval_start, mw_total from marts.fct_system_intervals order by 1"
    )
    latest = pd.Timestamp(system["interval_start"].iat[-1]).tz_convert("UTC")
    week = system[system["interval_start"] >= latest - timedelta(days=7)]
    assert shown[f"Latest ({latest:%d %b %H:%M} UTC)"] == f"{system['mw_total'].iat[-1]:,.3f} MW"
    assert values[1] == f"{week['mw_total'].max():,.3f} MW"
    households = seeded.query(
        "select interval_start, sum(coalesce(kw_net, demand_kw)) as kw"
        " from marts.fct_intervals_clean where feeder is null group by 1 order by 1"
    )
    days = households[
        households["interval_start"] >= households["interval_start"].max() - timedelta(days=7)
    ]
    assert values[3:5] == [f"{households['kw'].iat[-1]:,.3f} kW", f"{days['kw'].max():,.3f} kW"]
    assert shown["Forecast peak, next day"] == "no live forecast"  # energy run: forecasts off
    figure = charts(app)[0]
    assert trace(figure, "Load") == pytest.approx(week["mw_total"].tolist())

    findings = seeded.query(
        "select severity, count(*) as n from ml.anomalies where month_start = %s group by 1",
        (JANUARY_2024,),
    ).set_index("severity")["n"]
    assert shown["Findings"] == str(findings.sum())
    for severity in ("high", "medium", "low"):
        assert shown[f"{severity.capitalize()} severity"] == str(findings.get(severity, 0))
    files = seeded.query("select status, count(*) as n from raw.files group by 1")
    assert shown["Loaded"] == str(files.set_index("status")["n"].get("loaded", 0))
    assert shown["Quarantined"] == "0"
    fresh = table(app, "state")
    assert fresh["month_start"].tolist() == [JANUARY_2024, FEBRUARY_2013, JANUARY_2013]
    assert fresh["state"].tolist() == ["up to date"] * 3


def test_feeders_page_shows_a_feeders_month_its_gap_and_the_households_total(seeded):
    app = page("feeders", month=JANUARY_2024, feeder="North")
    north = seeded.query(
        "select mw_net, pf_net, meters_reporting < meters_expected as short"
        " from marts.fct_feeder_intervals where feeder = 'North' order by interval_start"
    )
    shown = metrics(app)
    assert shown["Peak (net)"] == f"{north['mw_net'].max():,.3f} MW"
    assert shown["Intervals missing data"] == str(int(north["short"].sum())) == "8"
    assert shown["Lowest power factor"] == f"{north['pf_net'].min():.3f}"
    profile = charts(app)[0]
    assert trace(profile, "Net") == pytest.approx(north["mw_net"].tolist())
    assert len(trace(profile, figures.MISSING_LABEL, "x")) == 8
    gaps = table(app, "missing_intervals")
    assert gaps[["meter_id", "missing_intervals"]].values.tolist() == [["M1002", 8]]

    app = page("feeders", month=JANUARY_2013, feeder="Meters on no feeder (added up)")
    total = seeded.query(
        "select sum(coalesce(kw_net, demand_kw)) as kw from marts.fct_intervals_clean"
        " where feeder is null and interval_start < '2013-02-01' group by interval_start"
    )
    assert metrics(app)["Peak (net)"] == f"{total['kw'].max():,.3f} kW"
    heatmap = charts(app)[1]["data"][0]
    assert heatmap["type"] == "heatmap" and len(heatmap["y"]) == 31 and len(heatmap["x"]) == 48


def test_forecasts_page_shows_the_backtest_against_the_naive_forecast(seeded):
    scores = seeded.query(
        "select * from ml.backtest_metrics where target_kind = 'meters_total' and month_start = %s",
        (FEBRUARY_2013,),
    )
    assert len(scores) == 1, "the February backtest of the households' total"
    app = page("forecasts", kind="meters_total", month=FEBRUARY_2013)
    shown = metrics(app)
    row = scores.iloc[0]
    assert shown["Forecast error (WAPE)"] == f"{row['wape']:.1%}"
    assert shown["Seasonal naive (WAPE)"] == f"{row['baseline_wape']:.1%}"
    assert shown["Actual inside P10-P90"] == f"{row['coverage_p10_p90']:.1%}"
    forecast = seeded.query(
        "select interval_start, actual from ml.forecasts where run_kind = 'backtest'"
        " and target_kind = 'meters_total' and month_start = %s order by 1",
        (FEBRUARY_2013,),
    )
    last_week = forecast[
        forecast["interval_start"]
        >= forecast["interval_start"].max().normalize() - timedelta(days=6)
    ]
    assert trace(charts(app)[0], "Actual") == pytest.approx(last_week["actual"].tolist())
    models = table(app, "model_version")
    assert len(models) == min(50, seeded.scalar("select count(*) from ml.models"))
    rule = models[models["model_version"] == "same_slot_mean_4w"]  # never trained: no dates
    assert len(rule) == 1 and rule[["trained_at", "train_start", "train_end"]].isna().all(None)
    assert models["trained_at"].iloc[:-1].is_monotonic_decreasing


def test_anomalies_page_lists_filters_and_opens_findings(seeded):
    found = seeded.query(
        "select kind, target_id, score, reason, severity, action from ml.anomalies"
        " where month_start = %s"
        " order by array_position(array['high', 'medium', 'low'], severity), score desc, target_id",
        (JANUARY_2024,),
    )
    app = page("anomalies", month=JANUARY_2024)
    assert metrics(app)["Findings"] == str(len(found))
    first = found.iloc[0]
    assert app.warning[0].value.endswith(first["reason"])
    assert app.info[0].value == (
        f"**{first['severity'].capitalize()} severity.** Suggested action: {first['action']}."
    )
    for severity in found["severity"].unique():
        app = page("anomalies", month=JANUARY_2024, severities=[severity])
        assert metrics(app)["Findings"] == str((found["severity"] == severity).sum())
    chart = charts(app)[0]
    assert chart["layout"]["shapes"][0]["fillcolor"] == figures.FINDING

    # M1002's outage while M1001, on its feeder, reported: one silent_meter finding, no gap one.
    assert "gap" not in set(found["kind"])
    app = page("anomalies", month=JANUARY_2024, kinds=["silent_meter"])
    silent = found[found["kind"] == "silent_meter"]
    assert metrics(app)["Findings"] == str(len(silent)) == "1"
    assert app.warning[0].value == (
        f"**silent_meter** on meter **M1002**: {silent['reason'].iat[0]}"
    )


def test_customers_page_shows_a_households_windows_and_hourly_pattern(seeded):
    app = page("customers", search="000003", month=JANUARY_2013, window="week")
    month = seeded.query(
        "select * from marts.customer_behavior where customer_id = 'MAC000003'"
        " and window_length = 'month' and window_start = '2013-01-01'"
    ).iloc[0]
    shown = metrics(app)
    assert shown["Mean demand"] == f"{month['mean_kw']:.3f} kW"
    assert shown[f"Peak (at {month['peak_hour']:02d}:00 local)"] == f"{month['max_kw']:.3f} kW"
    assert shown["Weekend mean"] == f"{month['weekend_mean_kw']:.3f} kW"
    assert shown["Night share (00-06)"] == f"{month['night_share']:.1%}"
    weeks = seeded.query(
        "select mean_kw from marts.customer_behavior where customer_id = 'MAC000003'"
        " and window_length = 'week' and window_start >= '2013-01-01'"
        " and window_start < '2013-02-01' order by window_start"
    )
    behaviour, hourly = charts(app)
    assert trace(behaviour, "Mean") == pytest.approx(weeks["mean_kw"].tolist())
    weekdays = seeded.query(
        "select mean_kw from marts.customer_hourly_profile where customer_id = 'MAC000003'"
        " and month_start = '2013-01-01' and day_type = 'weekday' order by hour"
    )
    assert trace(hourly, "Weekdays") == pytest.approx(weekdays["mean_kw"].tolist())


def test_segments_page_sets_the_vacant_house_apart_and_compares_months(seeded):
    members = seeded.query(
        "select customer_id, segment from ml.customer_segments where month_start = %s",
        (FEBRUARY_2013,),
    )
    empty = members[members["segment"] == NEAR_EMPTY_SEGMENT]
    assert empty["customer_id"].tolist() == ["MAC000037"]
    app = page("segments", month=FEBRUARY_2013)
    shown = metrics(app)
    assert shown["Near-empty, set apart"] == "1"
    assert shown["Customers in segments"] == str(len(members) - 1)
    assert "MAC000037" in app.warning[0].value
    k = seeded.scalar(
        "select max(k) from ml.customer_segments where month_start = %s", (FEBRUARY_2013,)
    )
    assert len(charts(app)[0]["data"]) == k
    moved = table(app, "customer")
    assert shown["Customers who moved"] == str(len(moved))


def test_tariffs_and_quality_page_match_the_marts(seeded):
    app = page("quality", month=FEBRUARY_2013, months=2)
    usage = seeded.query(
        "select tariff, total_kwh from marts.usage_by_tariff order by month_start_local, tariff"
    )
    usage_shown = table(app, "tariff")
    assert usage_shown["tariff"].tolist() == usage["tariff"].tolist()
    assert usage_shown["total_kwh"].tolist() == pytest.approx(
        usage["total_kwh"].astype(float).tolist()
    )
    meters = seeded.scalar(
        "select count(distinct meter_id) from marts.fct_meter_daily where day_start < '2013-03-01'"
    )
    assert metrics(app)["Meters"] == str(meters)


def test_shading_marks_missing_and_estimated_intervals():
    times = pd.date_range("2024-01-01", periods=6, freq="15min", tz="UTC")
    frame = pd.DataFrame(
        {
            "interval_start": times,
            "value": [1.0, None, 2.0, 3.0, 2.0, 1.0],
            "complete": [True, False, True, True, True, True],
            "estimated": [False, False, False, True, True, False],
        }
    )
    figure = figures.load_chart(frame, "t", "kW")
    missing = next(t for t in figure.data if t.name == figures.MISSING_LABEL)
    estimated = next(t for t in figure.data if t.name == figures.ESTIMATED_LABEL)
    half = pd.Timedelta(minutes=7.5)
    assert list(pd.to_datetime(missing.x, utc=True)) == [times[1] + half]
    assert list(pd.to_datetime(estimated.x, utc=True)) == [times[3] + half, times[4] + half]
    assert missing.base == 0.0 and list(missing.y) == [3.0]
    assert queries.ESTIMATED == "estimated"


def test_the_dashboard_is_served_headless_for_viewers_with_the_analysts_url_alone(
    monkeypatch, capsys
):
    command = streamlit_command("127.0.0.1", 8601)
    assert command[1:4] == ["-m", "streamlit", "run"]
    assert dict(zip(command[5::2], command[6::2], strict=True)) == {
        "--server.address": "127.0.0.1",
        "--server.port": "8601",
        "--server.headless": "true",
        "--server.fileWatcherType": "none",
        "--browser.gatherUsageStats": "false",
        "--client.toolbarMode": "viewer",
        "--global.developmentMode": "false",
        "--runner.magicEnabled": "false",
        "--theme.primaryColor": "#1f77b4",
    }
    analyst = "postgresql://energy_analyst@127.0.0.1:5432/energy"
    platform = {
        "PATH": "/usr/bin",
        "ENERGY_TIMEZONE": "Europe/London",
        "ENERGY_DATABASE_URL": "postgresql://owner:secret@127.0.0.1:5432/energy",
        "ENERGY_WAREHOUSE_URL": "postgresql://owner:secret@127.0.0.1:5432/energy",
        "ENERGY_PGPASSWORD": "secret",
        "ENERGY_DAGSTER_PGPASSWORD": "secret",
    }
    assert dashboard_env(platform, analyst) == {
        "PATH": "/usr/bin",
        "ENERGY_TIMEZONE": "Europe/London",
        "ENERGY_ANALYST_URL": analyst,
    }
    monkeypatch.delenv("ENERGY_ANALYST_URL", raising=False)
    assert main(["dashboard"]) == 1
    assert "ENERGY_ANALYST_URL is not set" in capsys.readouterr().err


@pytest.fixture
def served(seeded):
    """The app served by Streamlit as `energy dashboard` serves it, as the analyst only."""
    port = free_port()
    env = dashboard_env(os.environ, os.environ["ENERGY_ANALYST_URL"])
    app = subprocess.Popen(
        streamlit_command("127.0.0.1", port),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: answers(f"{url}/_stcore/health"), 60, "Streamlit to serve the app")
        yield url
    finally:
        app.terminate()
        app.wait(timeout=30)


def test_a_browser_shows_the_household_pages_with_their_charts(seeded, served):
    """The pages the feeder sample leaves empty (forecasts, customers, segments), in Chromium
    as a viewer sees them: their charts drawn and their first numbers equal to `ml` and the
    marts. Screenshots: test-artifacts/browser/dashboard-households-*.png."""
    scores = seeded.query(
        "select wape from ml.backtest_metrics where target_kind = 'meters_total'"
        " and month_start = %s",
        (FEBRUARY_2013,),
    )
    first = seeded.scalar("select min(customer_id) from marts.customer_behavior")
    mean = seeded.scalar(
        "select mean_kw from marts.customer_behavior where customer_id = %s"
        " and window_length = 'month' order by window_start desc limit 1",
        (first,),
    )
    expected = {  # page -> texts it must show by default
        "forecasts": ["Forecast error (WAPE)", f"{scores['wape'].iat[0]:.1%}"],
        "customers": [first, f"{mean:.3f} kW"],
        "segments": ["Near-empty, set apart", "MAC000037", "Customers who moved"],
    }
    with sync_playwright() as playwright:
        page = chromium_page(playwright, {"width": 1400, "height": 2200})
        try:
            for name, texts in expected.items():
                shot = f"dashboard-households-{name}.png"
                check_page(page, f"{served}/{name}", TITLES[name], texts, True, shot)
        finally:
            page.context.browser.close()
