"""Feeders: a feeder's month of load, net and gross, with missing and estimated intervals
shaded, its power factor and its gaps; the system and the meters on no feeder as totals."""

from __future__ import annotations

import streamlit as st

from energy_assets.dashboard import figures, queries
from energy_assets.dashboard.controls import heading, month_picker, nothing_yet
from energy_assets.dashboard.reads import cached
from energy_assets.months import next_month

SYSTEM = "System (all feeders)"
METERS_TOTAL = "Meters on no feeder (added up)"

heading(
    "Feeders",
    "How did a feeder's load run over the month, which way did power flow, where is data"
    " missing, and how good was its power factor?",
)
left, right = st.columns(2)
with left:
    month = month_picker()
feeders = cached(queries.feeders)
choices = ([SYSTEM] if feeders else []) + feeders
if cached(queries.latest_reading, "meters_total") is not None:
    choices.append(METERS_TOTAL)
if not feeders:
    st.info("No feeders in this data (meter metadata names none): the meters' total is shown.")
if not choices:
    nothing_yet("No meter data is loaded yet.")
choice = right.selectbox("Feeder", choices, key="feeder")
kind = {SYSTEM: "system", METERS_TOTAL: "meters_total"}.get(choice, "feeder")
unit = queries.UNITS[kind]
frame = cached(queries.load, kind, month, next_month(month), choice)
if frame.empty:
    nothing_yet(f"No data for {choice} in {month:%B %Y}.")

hours = figures.interval_step(frame["interval_start"]).total_seconds() / 3600
peak, energy, missing, estimated = st.columns(4)
peak.metric("Peak (net)", f"{frame['value'].max():,.3f} {unit}")
energy.metric("Energy (net)", f"{frame['value'].sum() * hours:,.1f} {unit}h")
missing.metric("Intervals missing data", int((~frame["complete"]).sum()))
estimated.metric("Intervals estimated", int(frame["estimated"].sum()))

title = f"{choice}, {month:%B %Y}"
if kind == "feeder":
    st.plotly_chart(figures.feeder_chart(frame, f"{title}: net load and flows"), key="profile")
    st.metric("Lowest power factor", f"{frame['pf_net'].min():.3f}")
    st.plotly_chart(figures.power_factor_chart(frame, f"{title}: power factor"), key="pf")
    gaps = cached(queries.feeder_gaps, choice, month)
    st.subheader(f"Gaps in the feeder's meters ({len(gaps)})")
    st.dataframe(gaps, hide_index=True, key="gaps")
else:
    st.plotly_chart(figures.load_chart(frame, f"{title}: load profile", unit), key="profile")
    st.plotly_chart(
        figures.heatmap(frame, f"{title}: load by day and time of day", unit), key="heatmap"
    )
