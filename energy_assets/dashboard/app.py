"""The dashboard's entry point, for `streamlit run` (`energy dashboard` runs it, and `energy up`
beside the Dagster UI): the page list and the navigation. Each page is a script in `screens/`."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

PAGES = Path(__file__).parent / "screens"
# Page script (also its URL path) -> title, in the order of the navigation. (Comments, not
# docstrings, in the scripts Streamlit runs: it would show a bare string on the page.)
TITLES = {
    "network": "Network status",
    "feeders": "Feeders",
    "forecasts": "Forecasts",
    "anomalies": "Anomalies",
    "customers": "Customers",
    "segments": "Segments",
    "quality": "Tariffs and data quality",
}

st.set_page_config(page_title="Energy assets", layout="wide")
st.navigation([st.Page(PAGES / f"{name}.py", title=title) for name, title in TITLES.items()]).run()
