"""The forecast product (issue times and windows), data verdicts with their fallback, training
on all history within a bound, and the bottom-up sum: pure functions on hand-built frames."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from energy_assets.forecasts.day_ahead import (
    FALLBACK,
    ForecastConfig,
    _Group,
    backtest,
    bottom_up,
    data_verdicts,
)
from energy_assets.forecasts.product import Product
from energy_assets.settings import Settings

TZ = "Europe/Amsterdam"
HALF_HOUR = pd.Timedelta(minutes=30)


def local(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=TZ).tz_convert("UTC")


def test_a_daily_product_covers_the_local_day_from_the_day_before():
    product = Product.parse("D-1 10:00")
    (issue,) = product.issues_on(date(2025, 3, 30), TZ)  # spring forward: a 23-hour day
    assert issue.issued_at == local("2025-03-29 10:00")
    assert (issue.start, issue.end) == (local("2025-03-30 00:00"), local("2025-03-31 00:00"))
    assert issue.end - issue.start == pd.Timedelta(hours=23)
    (late,) = Product.parse("D-1 23:00").issues_on(date(2025, 10, 26), TZ)  # 25 hours
    assert late.issued_at == local("2025-10-25 23:00")
    assert late.end - late.start == pd.Timedelta(hours=25)


def test_an_intraday_product_issues_every_n_hours_from_local_midnight():
    product = Product.parse("every 6h", horizon_hours=12)
    issues = product.issues_on(date(2025, 6, 2), TZ)
    assert [i.issued_at for i in issues] == [
        local(f"2025-06-02 {h:02d}:00") for h in (0, 6, 12, 18)
    ]
    assert all(i.start == i.issued_at and i.end - i.start == pd.Timedelta(hours=12) for i in issues)
    hourly = Product.parse("every 1h", horizon_hours=1)
    assert len(hourly.issues_on(date(2025, 3, 30), TZ)) == 23  # the skipped hour is no issue
    # The live forecast: the next window after the latest reading (12:00-12:30 local).
    issue = hourly.next_after(local("2025-06-02 12:00"), HALF_HOUR, TZ)
    assert (issue.issued_at, issue.start, issue.end) == (
        local("2025-06-02 13:00"),
        local("2025-06-02 13:00"),
        local("2025-06-02 14:00"),
    )


@pytest.mark.parametrize("text", ["D-1 25:00", "every 5h", "every 0h", "tomorrow", "D-0 10:00"])
def test_a_product_that_is_no_product_is_refused(text):
    with pytest.raises(ValueError):
        Product.parse(text)


def test_the_product_comes_from_the_settings():
    settings = Settings.from_env(
        {"ENERGY_FORECAST_ISSUE": "every 3h", "ENERGY_FORECAST_HORIZON_HOURS": "6"}
    )
    config = ForecastConfig.from_settings(settings)
    assert config.product == Product(
        None, pd.Timedelta(0), pd.Timedelta(hours=3), pd.Timedelta(hours=6)
    )
    assert config.train_days is None  # all history by default
    assert ForecastConfig.from_settings(Settings.from_env({})).product.describe() == "D-1 10:00"


def households(days: int = 42) -> pd.DataFrame:
    """Half-hourly kW of four meters over `days` days to 2025-06-12: one ordinary, one new (10
    days), one that mostly stopped reporting, one stuck at 2.5 kW since the day before."""
    times = pd.date_range(end="2025-06-11 23:30", periods=days * 48, freq="30min", tz="UTC")
    hour = times.hour + times.minute / 60
    shape = 1 + np.sin(2 * np.pi * (hour - 6) / 24)
    rng = np.random.default_rng(3)
    frames = []
    for meter in ("ordinary", "new", "sparse", "stuck"):
        value = np.asarray(shape * (1 + 0.1 * rng.standard_normal(len(times))))
        if meter == "new":
            value[: -10 * 48] = np.nan
        if meter == "sparse":
            value[-14 * 48 :][np.arange(14 * 48) % 3 != 0] = np.nan  # a third of the last 14 days
        if meter == "stuck":
            value[-60:] = 2.5
        frames.append(pd.DataFrame({"target_id": meter, "interval_start": times, "value": value}))
    return pd.concat(frames, ignore_index=True)


def test_each_target_gets_its_verdict_and_a_fallback_of_the_same_shape():
    series = households()
    before = pd.Timestamp("2025-06-12", tz="UTC")
    verdicts = data_verdicts(series, before, ForecastConfig(), HALF_HOUR).to_dict()
    assert verdicts == {
        "ordinary": "ok",
        "new": "insufficient_history",
        "sparse": "completeness",
        "stuck": "flatline",
    }
    # The backtest forecasts the others with the 4-week same-slot mean, each with its verdict.
    future = series[series["interval_start"] >= before - pd.Timedelta(days=1)].copy()
    future["interval_start"] += pd.Timedelta(days=1)  # actuals for the forecast day
    config = ForecastConfig(product=Product.parse("D-0 00:00"), rounds=20)  # issued at `before`
    result = backtest(pd.concat([series, future]), "meter", [date(2025, 6, 12)], config)
    rows = result.rows.set_index("target_id")
    assert rows.loc["ordinary", "verdict"].eq("ok").all()
    fallback = rows.loc[["new", "sparse", "stuck"]]
    assert (fallback["model_version"] == FALLBACK).all()
    assert (
        dict(zip(result.metrics["target_id"], result.metrics["verdict"], strict=True)) == verdicts
    )
    # The same slot 1, 2, 3 and 4 weeks earlier, by hand: P50 their mean, P10 / P90 their
    # 10th / 90th percentiles (NaN weeks left out: the new meter has only one).
    stuck = rows.loc["stuck"].iloc[5]
    slot = stuck["interval_start"]
    by_time = series[series["target_id"] == "stuck"].set_index("interval_start")["value"]
    weeks = np.array([by_time[slot - timedelta(days=7 * k)] for k in range(1, 5)])
    assert stuck["p50"] == pytest.approx(weeks.mean())
    assert stuck["p10"] == pytest.approx(np.quantile(weeks, 0.1))
    assert stuck["p90"] == pytest.approx(np.quantile(weeks, 0.9))
    assert stuck["same_slot"] == pytest.approx(weeks.mean())
    new = rows.loc["new"]
    assert new["p50"].notna().all()  # ten days: one week back exists, the others do not


def test_training_uses_all_history_sampled_to_a_bound_with_every_holiday():
    times = pd.date_range("2023-01-01", "2025-01-01", freq="h", tz="UTC", inclusive="left")
    series = pd.DataFrame({"target_id": "t", "interval_start": times, "value": 1.0})
    config = ForecastConfig(holiday_country="NL", recent_days=56, max_train_days=112)
    group = _Group(series, config, pd.Timedelta(hours=1), "UTC", None)
    days = group.training_days(local("2024-12-20 10:00"))
    assert len(days) <= 112 + len(group.holidays) and days == sorted(set(days))
    recent = [date(2024, 12, 19) - timedelta(days=k) for k in range(56)]
    assert set(recent) <= set(days)  # the latest 56 days in full
    assert days[0] < date(2023, 2, 1)  # reaching back to the start
    assert {date(2023, 4, 27), date(2023, 12, 25), date(2024, 4, 27)} <= set(days)  # King's Days
    months = {d.month for d in days}
    assert months == set(range(1, 13))  # every season
    assert len({d.weekday() for d in days if d < recent[-1]}) == 7  # every weekday
    # ENERGY_FORECAST_TRAIN_DAYS bounds the history itself.
    short = _Group(series, replace(config, train_days=30), pd.Timedelta(hours=1), "UTC", None)
    assert short.training_days(local("2024-12-20 10:00"))[0] == date(2024, 11, 20)


def test_bottom_up_keeps_the_mean_of_skewed_members():
    """Two households whose P50 sits below their mean: the sum of P50s is low, the sum of
    Swanson means (0.3 P10 + 0.4 P50 + 0.3 P90) is not."""
    issued = pd.Timestamp("2025-06-01 08:00", tz="UTC")
    rows = pd.DataFrame(
        {
            "target_id": ["a", "b"],
            "issued_at": issued,
            "interval_start": pd.Timestamp("2025-06-02", tz="UTC"),
            "p10": [0.1, 0.2],
            "p50": [0.3, 0.4],
            "p90": [1.1, 1.6],
            "actual": [0.5, 0.7],
            "baseline": [0.4, 0.5],
            "same_slot": [0.45, 0.55],
        }
    )
    total = bottom_up(rows, "sum").iloc[0]
    mean = (0.03 + 0.12 + 0.33) + (0.06 + 0.16 + 0.48)
    assert total["p50"] == pytest.approx(mean) and total["p50"] > 0.3 + 0.4
    spread = 1.2816 * np.sqrt(((1.0 / 2.5632) ** 2) + ((1.4 / 2.5632) ** 2))
    assert total["p10"] == pytest.approx(mean - spread, rel=1e-4)
    assert total["p90"] == pytest.approx(mean + spread, rel=1e-4)
    assert (total["actual"], total["baseline"], total["target_id"]) == (
        pytest.approx(1.2),
        pytest.approx(0.9),
        "sum",
    )
