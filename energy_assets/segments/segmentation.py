"""Customer segmentation on normalised daily load shapes (pure logic: no database, no Dagster).

Customers are compared by *when* they use energy, not how much: each customer's mean daily
profile is scaled to sum to 1, so a small shop and a large factory with the same rhythm end up
in the same segment. K-means picks the segments, the silhouette score picks their number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score

MINUTES_PER_DAY = 24 * 60
N_INIT = 10


def daily_shapes(
    intervals: pd.DataFrame, slots_per_day: int = 24, min_days: int = 7, tz: str = "UTC"
) -> pd.DataFrame:
    """Each customer's mean daily load profile, normalised to sum to 1 (its *shape*).

    `intervals` has columns customer_id, interval_start (tz-aware) and kw (average kW, NaN for
    gaps). Slot values are the mean kW of all non-missing readings in that slot of the day in
    `tz` (the local clock is what drives behaviour; UTC by default), so gaps are ignored rather
    than counted as zero. Dropped, because they have no meaningful shape: customers with fewer
    than `min_days` days holding any reading, with a slot of the day that never has a reading,
    or whose profile does not sum to a positive number (all zero, or net exporters).

    Returns one row per customer (index customer_id), columns slot 0..slots_per_day-1.
    """
    if slots_per_day < 1 or MINUTES_PER_DAY % slots_per_day:
        raise ValueError(f"slots_per_day must divide {MINUTES_PER_DAY}, got {slots_per_day}")
    data = intervals.dropna(subset=["kw"])
    local = pd.to_datetime(data["interval_start"]).dt.tz_convert(tz)
    minute = local.dt.hour * 60 + local.dt.minute
    slot = minute // (MINUTES_PER_DAY // slots_per_day)
    by_customer = data["customer_id"]

    days = local.dt.date.groupby(by_customer).nunique()
    profile = data["kw"].groupby([by_customer, slot.rename("slot")]).mean().unstack("slot")
    profile = profile.reindex(columns=range(slots_per_day))
    total = profile.sum(axis=1, min_count=slots_per_day)
    keep = (days.reindex(profile.index) >= min_days) & (total > 0)
    shapes = profile[keep].div(total[keep], axis=0)
    shapes.index.name = "customer_id"
    shapes.columns.name = "slot"
    return shapes


def _fit(shapes: pd.DataFrame, k: int, seed: int) -> KMeans:
    return KMeans(n_clusters=k, n_init=N_INIT, random_state=seed).fit(shapes.to_numpy())


def choose_k(
    shapes: pd.DataFrame, k_range: tuple[int, int] = (2, 8), seed: int = 0
) -> tuple[int, dict[int, float]]:
    """Best number of segments in the inclusive `k_range` by silhouette score, and all scores.

    The silhouette needs 2 <= k <= n_customers - 1, so the range is capped to that; ties go to
    the smaller k (fewer segments are easier to explain).
    """
    lo, hi = max(k_range[0], 2), min(k_range[1], len(shapes) - 1)
    if lo > hi:
        raise ValueError(f"k_range {k_range} is empty for {len(shapes)} customers")
    values = shapes.to_numpy()
    scores = {
        k: float(silhouette_score(values, _fit(shapes, k, seed).labels_)) for k in range(lo, hi + 1)
    }
    best = max(scores, key=lambda k: (scores[k], -k))
    return best, scores


@dataclass
class Segmentation:
    """Segments numbered by descending size, so segment 0 is always the largest."""

    labels: pd.Series  # customer_id -> segment 0..k-1
    centroids: pd.DataFrame  # segment -> shape over the slots, each row sums to 1
    k: int
    silhouette: float
    scores: dict[int, float]


def segment_customers(
    shapes: pd.DataFrame, k_range: tuple[int, int] = (2, 8), seed: int = 0
) -> Segmentation:
    """Cluster `daily_shapes` output into the silhouette-best number of segments.

    K-means numbers clusters arbitrarily, so they are renumbered by descending size (ties by
    earliest peak slot) to give names that stay stable between runs.
    """
    k, scores = choose_k(shapes, k_range, seed)
    raw = pd.Series(_fit(shapes, k, seed).labels_, index=shapes.index)
    raw_centroids = shapes.groupby(raw).mean()
    sizes = raw.value_counts()
    order = sorted(sizes.index, key=lambda c: (-sizes[c], int(np.argmax(raw_centroids.loc[c]))))
    labels = raw.map({old: new for new, old in enumerate(order)}).rename("segment")
    centroids = shapes.groupby(labels).mean()
    centroids = centroids.div(centroids.sum(axis=1), axis=0)
    return Segmentation(labels, centroids, k, scores[k], scores)
