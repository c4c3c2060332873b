"""`energy up` as a user runs it, on the embedded PostgreSQL, watched from outside: the sensor
loads dropped files into the marts, the Dagster UI and the dashboard show them in a real
browser, Ctrl-C stops every process and the data survives for the next start. One platform
serves the module's tests, in file order; the last one stops it.

Chromium comes from Debian (`apt-get install chromium`), never from Playwright's own download.
Screenshots go to `test-artifacts/browser/`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg2
import pytest
from browser import ARTIFACTS, check_page, chromium_page
from conftest import PLATFORM_ENV, free_port, server_home
from playwright.sync_api import Page, expect, sync_playwright
from up_process import (
    SAMPLE_SYSTEM_INTERVALS,
    embedded_url,
    energy_up,
    graphql,
    partition_stats,
    settled,
    ui_answers,
    wait_for,
)

from energy_assets.dashboard.app import TITLES
from energy_assets.ingest.sample import write_sample
from energy_assets.settings import Settings
from energy_assets.warehouse.postgres import platform_database

GROUPS = {  # asset graph group -> assets that must be in it
    "raw": ["readings", "meters"],
    "marts": ["fct_intervals_clean", "fct_feeder_intervals", "fct_system_intervals", "fct_gaps"],
    "ml": ["customer_segments"],
    "plots": ["load_profiles", "customer_patterns"],
}


def expand_asset_graph(page: Page) -> None:
    """Open every group, in the graph (context menu) and in the sidebar tree (full names)."""
    page.get_by_text("Materialize all").wait_for()
    page.mouse.click(page.viewport_size["width"] - 200, 300, button="right")
    page.get_by_role("menuitem", name="Expand all groups").click()
    for group in GROUPS:
        page.get_by_text(group, exact=True).first.click()
        page.keyboard.press("ArrowRight")


@dataclass
class RunningPlatform:
    process: subprocess.Popen
    home: Path
    env: dict[str, str]
    ui_port: int
    db_port: int
    dashboard_port: int
    log: Path
    children: list[psutil.Process]


@pytest.fixture(scope="module")
def up(tmp_path_factory) -> RunningPlatform:
    """`energy up` in a home of its own, with the sample dropped and loaded into the marts."""
    env = {k: v for k, v in os.environ.items() if k not in PLATFORM_ENV}
    ui_port, db_port, dashboard_port = free_port(), free_port(), free_port()
    with server_home() as home:
        env.update(
            ENERGY_HOME=str(home),
            ENERGY_PG_PORT=str(db_port),
            ENERGY_DASHBOARD_PORT=str(dashboard_port),
            ENERGY_FILE_STABLE_SECONDS="1",
            ENERGY_FORECASTS="off",
        )  # covered by test_forecast_assets
        log = tmp_path_factory.mktemp("up") / "up.log"
        with energy_up(ui_port, log, env) as process:
            children = psutil.Process(process.pid).children(recursive=True)
            write_sample(home / "dropbox")
            wait_for(
                lambda: settled(home, db_port),
                600,
                "the sensor to load the sample and build the marts of every file",
            )
            yield RunningPlatform(
                process, home, env, ui_port, db_port, dashboard_port, log, children
            )


def test_sensor_loads_dropped_files_into_the_marts(up):
    assert any("dagster-daemon" in " ".join(c.cmdline()) for c in up.children)
    assert not any((up.home / "dropbox").iterdir())
    assert sorted(p.name for p in (up.home / "archive" / "2024-02").iterdir()) == [
        "M1001_2024-02.csv",
        "M1002_2024-02.csv",
        "M2001_2024-02.csv",
    ]


def test_ui_shows_raw_dbt_and_ml_assets_and_materialized_months(up):
    for asset in ("raw/readings", "marts/fct_system_intervals"):
        wait_for(
            lambda a=asset: partition_stats(up.ui_port, a)["numMaterialized"] == 2,
            300,
            f"Dagster to record both months of {asset}",
        )
    # The first visit would open the "Join the Dagster community" dialog.
    assert graphql(up.ui_port, "mutation { setNuxSeen }") == {"setNuxSeen": True}
    with sync_playwright() as playwright:
        page = chromium_page(playwright, {"width": 1800, "height": 1100})
        try:
            check_pages(page, f"http://127.0.0.1:{up.ui_port}")
        finally:
            page.context.browser.close()


def streamlit_pids(processes: list[psutil.Process]) -> set[int]:
    """The live processes among `processes` that run Streamlit."""
    found = set()
    for process in processes:
        with contextlib.suppress(psutil.Error):
            if process.cmdline()[1:3] == ["-m", "streamlit"]:
                found.add(process.pid)
    return found


def test_dashboard_serves_every_page_as_the_analyst(up):
    """Beside the UI, on loopback, as the analyst only: every page renders its charts and shows
    the marts' numbers (the sample: feeders only, two months, forecasts off)."""
    url = f"http://127.0.0.1:{up.dashboard_port}"
    assert f"Dashboard     {url}\n" in up.log.read_text()
    dashboard = next(c for c in up.children if c.pid in streamlit_pids(up.children))
    command = " ".join(dashboard.cmdline())
    for option in (
        "--server.address 127.0.0.1",
        "--browser.gatherUsageStats false",
        "--client.toolbarMode viewer",
    ):
        assert option in command
    environment = dashboard.environ()
    assert environment["ENERGY_ANALYST_URL"].startswith("postgresql://energy_analyst@127.0.0.1:")
    assert not {"ENERGY_WAREHOUSE_URL", "ENERGY_PGPASSWORD"} & set(environment)

    conn = psycopg2.connect(embedded_url(up.home, up.db_port))
    with conn.cursor() as cur:
        cur.execute("select mw_total from marts.fct_system_intervals order by interval_start")
        latest = cur.fetchall()[-1][0]
        cur.execute("select count(*) from raw.files where status = 'loaded'")
        loaded = cur.fetchone()[0]
    conn.close()
    expected = {  # page -> texts it must show, from the marts
        "network": [f"{latest:,.3f} MW", "Files today", "Freshness per month"],
        "feeders": ["System (all feeders)", "Intervals missing data", "load by day and time"],
        "forecasts": ["No forecasts yet"],
        "anomalies": ["Open a finding", "M1002: no reading for 8 intervals"],  # the opened one
        "customers": ["No customers in this data"],
        "segments": ["No segments yet"],
        "quality": ["Completeness by meter and month", "M1002"],
    }
    charted = {"network", "feeders", "anomalies", "quality"}
    with sync_playwright() as playwright:
        page = chromium_page(playwright, {"width": 1400, "height": 2600})
        try:
            for name, title in TITLES.items():
                path = "" if name == "network" else name
                check_page(
                    page,
                    f"{url}/{path}",
                    title,
                    expected[name],
                    name in charted,
                    f"dashboard-{name}.png",
                )
                if name == "network":
                    files = page.locator('[data-testid="stMetric"]', has_text="Loaded")
                    expect(files).to_contain_text(str(loaded))
        finally:
            page.context.browser.close()


def test_ctrl_c_stops_every_process_and_the_data_survives(up, monkeypatch):
    up.process.send_signal(signal.SIGINT)
    assert up.process.wait(timeout=90) == 0
    assert not (up.home / "pgdata" / "postmaster.pid").exists()
    assert not ui_answers(up.ui_port)
    survivors = [c for c in up.children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert survivors == []

    for key, value in up.env.items():
        monkeypatch.setenv(key, value)
    with platform_database(Settings.from_env()) as db:
        conn = psycopg2.connect(db.warehouse_url)
        with conn.cursor() as cur:
            cur.execute("select count(*) from marts.fct_system_intervals")
            assert cur.fetchone()[0] == SAMPLE_SYSTEM_INTERVALS
            cur.execute("show work_mem")  # the embedded server's tuning, given at every start
            assert cur.fetchone()[0] == "64MB"
        conn.close()


def check_pages(page: Page, ui: str) -> None:
    page.goto(f"{ui}/asset-groups")
    expand_asset_graph(page)
    for group, assets in GROUPS.items():
        for asset in assets:
            expect(page.get_by_text(asset, exact=True).first).to_be_visible()
        assert group in page.inner_text("body")
    page.screenshot(path=ARTIFACTS / "asset-graph.png")

    # A month-partitioned dbt model and the raw table under it: both sample months materialized.
    for asset in ("marts/fct_system_intervals", "raw/readings"):
        page.goto(f"{ui}/assets/{asset}?view=partitions")
        expect(page.get_by_text("Materialized (2)")).to_be_visible(timeout=30_000)
        expect(page.get_by_text("Failed (0)")).to_be_visible()
        page.get_by_text("Missing (", exact=False).click()  # hide the months without data
        for month in ("2024-01", "2024-02"):
            expect(page.get_by_text(month, exact=True).first).to_be_visible()
        expect(page.get_by_text("2023-12", exact=True)).to_have_count(0)
        page.screenshot(path=ARTIFACTS / f"{asset.replace('/', '-')}-partitions.png")
