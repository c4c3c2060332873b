"""Customers: one customer's behaviour over day, week and month windows, the hourly pattern,
weekdays against weekends, found by id."""

from __future__ import annotations

import streamlit as st

from energy_assets.dashboard import figures, queries
from energy_assets.dashboard.controls import heading, month_picker, nothing_yet
from energy_assets.dashboard.reads import cached

WINDOWS = ("day", "week", "month")

heading(
    "Customers",
    "How does a customer use energy: peaks and base load day by day, week by week, month by"
    " month, the time of day, weekdays against weekends?",
)
text = st.text_input("Find a customer by id (or part of it)", key="search")
matches = cached(queries.find, "customer", text.strip())
if not matches:
    if not text.strip():
        nothing_yet(
            "No customers in this data: customers are meters on no feeder (or the customer"
            " their metadata names); feeder meters never are."
        )
    nothing_yet(f"No customer id contains {text.strip()!r}.")
left, middle, right = st.columns(3)
found = (
    f"first {len(matches)} matches" if len(matches) == queries.FOUND else f"{len(matches)} found"
)
customer = left.selectbox(f"Customer ({found})", matches, key="customer")
with middle:
    month = month_picker(
        cached(queries.months_with, "customer", customer),
        "No readings of this customer.",
    )
window = right.radio("Windows", WINDOWS, index=0, horizontal=True, key="window")

summary = cached(queries.customer_behaviour, customer, month, "month")
if summary.empty:
    nothing_yet(f"No complete readings of {customer} in {month:%B %Y}.")
row = summary.iloc[0]
mean, peak, factor, night = st.columns(4)
mean.metric("Mean demand", f"{row['mean_kw']:.3f} kW")
peak.metric(f"Peak (at {int(row['peak_hour']):02d}:00 local)", f"{row['max_kw']:.3f} kW")
factor.metric(
    "Load factor (mean / peak)", "-" if row["load_factor"] is None else f"{row['load_factor']:.2f}"
)
night.metric(
    "Night share (00-06)", "-" if row["night_share"] is None else f"{row['night_share']:.1%}"
)
weekday, weekend, energy, _ = st.columns(4)
weekday.metric("Weekday mean", f"{row['weekday_mean_kw']:.3f} kW")
weekend.metric("Weekend mean", f"{row['weekend_mean_kw']:.3f} kW")
energy.metric("Energy in the month", f"{row['total_kwh']:,.1f} kWh")

rows = cached(queries.customer_behaviour, customer, month, window)
st.plotly_chart(figures.behaviour_chart(rows, window), key="behaviour")
with st.expander(f"Every {window} of {month:%B %Y}"):
    st.dataframe(rows, hide_index=True, key="windows")
profile = cached(queries.customer_profile, customer, month)
title = f"{customer}, {month:%B %Y}: mean demand by hour, weekdays and weekends"
st.plotly_chart(figures.hourly_chart(profile, title), key="hourly")
