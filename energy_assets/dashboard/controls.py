"""What every page shows the same way: its heading, the month picker, an empty state."""

from __future__ import annotations

from datetime import date

import streamlit as st

from energy_assets.dashboard import queries
from energy_assets.dashboard.reads import cached

MONTH_COLUMN = st.column_config.DateColumn("month", format="YYYY-MM")
"""How a table shows a month (a date on its first day)."""


def heading(title: str, question: str) -> None:
    """The page's title and, under it, the question it answers."""
    st.title(title)
    st.caption(question)


def month_picker(
    months: list[date] | None = None,
    empty: str = "No meter data is loaded yet: drop files into the dropbox.",
    key: str = "month",
    label: str = "Month",
) -> date:
    """One of `months` (default: every month with readings), the newest first; without any,
    the page says `empty` and stops."""
    months = cached(queries.data_months) if months is None else months
    if not months:
        nothing_yet(empty)
    return st.selectbox(label, months, format_func=lambda m: f"{m:%B %Y}", key=key)


def nothing_yet(message: str) -> None:
    """Say why there is nothing to show, and end the page there."""
    st.info(message)
    st.stop()
