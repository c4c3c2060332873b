"""Segments: the daily rhythms customers fall into, how many follow each month by month, the
near-empty meters set apart, and who changed segment since the month before."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from energy_assets.dashboard import figures, queries
from energy_assets.dashboard.controls import heading, month_picker, nothing_yet
from energy_assets.dashboard.reads import cached
from energy_assets.months import month_start
from energy_assets.segments.segmentation import NEAR_EMPTY_KW, match_segments
from energy_assets.segments.store import NEAR_EMPTY_SEGMENT

heading(
    "Segments",
    "Which daily rhythms do the customers fall into, how many follow each, and who changed"
    " rhythm since the month before?",
)
month = month_picker(
    cached(queries.months_with, "segments"),
    "No segments yet: segmenting a month needs three customers with a week of readings"
    " (feeder meters are not customers).",
)
centroids = cached(queries.segment_centroids, month)


def shapes(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.pivot(index="segment", columns="hour", values="share")


def names(rows: pd.DataFrame) -> dict[int, str]:
    sizes = rows.groupby("segment")["customers"].first()
    return {
        int(s): figures.segment_label(int(s), shape, int(sizes[s]))
        for s, shape in shapes(rows).iterrows()
    } | {NEAR_EMPTY_SEGMENT: "Near-empty (set apart)"}


now = names(centroids)
st.plotly_chart(
    figures.centroids_chart(centroids, f"Daily rhythm of each segment, {month:%B %Y}"),
    key="centroids",
)
members = cached(queries.segment_members, month)
empty = members.loc[members["segment"] == NEAR_EMPTY_SEGMENT, "customer_id"].tolist()
segmented, near_empty, _ = st.columns(3)
segmented.metric("Customers in segments", len(members) - len(empty))
near_empty.metric("Near-empty, set apart", len(empty))
if empty:
    st.warning(
        f"Near-empty meters (mean demand below {NEAR_EMPTY_KW * 1000:.0f} W: a vacant home, or"
        f" a meter that reads almost nothing), left out of the segments: {', '.join(empty)}"
    )

sizes = cached(queries.segment_sizes, month)
st.plotly_chart(
    figures.sizes_chart(sizes, {NEAR_EMPTY_SEGMENT: now[NEAR_EMPTY_SEGMENT]}), key="sizes"
)

previous = month_start(pd.Timestamp(month) - pd.Timedelta(days=1))
before = cached(queries.segment_centroids, previous)
st.subheader(f"Who moved since {previous:%B %Y}")
if before.empty:
    nothing_yet(f"No segments in {previous:%B %Y} to compare with.")
same = match_segments(shapes(before), shapes(centroids)) | {NEAR_EMPTY_SEGMENT: NEAR_EMPTY_SEGMENT}
then = names(before)
both = members.merge(
    cached(queries.segment_members, previous), on="customer_id", suffixes=("", "_before")
)
moved = both[both["segment"].map(same) != both["segment_before"]]
st.metric("Customers who moved", len(moved), help="of the customers segmented in both months")
st.dataframe(
    pd.DataFrame(
        {
            "customer": moved["customer_id"],
            f"{previous:%B %Y}": moved["segment_before"].map(then),
            f"{month:%B %Y}": moved["segment"].map(now),
        }
    ),
    hide_index=True,
    key="moved",
)
