"""Tariffs and data quality: usage by tariff group, and how complete each meter's data is,
month by month."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from energy_assets.dashboard import figures, queries
from energy_assets.dashboard.controls import MONTH_COLUMN, heading, month_picker
from energy_assets.dashboard.reads import cached

WORST_METERS = 30  # meters in the completeness chart, least complete first (all in the table)

heading(
    "Tariffs and data quality",
    "How much do customers on each tariff use, and which meters' data is incomplete, month by"
    " month?",
)
left, right = st.columns(2)
with left:
    last = month_picker(label="Up to month")
span = right.slider("Months", 1, 12, 3, key="months")
first = (pd.Timestamp(last) - pd.DateOffset(months=span - 1)).date()

st.subheader("Usage by tariff")
usage = cached(queries.tariff_usage, first, last)
if usage.empty:
    st.info("No tariff groups in these months: only customers (meters on no feeder) have one.")
else:
    st.plotly_chart(figures.tariff_chart(usage), key="tariffs")
    st.dataframe(usage, hide_index=True, key="tariff-table")

st.subheader("Completeness by meter and month")
complete = cached(queries.completeness, first, last)
if complete.empty:
    st.info("No meter readings in these months.")
else:
    per_meter = complete.groupby("meter_id")["completeness"].mean().sort_values()
    meters, full, short = st.columns(3)
    meters.metric("Meters", len(per_meter))
    full.metric("Complete every day", int((per_meter >= 1).sum()))
    short.metric("Below 99%", int((per_meter < 0.99).sum()))
    worst = per_meter.index[:WORST_METERS]
    title = f"The {len(worst)} least complete meters (share of intervals with a reading)"
    chart = figures.completeness_chart(complete[complete["meter_id"].isin(worst)], title)
    st.plotly_chart(chart, key="completeness")
    st.dataframe(
        complete,
        hide_index=True,
        key="completeness-table",
        column_config={
            "month": MONTH_COLUMN,
            "completeness": st.column_config.ProgressColumn(
                "intervals with a reading", format="percent", min_value=0, max_value=1
            ),
        },
    )
