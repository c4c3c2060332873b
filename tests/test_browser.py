"""The Dagster UI in a real browser, with `energy up` running on generated sample data.

Chromium comes from Debian (`apt-get install chromium`), never from Playwright's own download.
Screenshots go to `test-artifacts/browser/`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import PLATFORM_ENV, free_port, server_home
from playwright.sync_api import Page, expect, sync_playwright
from up_process import (
    SAMPLE_SYSTEM_INTERVALS,
    energy_up,
    graphql,
    partition_stats,
    system_intervals,
    wait_for,
)

from energy_assets.sample import write_sample
from energy_assets.settings import REPO_ROOT

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO_ROOT / "test-artifacts" / "browser"
GROUPS = {  # asset graph group -> assets that must be in it
    "raw": ["readings", "meters"],
    "marts": ["fct_intervals_clean", "fct_feeder_intervals", "fct_system_intervals", "fct_gaps"],
    "ml": ["customer_segments"],
    "plots": ["load_profiles", "customer_patterns"],
}


def debian_chromium() -> Path:
    """/usr/bin/chromium, installed with apt when missing; a skip only where apt cannot run."""
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("Chromium is not installed and apt-get cannot run here (needs root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(["apt-get", "install", "-y", "chromium"], env=env,
                            capture_output=True, text=True, timeout=900)  # fmt: skip
    if result.returncode != 0:  # a stale package list: refresh it once
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600)
        result = subprocess.run(["apt-get", "install", "-y", "chromium"], env=env,
                                capture_output=True, text=True, timeout=900)  # fmt: skip
    if not CHROMIUM.exists():
        pytest.skip(f"apt-get could not install chromium: {result.stderr.strip()[-500:]}")
    return CHROMIUM


def expand_asset_graph(page: Page) -> None:
    """Open every group, in the graph (context menu) and in the sidebar tree (full names)."""
    page.get_by_text("Materialize all").wait_for()
    page.mouse.click(page.viewport_size["width"] - 200, 300, button="right")
    page.get_by_role("menuitem", name="Expand all groups").click()
    for group in GROUPS:
        page.get_by_text(group, exact=True).first.click()
        page.keyboard.press("ArrowRight")


def test_ui_shows_raw_dbt_and_ml_assets_and_materialized_months(tmp_path, monkeypatch):
    chromium = debian_chromium()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for key in PLATFORM_ENV:
        monkeypatch.delenv(key, raising=False)
    ui_port, db_port = free_port(), free_port()
    with server_home() as home:
        monkeypatch.setenv("ENERGY_HOME", str(home))
        monkeypatch.setenv("ENERGY_PG_PORT", str(db_port))
        monkeypatch.setenv("ENERGY_FILE_STABLE_SECONDS", "1")
        monkeypatch.setenv("ENERGY_FORECASTS", "off")  # not what this test looks at
        with energy_up(ui_port, tmp_path / "up.log"):
            write_sample(home / "dropbox")
            wait_for(lambda: system_intervals(db_port) == SAMPLE_SYSTEM_INTERVALS, 600,
                     "the sensor to load the sample and build the marts")  # fmt: skip
            for asset in ("raw/readings", "marts/fct_system_intervals"):
                wait_for(lambda a=asset: partition_stats(ui_port, a)["numMaterialized"] == 2, 300,
                         f"Dagster to record both months of {asset}")  # fmt: skip
            # The first visit would open the "Join the Dagster community" dialog.
            assert graphql(ui_port, "mutation { setNuxSeen }") == {"setNuxSeen": True}

            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(chromium), headless=True,
                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
                )  # fmt: skip
                try:
                    page = browser.new_page(viewport={"width": 1800, "height": 1100})
                    check_pages(page, f"http://127.0.0.1:{ui_port}")
                finally:
                    browser.close()


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
        for month in ("2024-01-01", "2024-02-01"):
            expect(page.get_by_text(month, exact=True).first).to_be_visible()
        expect(page.get_by_text("2023-12-01", exact=True)).to_have_count(0)
        page.screenshot(path=ARTIFACTS / f"{asset.replace('/', '-')}-partitions.png")
