"""Forecasts: forecast against actual with the P10-P90 band for any target and month, the
backtest's scores per month against the seasonal-naive forecast, and the model registry."""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from energy_assets.dashboard import figures, queries
from energy_assets.dashboard.controls import heading, month_picker, nothing_yet
from energy_assets.dashboard.reads import cached

DAYS_SHOWN = 7  # days the chart opens on: a month of 15-minute intervals is a blur
KINDS = {
    "system": "System",
    "feeder": "Feeder",
    "meters_total": "Meters on no feeder (total)",
    "meter": "Single meter",
}

heading(
    "Forecasts",
    "How close were the day-ahead forecasts, issued the day before, to what happened, and do"
    " they beat simply repeating last week?",
)
targets = cached(queries.forecast_targets)
if targets.empty:
    nothing_yet(
        "No forecasts yet: each month run backtests the month when ENERGY_FORECASTS is on"
        " (the default), once a target has 14 days of history."
    )
left, middle = st.columns(2)
kind = left.selectbox(
    "Target kind",
    [k for k in KINDS if k in set(targets["target_kind"])],
    format_func=KINDS.get,
    key="kind",
)
target = middle.selectbox(
    "Target", targets.loc[targets["target_kind"] == kind, "target_id"], key="target"
)
month = month_picker(
    cached(queries.months_with, "forecasts", kind, target),
    "No backtest of this target yet.",
)
unit = queries.UNITS[kind]

frame = cached(queries.forecast_vs_actual, kind, target, month)
if not frame.empty:
    days = frame["interval_start"].dt.date
    first, last = days.min(), days.max()
    shown = st.slider(
        "Days",
        first,
        last,
        (max(first, last - timedelta(days=DAYS_SHOWN - 1)), last),
        format="D MMM",
        key="days",
    )
    frame = frame[days.between(*shown)]
scores = cached(queries.backtest_scores, kind, target)
this_month = scores[scores["month_start"] == month]
if not this_month.empty:
    row = this_month.iloc[0]
    wape, naive, better, coverage = st.columns(4)
    wape.metric("Forecast error (WAPE)", f"{row['wape']:.1%}")
    naive.metric("Seasonal naive (WAPE)", f"{row['baseline_wape']:.1%}")
    better.metric("Better than naive by", f"{1 - row['wape'] / row['baseline_wape']:.1%}")
    coverage.metric(
        "Actual inside P10-P90", f"{row['coverage_p10_p90']:.1%}", help="80% when the band is right"
    )
if frame.empty:
    st.info(f"No forecasts of {target} in {month:%B %Y}.")
else:
    st.plotly_chart(
        figures.forecast_chart(frame, f"{target}, {month:%B %Y}: forecast and actual", unit),
        key="forecast",
    )
if not scores.empty:
    st.plotly_chart(figures.scores_chart(scores), key="scores")
    percent = {
        column: st.column_config.NumberColumn(column.replace("_", " "), format="percent")
        for column in ("wape", "baseline_wape", "coverage_p10_p90")
    }
    st.dataframe(scores, hide_index=True, key="score-table", column_config=percent)
st.subheader("Model registry")
st.dataframe(
    cached(queries.models),
    hide_index=True,
    key="models",
    column_config={
        column: st.column_config.DatetimeColumn(column.replace("_", " "), format="YYYY-MM-DD HH:mm")
        for column in ("trained_at", "train_start", "train_end")
    },
)
