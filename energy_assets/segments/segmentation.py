"""Customer segmentation on normalised daily load shapes (pure logic: no database, no Dagster).

Customers are compared by *when* they use energy, not how much: each customer's mean daily
profile is scaled to sum to 1, so a small shop and a large factory with the same rhythm end up
in the same segment. K-means picks the segments; their number is the best by silhouette among
those that are stable (the same customers group together on the month's odd days as on its
even days) and have no segment of a single customer. Near-empty meters (a vacant house) are
left out first: their normalised "shape" is noise, and they are a finding of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # scikit-learn and SciPy load where segments are fitted, not at every import
    from sklearn.cluster import KMeans

MINUTES_PER_DAY = 24 * 60
N_INIT = 10
NEAR_EMPTY_KW = 0.01
"""Mean demand below which a customer is near-empty (10 W: less than a fridge alone). On the
London households the vacant one averages 2-6 W a month, the next lowest 27 W."""
STABLE_AGREEMENT = 0.8
"""Adjusted Rand index between the segments of odd and even days that makes a k stable."""
MIN_SEGMENT_CUSTOMERS = 2
"""A segment of one customer is an outlier, not a segment."""


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


def near_empty(
    intervals: pd.DataFrame, min_days: int = 7, threshold_kw: float = NEAR_EMPTY_KW
) -> list[str]:
    """Customers with `min_days` days of readings whose mean demand is below `threshold_kw`
    (columns as for `daily_shapes`), sorted."""
    data = intervals.dropna(subset=["kw"])
    days = pd.to_datetime(data["interval_start"]).dt.date.groupby(data["customer_id"]).nunique()
    mean = data["kw"].groupby(data["customer_id"]).mean()
    return sorted(mean.index[(mean < threshold_kw) & (days.reindex(mean.index) >= min_days)])


def split_halves(
    intervals: pd.DataFrame, customers: pd.Index, tz: str = "UTC"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The shapes of `customers` on odd and on even days of the month, for those that have a
    shape on both (three days each at least)."""
    day = pd.to_datetime(intervals["interval_start"]).dt.tz_convert(tz).dt.day
    odd, even = (daily_shapes(intervals[day % 2 == parity], min_days=3, tz=tz) for parity in (1, 0))
    both = customers.intersection(odd.index).intersection(even.index)
    return odd.loc[both], even.loc[both]


def _fit(shapes: pd.DataFrame, k: int, seed: int) -> KMeans:
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=N_INIT, random_state=seed).fit(shapes.to_numpy())


def agreement(halves: tuple[pd.DataFrame, pd.DataFrame], k: int, seed: int = 0) -> float:
    """How alike the k segments of the two halves are (adjusted Rand index, 1 = identical)."""
    from sklearn.metrics import adjusted_rand_score

    first, second = halves
    if len(first) <= k:
        return float("nan")
    return float(adjusted_rand_score(_fit(first, k, seed).labels_, _fit(second, k, seed).labels_))


def choose_k(
    shapes: pd.DataFrame,
    k_range: tuple[int, int] = (2, 8),
    seed: int = 0,
    halves: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> tuple[int, dict[int, float]]:
    """Best number of segments in the inclusive `k_range` by silhouette score, and all scores.

    Only a k whose smallest segment has MIN_SEGMENT_CUSTOMERS and, given the shapes of two
    halves of the month (`split_halves`), whose segments agree between them (STABLE_AGREEMENT)
    qualifies; without any that does, the best silhouette of all. The silhouette needs
    2 <= k <= n_customers - 1, so the range is capped to that; ties go to the smaller k (fewer
    segments are easier to explain).
    """
    from sklearn.metrics import silhouette_score

    lo, hi = max(k_range[0], 2), min(k_range[1], len(shapes) - 1)
    if lo > hi:
        raise ValueError(f"k_range {k_range} is empty for {len(shapes)} customers")
    values = shapes.to_numpy()
    scores, qualified = {}, []
    for k in range(lo, hi + 1):
        labels = _fit(shapes, k, seed).labels_
        scores[k] = float(silhouette_score(values, labels))
        stable = halves is None or agreement(halves, k, seed) >= STABLE_AGREEMENT
        if stable and np.bincount(labels).min() >= MIN_SEGMENT_CUSTOMERS:
            qualified.append(k)
    best = max(qualified or scores, key=lambda k: (scores[k], -k))
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
    shapes: pd.DataFrame,
    k_range: tuple[int, int] = (2, 8),
    seed: int = 0,
    halves: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> Segmentation:
    """Cluster `daily_shapes` output into the number of segments `choose_k` picks.

    K-means numbers clusters arbitrarily, so they are renumbered by descending size (ties by
    earliest peak slot) to give names that stay stable between runs.
    """
    k, scores = choose_k(shapes, k_range, seed, halves)
    raw = pd.Series(_fit(shapes, k, seed).labels_, index=shapes.index)
    raw_centroids = shapes.groupby(raw).mean()
    sizes = raw.value_counts()
    order = sorted(sizes.index, key=lambda c: (-sizes[c], int(np.argmax(raw_centroids.loc[c]))))
    labels = raw.map({old: new for new, old in enumerate(order)}).rename("segment")
    centroids = shapes.groupby(labels).mean()
    centroids = centroids.div(centroids.sum(axis=1), axis=0)
    return Segmentation(labels, centroids, k, scores[k], scores)


def match_segments(previous: pd.DataFrame, current: pd.DataFrame) -> dict[int, int]:
    """Which segment of the previous month each current segment is (segment -> its shape over
    the slots, for both): the pairing with the least total squared difference of shapes. A
    segment without a partner (k grew) is left out."""
    from scipy.optimize import linear_sum_assignment

    cost = ((previous.to_numpy()[:, None, :] - current.to_numpy()[None, :, :]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    return {int(current.index[c]): int(previous.index[r]) for r, c in zip(rows, cols, strict=True)}
