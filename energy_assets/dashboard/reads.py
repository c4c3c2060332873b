"""How the pages read the warehouse: as the read-only analyst role (`ENERGY_ANALYST_URL`),
each answer of `queries` cached for a minute, so a page redrawn by a click asks nothing again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import psycopg2
import streamlit as st

from energy_assets.dashboard import queries
from energy_assets.settings import Settings

CACHE_SECONDS = 60
"""How long an answer is reused: the month runs and the sensor change the marts in minutes."""
STATEMENT_TIMEOUT = "30s"
"""A query that takes longer fails with a message instead of holding the page."""


def analyst_url() -> str:
    """The analyst's connection string; the page stops with an explanation without one."""
    url = Settings.from_env().analyst_url
    if not url:
        st.error(
            "The dashboard has no connection: ENERGY_ANALYST_URL is not set. `energy up` sets"
            " it; elsewhere set it to the warehouse as the read-only role energy_analyst."
        )
        st.stop()
    return url


@st.cache_data(ttl=CACHE_SECONDS, show_spinner="Reading the warehouse...")
def _answer(url: str, name: str, args: tuple) -> Any:
    options = f"-c statement_timeout={STATEMENT_TIMEOUT} -c default_transaction_read_only=on"
    conn = psycopg2.connect(url, application_name="energy_dashboard", options=options)
    with contextlib.closing(conn):
        return getattr(queries, name)(conn, *args)


def cached(query: Callable, *args: Any) -> Any:
    """`query(connection, *args)` for a function of `queries`, from the cache when fresh."""
    return _answer(analyst_url(), query.__name__, args)
