"""Network status: the load of the last days against the live forecast, this month's findings,
today's files and how fresh each month is."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import streamlit as st

from energy_assets.dashboard import figures, queries
from energy_assets.dashboard.controls import MONTH_COLUMN, heading, nothing_yet
from energy_assets.dashboard.reads import cached
from energy_assets.settings import Settings

LAST_DAYS = 7
MINUTE = "YYYY-MM-DD HH:mm"  # times in the tables, UTC
TOTALS = {  # target kind -> (target id, what it is)
    "system": ("system", "System load: every feeder added up"),
    "meters_total": (queries.METERS_TOTAL, "Meters on no feeder (households), added up"),
}

heading(
    "Network status",
    "Is the load where the forecast said it would be? What was found this month, which files"
    " came in today, and is every month rebuilt since its last file?",
)
months = cached(queries.data_months)
if not months:
    nothing_yet("No meter data is loaded yet: drop files into the dropbox.")

for kind, (target, title) in TOTALS.items():
    latest = cached(queries.latest_reading, kind)
    if latest is None:
        continue
    latest = pd.Timestamp(latest).tz_convert("UTC")
    frame = cached(
        queries.load, kind, latest - timedelta(days=LAST_DAYS), latest + timedelta(seconds=1)
    )
    forecast = cached(queries.live_forecast, kind, target)
    unit = queries.UNITS[kind]
    st.subheader(title)
    now, peak, next_peak = st.columns(3)
    now.metric(f"Latest ({latest:%d %b %H:%M} UTC)", f"{frame['value'].iat[-1]:,.3f} {unit}")
    peak.metric(f"Peak, last {LAST_DAYS} days", f"{frame['value'].max():,.3f} {unit}")
    if forecast.empty:
        next_peak.metric(
            "Forecast peak, next day",
            "no live forecast",
            help="ENERGY_FORECASTS is off, or the target has too little history yet",
        )
    else:
        next_peak.metric("Forecast peak (P50), next day", f"{forecast['p50'].max():,.3f} {unit}")
    chart_title = f"Last {LAST_DAYS} days" + ("" if forecast.empty else " and the live forecast")
    st.plotly_chart(figures.load_chart(frame, chart_title, unit, forecast), key=f"load-{kind}")
    if not forecast.empty:
        issued = pd.Timestamp(forecast["issued_at"].iat[0]).tz_convert("UTC")
        st.caption(
            f"The live forecast was issued {issued:%d %b %H:%M} UTC, the day before the day it"
            " covers, from the readings before then; the daily schedule and every month run"
            " renew it."
        )

month = months[0]
st.subheader(f"Findings in {month:%B %Y}")
counts = cached(queries.anomaly_counts, month)
if counts.empty:
    st.info("No anomalies found this month (or the month has not been analysed yet).")
else:
    by_severity = counts.groupby("severity")["findings"].sum()
    total, *levels = st.columns(1 + len(queries.SEVERITIES))
    total.metric("Findings", int(counts["findings"].sum()))
    for column, severity in zip(levels, queries.SEVERITIES, strict=True):
        column.metric(f"{severity.capitalize()} severity", int(by_severity.get(severity, 0)))
    st.dataframe(counts, hide_index=True, key="anomaly-counts")

settings = Settings.from_env()
midnight = pd.Timestamp.now(tz=settings.default_timezone).normalize()
files = cached(queries.files_since, midnight.to_pydatetime())
st.subheader(f"Files today (since {midnight:%H:%M %Z})")
loaded, quarantined, duplicate = st.columns(3)
for column, status in ((loaded, "loaded"), (quarantined, "quarantined"), (duplicate, "duplicate")):
    column.metric(status.capitalize(), int((files["status"] == status).sum()))
rejected = files[files["status"] == "quarantined"]
if not rejected.empty:
    st.markdown("**Quarantined, and why** (the files wait in `quarantine/` beside their reason)")
    st.dataframe(
        rejected[["name", "rule", "reason", "processed_at"]], hide_index=True, key="quarantined"
    )
with st.expander(f"Every file today ({len(files)})"):
    st.dataframe(files, hide_index=True, key="files")

st.subheader("Freshness per month")
fresh = cached(queries.freshness)
fresh = fresh.assign(
    state=fresh["up_to_date"].map({True: "up to date", False: "rebuild pending"})
).drop(columns="up_to_date")
st.dataframe(
    fresh,
    hide_index=True,
    key="freshness",
    column_config={
        "month_start": MONTH_COLUMN,
        "last_loaded": st.column_config.DatetimeColumn("last file loaded", format=MINUTE),
        "latest_reading": st.column_config.DatetimeColumn("readings up to", format=MINUTE),
        "rebuilt_at": st.column_config.DatetimeColumn("month last rebuilt", format=MINUTE),
    },
)
