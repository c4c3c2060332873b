"""Serving the dashboard: the Streamlit command line (`energy dashboard`), the connection it
reads through (the analyst role, never the platform's own) and the environment `energy up`
starts it with (without the platform's credentials)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from energy_assets.dashboard import LOAD_BLUE
from energy_assets.settings import LOCATION_VARIABLES, Settings
from energy_assets.warehouse.postgres import ANALYST, WAREHOUSE_DB, Database
from energy_assets.warehouse.roles import analyst_url

APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"


def streamlit_command(host: str, port: int) -> list[str]:
    """`streamlit run` of the app on host:port, headless, for viewers: no usage statistics, no
    developer menu, no file watching, no "magic" (a bare string in a page is not shown). The
    accent is the charts' load blue: Streamlit's default red made a 100 % complete meter's
    progress bar look like an alarm."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "viewer",
        "--global.developmentMode",
        "false",
        "--runner.magicEnabled",
        "false",
        "--theme.primaryColor",
        LOAD_BLUE,
    ]


def dashboard_url(settings: Settings, db: Database) -> str:
    """The warehouse as the analyst: ENERGY_ANALYST_URL when set; else on the embedded server
    with the analyst's passfile, on your own server with no password (PGPASSWORD or
    ~/.pgpass give it)."""
    if settings.analyst_url:
        return settings.analyst_url
    if db.server is not None:
        return db.server.url(WAREHOUSE_DB, ANALYST)
    return analyst_url(db.warehouse_url)


def dashboard_env(env: Mapping[str, str], url: str) -> dict[str, str]:
    """`env` without the platform's own connections and passwords, with the analyst's URL."""
    return {k: v for k, v in env.items() if k not in LOCATION_VARIABLES} | {
        "ENERGY_ANALYST_URL": url
    }
