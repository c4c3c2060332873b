"""Debian's Chromium driven by Playwright (never Playwright's own download), for the tests that
look at the UI and the dashboard in a real browser; screenshots go to `ARTIFACTS`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from energy_assets.settings import REPO_ROOT

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO_ROOT / "test-artifacts" / "browser"


def debian_chromium() -> Path:
    """/usr/bin/chromium, installed with apt when missing; a skip only where apt cannot run."""
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("Chromium is not installed and apt-get cannot run here (needs root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "chromium"]
    result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:  # a stale package list: refresh it once
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600)
        result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    if not CHROMIUM.exists():
        pytest.skip(f"apt-get could not install chromium: {result.stderr.strip()[-500:]}")
    return CHROMIUM


def chromium_page(playwright, viewport: dict) -> Page:
    """A page of a fresh headless Chromium (close it with `page.context.browser.close()`)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser = playwright.chromium.launch(
        executable_path=str(debian_chromium()),
        headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    )
    return browser.new_page(viewport=viewport)


def check_page(page: Page, url: str, title: str, texts: list[str], chart: bool, shot: str) -> None:
    """Open a dashboard page: its heading and every text in `texts` visible, a Plotly chart
    drawn when `chart`; then, once Streamlit has finished the script, a screenshot `shot`."""
    page.goto(url)
    expect(page.get_by_role("heading", name=title)).to_be_visible(timeout=60_000)
    for text in texts:
        expect(page.get_by_text(text).first).to_be_visible(timeout=30_000)
    if chart:
        expect(page.locator(".js-plotly-plot .main-svg").first).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("stStatusWidget")).to_be_hidden(timeout=60_000)
    page.screenshot(path=ARTIFACTS / shot)
