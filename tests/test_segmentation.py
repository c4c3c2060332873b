"""Customer segmentation: daily shapes by hand, and recovery of known load shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread
from sklearn.metrics import adjusted_rand_score

from energy_assets.plots.charts import plot_centroids
from energy_assets.segments.segmentation import (
    STABLE_AGREEMENT,
    agreement,
    choose_k,
    daily_shapes,
    match_segments,
    near_empty,
    segment_customers,
    split_halves,
)

START = pd.Timestamp("2024-01-01", tz="UTC")


def readings(customer: str, days: int, kw_at, freq: str = "30min") -> pd.DataFrame:
    """A customer's interval frame over `days` days; `kw_at(timestamps)` gives kW."""
    starts = pd.date_range(
        START, periods=days * pd.Timedelta("1D") // pd.Timedelta(freq), freq=freq
    )
    return pd.DataFrame({"customer_id": customer, "interval_start": starts, "kw": kw_at(starts)})


def test_daily_shapes_by_hand():
    # Hours 0-11: 2 kW in the first half hour, 4 kW in the second (hourly mean 3); hours 12-23: 0.
    def half_day(ts: pd.DatetimeIndex) -> np.ndarray:
        return np.where(ts.hour < 12, np.where(ts.minute == 0, 2.0, 4.0), 0.0)

    a = readings("a", 7, half_day)
    a.loc[a["interval_start"] == START + pd.Timedelta("3 days 09:30:00"), "kw"] = np.nan  # one gap
    big = readings("big", 7, lambda ts: 1000 * half_day(ts))  # same rhythm, 1000x the size
    frame = pd.concat(
        [
            a,
            big,
            readings("zero", 7, lambda ts: np.zeros(len(ts))),
            readings("missing", 7, lambda ts: np.full(len(ts), np.nan)),
            readings("short", 6, half_day),
        ]
    )

    shapes = daily_shapes(frame)

    assert shapes.index.tolist() == ["a", "big"]
    assert shapes.columns.tolist() == list(range(24))
    # Slot 9 of "a" averages the 13 readings it has (7 x 2 kW + 6 x 4 kW); a gap counted as
    # zero would give 38/14 instead.
    expected = np.array([3.0] * 9 + [38 / 13] + [3.0] * 2 + [0.0] * 12)
    np.testing.assert_allclose(shapes.loc["a"], expected / expected.sum())
    np.testing.assert_allclose(shapes.loc["big"], [1 / 12] * 12 + [0] * 12)
    np.testing.assert_allclose(shapes.sum(axis=1), 1.0)
    assert "short" in daily_shapes(frame, min_days=6).index


def test_daily_shapes_uses_local_clock_and_resolution():
    frame = readings("a", 7, lambda ts: np.where(ts.hour == 23, 1.0, 0.0), freq="1h")
    assert daily_shapes(frame).loc["a"].idxmax() == 23
    # 23:00 UTC is 00:00 in Amsterdam in winter.
    assert daily_shapes(frame, tz="Europe/Amsterdam").loc["a"].idxmax() == 0
    # Four 6-hour slots: all the energy in the last one.
    assert daily_shapes(frame, slots_per_day=4).loc["a"].tolist() == [0, 0, 0, 1]
    with pytest.raises(ValueError, match="divide"):
        daily_shapes(frame, slots_per_day=7)


def bump(hours: np.ndarray, centre: float, width: float) -> np.ndarray:
    """A daily peak at `centre` (wrapping round midnight)."""
    distance = np.minimum(np.abs(hours - centre), 24 - np.abs(hours - centre))
    return np.exp(-0.5 * (distance / width) ** 2)


KNOWN_SHAPES = {  # hours of day, and a per-customer shift of the peak in hours
    "morning": lambda h, shift: 0.3 + 2.0 * bump(h, 8 + shift, 1.5),
    "evening": lambda h, shift: 0.3 + 2.5 * bump(h, 19 + shift, 2.0),
    "night": lambda h, shift: 1.0 + 1.0 * bump(h, 3 + shift, 3.0),  # flat, night-heavy (EV)
}
GROUP_SIZES = {"morning": 30, "evening": 20, "night": 10}  # unequal, so "largest" means something


@pytest.fixture(scope="module")
def population() -> tuple[pd.DataFrame, pd.Series]:
    """60 customers over 28 days of 30-minute data, drawn from 3 known daily shapes.

    Each customer gets its own size (x0.5..x20), its peak shifted by up to half an hour either
    way, +-15% noise on every reading and ~3% scattered gaps.
    """
    rng = np.random.default_rng(42)
    starts = pd.date_range(START, periods=28 * 48, freq="30min")
    hours = (starts.hour + starts.minute / 60).to_numpy()
    frames, truth = [], {}
    for group, size in GROUP_SIZES.items():
        for i in range(size):
            customer = f"{group}-{i:02d}"
            kw = KNOWN_SHAPES[group](hours, rng.uniform(-0.5, 0.5)) * rng.uniform(0.5, 20)
            kw *= rng.uniform(0.85, 1.15, len(kw))  # +-15% noise per interval
            kw[rng.random(len(kw)) < 0.03] = np.nan  # ~3% scattered gaps
            frames.append(
                pd.DataFrame({"customer_id": customer, "interval_start": starts, "kw": kw})
            )
            truth[customer] = group
    return pd.concat(frames, ignore_index=True), pd.Series(truth)


@pytest.fixture(scope="module")
def segmentation(population):
    intervals, _ = population
    return segment_customers(daily_shapes(intervals), k_range=(2, 8), seed=0)


def test_recovers_known_segments(population, segmentation):
    _, truth = population
    assert segmentation.k == 3
    assert sorted(segmentation.scores) == list(range(2, 9))
    assert segmentation.silhouette == max(segmentation.scores.values())
    assert segmentation.silhouette == segmentation.scores[3]
    labels = segmentation.labels.reindex(truth.index)
    assert labels.notna().all()
    assert adjusted_rand_score(truth, labels) >= 0.9
    assert segmentation.centroids.shape == (3, 24)
    np.testing.assert_allclose(segmentation.centroids.sum(axis=1), 1.0)


def test_segments_numbered_by_descending_size(population, segmentation):
    _, truth = population
    sizes = segmentation.labels.value_counts().sort_index()
    assert sizes.index.tolist() == [0, 1, 2]
    assert sizes.is_monotonic_decreasing
    # Segment 0 is the largest known group (morning, 30 customers), and so on down.
    by_segment = truth.groupby(segmentation.labels).agg(lambda g: g.mode()[0])
    assert by_segment.tolist() == ["morning", "evening", "night"]
    assert segmentation.centroids.loc[0].idxmax() == 8


def test_segmentation_is_deterministic(population, segmentation):
    intervals, _ = population
    again = segment_customers(daily_shapes(intervals), seed=0)
    pd.testing.assert_series_equal(again.labels, segmentation.labels)
    assert again.scores == segmentation.scores


def test_choose_k_caps_range_at_customers_minus_one():
    shapes = pd.DataFrame([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], index=list("abcd"))
    k, scores = choose_k(shapes, k_range=(2, 8))
    assert sorted(scores) == [2, 3]
    assert k == 2
    with pytest.raises(ValueError):
        choose_k(shapes.iloc[:2])


def test_plot_centroids_writes_png(segmentation, tmp_path: Path):
    sizes = segmentation.labels.value_counts()
    path = plot_centroids(
        segmentation.centroids, sizes, tmp_path / "plots" / "segments.png", "Customer segments"
    )
    assert path == tmp_path / "plots" / "segments.png"
    assert path.stat().st_size > 5_000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(path)
    assert image.shape == (600, 1080, 4)  # 9 x 5 inches at 120 dpi, RGBA


def test_near_empty_meters_are_those_below_ten_watts_with_a_week_of_data():
    frame = pd.concat(
        [
            readings("vacant", 7, lambda ts: np.full(len(ts), 0.004)),
            readings("home", 7, lambda ts: np.full(len(ts), 0.5)),
            readings("new", 3, lambda ts: np.full(len(ts), 0.004)),  # too few days to judge
            readings("zero", 8, lambda ts: np.zeros(len(ts))),
        ]
    )
    assert near_empty(frame) == ["vacant", "zero"]
    assert near_empty(frame, threshold_kw=0.001) == ["zero"]


def test_the_known_segments_are_stable_between_odd_and_even_days(population):
    intervals, truth = population
    shapes = daily_shapes(intervals)
    halves = split_halves(intervals, shapes.index)
    assert len(halves[0]) == len(halves[1]) == 60
    assert agreement(halves, 3) >= STABLE_AGREEMENT
    segmentation = segment_customers(shapes, halves=halves)
    assert segmentation.k == 3
    assert adjusted_rand_score(truth, segmentation.labels.reindex(truth.index)) >= 0.9


def test_a_segment_of_one_customer_does_not_qualify():
    # Two groups of six customers, and one far from both: silhouette alone sets it apart.
    rng = np.random.default_rng(0)
    day, evening, night = (
        np.roll(np.r_[np.full(6, 4.0), np.ones(18)], shift) for shift in (9, 17, 0)
    )
    rows = [shape * rng.uniform(0.95, 1.05, 24) for shape in [day] * 6 + [evening] * 6 + [night]]
    shapes = pd.DataFrame(rows)
    shapes = shapes.div(shapes.sum(axis=1), axis=0)
    k, scores = choose_k(shapes, k_range=(2, 4))
    assert max(scores, key=scores.get) == 3  # the two groups and the one customer
    assert k == 2


def test_segments_are_paired_with_last_months_by_shape():
    before = pd.DataFrame([[0.8, 0.2], [0.1, 0.9]], index=[0, 1])
    now = pd.DataFrame([[0.15, 0.85], [0.75, 0.25], [0.5, 0.5]], index=[0, 1, 2])
    assert match_segments(before, now) == {0: 1, 1: 0}
