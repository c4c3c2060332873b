"""Anomalies: the month's findings as a work list, filtered by kind, severity and meter; a
finding opens the load around it with its span shaded and the detector's reason."""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from energy_assets.dashboard import figures, queries
from energy_assets.dashboard.controls import heading, month_picker, nothing_yet
from energy_assets.dashboard.reads import cached
from energy_assets.plots.charts import finding_spans
from energy_assets.settings import Settings

AROUND = timedelta(days=2)  # load shown before and after a finding

heading(
    "Anomalies",
    "What did the detectors find this month, which findings matter most, and what does the"
    " meter's load look like around each?",
)
month = month_picker(
    cached(queries.months_with, "anomalies"),
    "No month has been analysed yet: the anomalies run with every month run.",
)
filters = st.columns(3)
kinds = filters[0].multiselect("Kind", cached(queries.anomaly_kinds, month), key="kinds")
severities = filters[1].multiselect("Severity", queries.SEVERITIES, key="severities")
target = filters[2].text_input("Meter or feeder (part of its id)", key="target")
findings, matching = cached(queries.anomalies, month, kinds, severities, target.strip())
if findings.empty:
    nothing_yet(f"No findings in {month:%B %Y} match.")
shown = f", the {len(findings)} strongest shown" if matching > len(findings) else ""
st.metric("Findings", matching, help="score: how far past its threshold (1 = just past)")
st.caption(f"{matching} findings in {month:%B %Y}{shown}, most severe and strongest first.")


TIMEZONE = Settings.from_env().default_timezone  # a day finding covers its local day
spans = [(start, end) for start, end, _ in finding_spans(findings, TIMEZONE)]


def label(index: int) -> str:
    row = findings.iloc[index]
    start, _ = spans[index]
    return f"{row['kind']} on {row['target_id']} at {start:%d %b %H:%M} (score {row['score']:.1f})"


columns = ["severity", "kind", "target_kind", "target_id", "interval_start", "interval_end"]
st.dataframe(
    findings[[*columns, "day", "score", "reason", "action"]],
    hide_index=True,
    key="findings",
    column_config={
        "target_kind": "target kind",
        "target_id": "target",
        "interval_start": st.column_config.DatetimeColumn("from (UTC)", format="YYYY-MM-DD HH:mm"),
        "interval_end": st.column_config.DatetimeColumn("to (UTC)", format="YYYY-MM-DD HH:mm"),
        "day": st.column_config.DateColumn("day"),
        "score": st.column_config.NumberColumn("score", format="%.1f"),
        "reason": st.column_config.TextColumn("reason", width="large"),
    },
)
chosen = st.selectbox("Open a finding", range(len(findings)), format_func=label, key="finding")
row = findings.iloc[chosen]
start, end = spans[chosen]
st.warning(f"**{row['kind']}** on {row['target_kind']} **{row['target_id']}**: {row['reason']}")
st.info(f"**{row['severity'].capitalize()} severity.** Suggested action: {row['action']}.")
kind = row["target_kind"]
frame = cached(queries.load, kind, start - AROUND, end + AROUND, row["target_id"])
if frame.empty:
    st.info("No load is stored around this finding.")
else:
    title = f"{row['target_id']} around the finding ({start:%d %b %H:%M} - {end:%d %b %H:%M} UTC)"
    chart = figures.finding_chart(frame, start, end, title, queries.UNITS[kind])
    st.plotly_chart(chart, key="finding-chart")
