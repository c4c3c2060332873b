"""Day-ahead forecasting: no leakage past the cutoff, sane quantiles, beats seasonal-naive."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from energy_assets.forecasts import day_ahead
from energy_assets.forecasts.day_ahead import (
    ForecastConfig,
    backtest,
    backtest_sample,
    live_forecast,
)
from energy_assets.forecasts.features import build_features, observed_weather
from energy_assets.forecasts.model import (
    fit_quantile_model,
    forecast_metrics,
    naive_mae,
    predict_quantiles,
)
from energy_assets.forecasts.product import Issue, Product
from energy_assets.settings import Settings

TZ = "Europe/Amsterdam"  # the test week contains the spring DST change (2025-03-30)
HOLIDAY = date(2025, 3, 5)
WEEK = pd.Timedelta(days=7)
TARGETS = {"house-1": 0.6, "office-7": 40.0, "feeder-A": 1500.0}


MIDNIGHT = Product.parse("D-1 00:00")


def cutoffs(first: str, days: int) -> list[Issue]:
    """Issues at 00:00 local on consecutive days from `first`, each for the day after."""
    local = pd.date_range(first, periods=days, freq="D") + pd.Timedelta(days=1)
    return [MIDNIGHT.issues_on(day.date(), TZ)[0] for day in local]


def ar1(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    """A stationary AR(1) path with unit variance: weather and level that wander but revert."""
    out = np.zeros(n)
    for i in range(1, n):
        out[i] = phi * out[i - 1] + np.sqrt(1 - phi**2) * rng.normal()
    return out


@pytest.fixture(scope="module")
def series() -> pd.DataFrame:
    """~8 weeks of 30-min demand: daily and weekly shape, heating load, day-level drift, noise."""
    rng = np.random.default_rng(42)
    times = pd.date_range("2025-02-03", "2025-04-01", freq="30min", tz=TZ, inclusive="left")
    local_days = times.normalize()
    day_index = pd.factorize(local_days)[0]
    n_days = day_index.max() + 1
    day_temp = 7 + 4 * ar1(rng, n_days, 0.8) + np.linspace(0, 3, n_days)
    hour = times.hour + times.minute / 60
    temperature = day_temp[day_index] + 4 * np.sin(2 * np.pi * (hour - 9) / 24)
    weekend = times.dayofweek >= 5
    frames = []
    for k, (target, level) in enumerate(TARGETS.items()):
        peak = 8 + 4 * k  # each target its own daily shape
        daily = (
            1 + 0.6 * np.exp(-(((hour - peak) / 3) ** 2)) + 0.3 * np.exp(-(((hour - 19) / 2) ** 2))
        )
        weekly = np.where(weekend, 0.7 + 0.1 * k, 1.0)
        heating = 0.04 * np.clip(15 - temperature, 0, None)
        drift = np.exp(0.05 * ar1(rng, n_days, 0.7))[day_index]  # stationary day-level wobble
        noise = rng.normal(0, 0.08 + 0.04 * (k == 0), len(times))
        value = level * drift * (daily * weekly + heating) * (1 + noise)
        frames.append(
            pd.DataFrame(
                {
                    "target_id": target,
                    "interval_start": times.tz_convert("UTC"),
                    "value": value,
                    "temperature": temperature,
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    out.loc[out.sample(frac=0.01, random_state=1).index, "value"] = np.nan  # meter gaps
    return out


@pytest.fixture(scope="module")
def weather(series) -> pd.DataFrame:
    """The observed temperature, and a forecast of it issued every day at 06:00 UTC for the
    next three days (the observation plus an error that grows with the lead)."""
    observed = observed_weather(series, {"temperature": "temperature"})
    hours = observed.set_index("valid_at")["value"]
    frames = [observed]
    for issued in pd.date_range("2025-02-03 06:00", "2025-03-31 06:00", freq="D", tz="UTC"):
        valid = hours[(hours.index > issued) & (hours.index <= issued + pd.Timedelta(days=3))]
        lead = (valid.index - issued) / pd.Timedelta(days=1)
        frames.append(
            pd.DataFrame(
                {
                    "valid_at": valid.index,
                    "variable": "temperature",
                    "value": valid.to_numpy() + 0.5 * lead,
                    "issued_at": issued,
                }
            )
        )
    return pd.concat(frames, ignore_index=True).sort_values("valid_at", ignore_index=True)


TRAIN_CUTOFFS = cutoffs("2025-02-15", 35)  # targets 2025-02-16 .. 2025-03-22
TEST_CUTOFFS = cutoffs("2025-03-23", 7)  # targets 2025-03-24 .. 2025-03-30, all after training
KW = {"tz": TZ, "holiday_dates": {HOLIDAY}}


@pytest.fixture(scope="module")
def train(series, weather):
    frames = [build_features(series, issue, weather=weather, **KW) for issue in TRAIN_CUTOFFS]
    rows = pd.concat(frames, ignore_index=True).dropna(subset=["y"])
    assert rows["interval_start"].max() < TEST_CUTOFFS[0].issued_at
    return rows


@pytest.fixture(scope="module")
def model(train):
    return fit_quantile_model(train, rounds=200, seed=0)


def test_a_bagged_model_is_one_booster_forecasting_the_mean_of_its_seeds(series, weather, train):
    test = build_features(series, TEST_CUTOFFS[0], weather=weather, **KW)
    singles = [fit_quantile_model(train, rounds=30, seed=s) for s in (5, 6, 7)]
    bag = fit_quantile_model(train, rounds=30, seed=5, bag=3)
    assert bag.booster.num_boosted_rounds() == 90
    x = xgb.DMatrix(test[bag.features].astype(float))
    quantiles = [m.booster.predict(x) for m in singles]
    assert not np.allclose(quantiles[0], quantiles[1])  # the seeds differ
    np.testing.assert_allclose(bag.booster.predict(x), np.mean(quantiles, axis=0), atol=1e-5)
    stored = xgb.Booster()  # as ml.models keeps it
    stored.load_model(bytearray(bag.booster.save_raw("ubj")))
    np.testing.assert_array_equal(stored.predict(x), bag.booster.predict(x))
    # More rounds from a bagged model (the final fit after calibration) boost on from its mean.
    more = fit_quantile_model(train, rounds=5, seed=5, start=bag)
    assert more.booster.num_boosted_rounds() == 95


def feature_columns(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["y"])


def garble(frame: pd.DataFrame, rows: pd.Series, how: str) -> pd.DataFrame:
    out = frame.copy()
    out.loc[rows, "value"] = out.loc[rows, "value"] * 100 if how == "x100" else np.nan
    return out


@pytest.mark.parametrize("corruption", ["x100", "nan"])
def test_no_leakage_past_the_cutoff(series, weather, model, corruption):
    """Every feature (lags, rolling statistics, the weather and its daily min / mean / max and
    degree days) is the same whatever the readings from the issue time on say, and whatever
    the weather forecasts issued from then on say."""
    issue = TEST_CUTOFFS[3]
    corrupted = garble(series, series["interval_start"] >= issue.issued_at, corruption)
    late = garble(weather, weather["issued_at"] >= issue.issued_at, corruption)
    before = build_features(series, issue, weather=weather, **KW)
    changed = build_features(corrupted, issue, weather=late, **KW)
    pd.testing.assert_frame_equal(
        feature_columns(before), feature_columns(changed), check_exact=True
    )
    pd.testing.assert_frame_equal(
        predict_quantiles(model, before), predict_quantiles(model, changed), check_exact=True
    )
    # The weather of the window is the latest forecast issued before the issue time (06:00 UTC
    # the day before: the observation + 0.5 x its lead in days), not the observation.
    issued = pd.Timestamp("2025-03-25 06:00", tz="UTC")
    row = before.iloc[100]
    observed = weather[weather["issued_at"].isna()].set_index("valid_at")["value"]
    hour = row["interval_start"].floor("h")
    lead = (hour - issued) / pd.Timedelta(days=1)
    assert row["weather_temperature"] == pytest.approx(observed[hour] + 0.5 * lead)
    assert before["forecast_weather_share"].eq(1.0).all()
    local_day = (
        before["interval_start"].dt.tz_convert(TZ).dt.date
        == row["interval_start"].tz_convert(TZ).date()
    )
    day_temps = before.loc[local_day, "weather_temperature"]
    assert row["temp_day_max"] >= day_temps.max() and row["temp_day_min"] <= day_temps.min()
    assert row["heating_dd"] == pytest.approx(max(0.0, 15.5 - row["temp_day_mean"]))
    # The test can see leaks: corrupting readings one hour earlier, or the forecast issued
    # before the issue time, does change the features.
    earlier = garble(
        series, series["interval_start"] >= issue.issued_at - pd.Timedelta(hours=1), "x100"
    )
    assert not feature_columns(before).equals(
        feature_columns(build_features(earlier, issue, weather=weather, **KW))
    )
    known = garble(weather, weather["issued_at"] == issued, "x100")
    assert not feature_columns(before).equals(
        feature_columns(build_features(series, issue, weather=known, **KW))
    )


def test_target_day_grid_is_local_and_dst_aware(series):
    features = build_features(series, TEST_CUTOFFS[-1], **KW)  # target day 2025-03-30: 23 hours
    assert features.groupby("target_id").size().eq(46).all()
    local = features["interval_start"].dt.tz_convert(TZ)
    assert (local.dt.date == date(2025, 3, 30)).all()
    holiday = build_features(series, cutoffs("2025-03-04", 1)[0], **KW)
    assert holiday["holiday"].eq(1).all()
    assert build_features(series, TEST_CUTOFFS[0], **KW)["holiday"].eq(0).all()
    # scale is the mean level of the week before the cutoff, so y is around 1 for every target
    assert features.groupby("target_id")["y"].mean().between(0.7, 1.3).all()


def test_own_fit_learns_each_targets_weather_response(weather):
    """A target whose load is a line in the temperature gets that line back for the window,
    each target its own, in units of its scale: one feeder warms with the weather, the other
    cools (a heat pump beside a solar roof)."""
    temperature = weather[weather["issued_at"].isna()].set_index("valid_at")["value"]
    times = pd.date_range("2025-02-05", "2025-03-20", freq="30min", tz="UTC")
    temps = temperature.reindex(times.floor("h")).to_numpy()
    lines = {"warms": (5.0, 0.5), "cools": (30.0, -2.0)}
    series = pd.concat(
        [
            pd.DataFrame({"target_id": t, "interval_start": times, "value": a + b * temps})
            for t, (a, b) in lines.items()
        ],
        ignore_index=True,
    )
    issue = cutoffs("2025-03-17", 1)[0]
    observed = weather[weather["issued_at"].isna()]  # the window's weather as it was
    features = build_features(series, issue, weather=observed, **KW)
    for target, (a, b) in lines.items():
        rows = features[features["target_id"] == target]
        hours = rows["interval_start"].dt.floor("h")
        truth = a + b * temperature.reindex(hours).to_numpy()
        np.testing.assert_allclose(rows["own_fit"] * rows["scale"], truth, rtol=0.01)


def week_earlier(series: pd.DataFrame, rows: pd.DataFrame) -> np.ndarray:
    """The seasonal-naive forecast by hand: each row's value a week earlier at the same local
    wall-clock time."""

    def wall(times: pd.Series) -> pd.Series:
        return times.dt.tz_convert(TZ).dt.tz_localize(None)

    past = series.set_index([series["target_id"], wall(series["interval_start"])])["value"]
    keys = pd.MultiIndex.from_arrays([rows["target_id"], wall(rows["interval_start"]) - WEEK])
    return past[~past.index.duplicated()].reindex(keys).to_numpy(dtype=float)


def test_backtest_beats_seasonal_naive_with_sane_quantiles(series, weather, model):
    scale = naive_mae(series, TEST_CUTOFFS[0].issued_at)
    frames = []
    for issue in TEST_CUTOFFS:
        features = build_features(series, issue, weather=weather, **KW)
        pred = predict_quantiles(model, features)
        pred["actual"] = features["y"] * features["scale"]
        pred["baseline"] = week_earlier(series, pred)
        frames.append(pred)
    test = pd.concat(frames, ignore_index=True)

    assert (test["p10"] <= test["p50"]).all() and (test["p50"] <= test["p90"]).all()
    m = forecast_metrics(
        test["actual"],
        test["p10"],
        test["p50"],
        test["p90"],
        test["baseline"],
        test["target_id"].map(scale),
    )
    print({k: round(v, 4) for k, v in m.items()})
    assert m["wape"] < 0.85 * m["baseline_wape"]
    assert m["mase"] < m["baseline_mase"]
    assert 0.6 <= m["coverage_p10_p90"] <= 0.95


def test_metrics_match_hand_computed_values():
    actual = [10, 20, 30, 40, np.nan]  # the NaN row is dropped
    p10, p50, p90 = [8, 15, 31, 30, 1], [12, 18, 30, 36, 2], [14, 19, 35, 45, 3]
    baseline = [10, 25, 25, 40, 4]
    m = forecast_metrics(actual, p10, p50, p90, baseline, mase_scale=4.0)
    expected = {
        "n": 4,
        "mae": 2.0,  # |e| = 2, 2, 0, 4
        "rmse": np.sqrt(6.0),
        "wape": 8 / 100,
        "mase": 0.5,
        "baseline_mae": 2.5,  # |e| = 0, 5, 5, 0
        "baseline_rmse": np.sqrt(12.5),
        "baseline_wape": 0.1,
        "baseline_mase": 0.625,
        # P10: .2 .5 .9 1.0 -> .65; P50: 1.0; P90: .4 .9 .5 .5 -> .575
        "pinball": (0.65 + 1.0 + 0.575) / 3,
        "baseline_pinball": 1.25,
        "coverage_p10_p90": 0.5,  # 10 in [8, 14], 40 in [30, 45]
    }
    assert m == pytest.approx(expected)


FAST = ForecastConfig(tz=TZ, rounds=40, train_days=21)
FORECAST_COLUMNS = [
    "target_id",
    "interval_start",
    "issued_at",
    "p10",
    "p50",
    "p90",
    "baseline",
    "model_version",
]


@pytest.mark.parametrize("issue", ["D-1 00:00", "D-1 10:00"])
def test_backtest_forecast_ignores_everything_from_its_cutoff_on(series, weather, issue):
    """Training, calibration and features together: garbage from the issue time on (readings,
    observed weather, weather forecasts issued since) leaves the day's forecast bit for bit
    the same."""
    config = replace(FAST, product=Product.parse(issue))
    day = date(2025, 3, 26)
    cutoff = config.first_issue(day)
    assert cutoff == pd.Timestamp(f"2025-03-25 {issue[-5:]}", tz=TZ)

    def backtest(series, weather, *args):
        return day_ahead.backtest(series, *args, weather=weather).rows

    def corrupt(since: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
        out = series.copy()
        after = out["interval_start"] >= since
        out.loc[after, "value"] = out.loc[after, "value"] * 100 + 7
        known = weather["issued_at"].fillna(weather["valid_at"])  # an observation: when valid
        return out, garble(weather, known >= since, "x100")

    original = backtest(series, weather, "meter", [day], config)
    corrupted = backtest(*corrupt(cutoff), "meter", [day], config)
    assert len(original) == 3 * 48
    pd.testing.assert_frame_equal(
        original[FORECAST_COLUMNS], corrupted[FORECAST_COLUMNS], check_exact=True
    )
    assert (corrupted["actual"] != original["actual"]).all()  # only the scoring saw the garbage
    # The test can see leaks: garbage from one interval before the cutoff changes the forecast.
    leaky = backtest(*corrupt(cutoff - pd.Timedelta(minutes=30)), "meter", [day], config)
    assert not np.allclose(leaky["p50"], original["p50"])


def test_rolling_origin_retrains_weekly_on_the_past_only(series):
    days = [date(2025, 3, 10) + pd.Timedelta(days=k).to_pytimedelta() for k in range(14)]
    result = backtest(series, "meter", days, FAST)
    assert [m.trained_at for m in result.models] == [
        FAST.first_issue(days[0]),
        FAST.first_issue(days[7]),
    ]
    models = {m.version: m for m in result.models}
    rows = result.rows
    assert len(rows) == 3 * 48 * 14 and set(rows["model_version"]) == set(models)
    for version, r in rows.groupby("model_version"):
        model = models[version]
        assert model.train_end < model.trained_at <= r["issued_at"].min()
    local_day = rows["interval_start"].dt.tz_convert(TZ).dt.normalize()
    issue_day = rows["issued_at"].dt.tz_convert(TZ).dt.normalize()
    assert ((local_day - issue_day) == pd.Timedelta(days=1)).all()
    assert (rows["issued_at"].dt.tz_convert(TZ).dt.hour == 10).all()  # the default, D-1 10:00
    assert ((rows["p10"] <= rows["p50"]) & (rows["p50"] <= rows["p90"])).all()
    # Scores per target on the intervals with an actual and a baseline (model and baseline are
    # judged on the same rows), and P10-P90 near its nominal 80%.
    metrics = result.metrics.set_index("target_id")
    known = rows.dropna(subset=["actual", "baseline"]).groupby("target_id").size()
    assert metrics["intervals"].to_dict() == known.to_dict()
    assert metrics["coverage_p10_p90"].between(0.5, 0.97).all()
    assert (metrics["verdict"] == "ok").all() and (metrics["weather_source"] == "none").all()
    assert all("band_offset" in m.calibration for m in result.models)


def test_live_forecast_covers_the_next_window_after_the_latest_reading(series):
    cut = series[series["interval_start"] < pd.Timestamp("2025-03-20 12:00", tz=TZ)]
    result = live_forecast(cut, "meter", FAST)
    rows = result.rows
    # The next day, issued once the latest reading (11:30-12:00) is complete: after 10:00.
    assert rows["issued_at"].unique().tolist() == [pd.Timestamp("2025-03-20 12:00", tz=TZ)]
    local = rows["interval_start"].dt.tz_convert(TZ)
    assert (local.dt.date == date(2025, 3, 21)).all() and len(rows) == 3 * 48
    assert rows["actual"].isna().all() and rows["p50"].notna().all()
    assert len(result.models) == 1 and result.models[0].train_end < rows["issued_at"].iloc[0]
    # Next-hour: issued every hour, one hour ahead.
    hourly = replace(FAST, product=Product.parse("every 1h", horizon_hours=1))
    rows = live_forecast(cut, "meter", hourly).rows
    assert rows["issued_at"].unique().tolist() == [pd.Timestamp("2025-03-20 12:00", tz=TZ)]
    assert sorted(rows["interval_start"].dt.tz_convert(TZ).dt.strftime("%H:%M").unique()) == [
        "12:00",
        "12:30",
    ]


def test_the_backtest_sample_is_fixed_and_bounded(monkeypatch):
    ids = [f"MAC{i:06d}" for i in range(200)]
    chosen = backtest_sample(ids, 50)
    assert len(set(chosen)) == 50 and set(chosen) <= set(ids)
    # The same meters whatever else is loaded and in which order: a month never loses them.
    others = [i for i in ids[::-1] if i not in chosen][:70]
    assert backtest_sample(others + chosen, 50) == chosen
    assert backtest_sample(ids, None) is None
    assert backtest_sample(ids, 200) is None  # not more than the limit: all of them
    monkeypatch.setenv("ENERGY_BACKTEST_METERS", "all")
    assert ForecastConfig.from_settings(Settings.from_env()).backtest_meters is None
    monkeypatch.setenv("ENERGY_BACKTEST_METERS", "7")
    assert ForecastConfig.from_settings(Settings.from_env()).backtest_meters == 7


def test_a_live_model_of_some_targets_forecasts_every_target_from_its_recent_weeks(series):
    """The meters' live model trains on a sample of them; the rest need only recent weeks."""
    cut = series[series["interval_start"] < pd.Timestamp("2025-03-20 12:00", tz=TZ)]
    trained = {"house-1", "feeder-A"}
    result = live_forecast(cut, "meter", FAST, train_targets=trained)
    rows = result.rows.sort_values(["target_id", "interval_start"], ignore_index=True)
    assert set(rows["target_id"]) == set(TARGETS) and (rows["verdict"] == "ok").all()
    assert set(result.models[0].model.target_offsets) <= trained
    # The model is the one the sample alone trains: the same forecasts of the sample's targets.
    alone = live_forecast(cut[cut["target_id"].isin(trained)], "meter", FAST).rows
    alone = alone.sort_values(["target_id", "interval_start"], ignore_index=True)
    pd.testing.assert_frame_equal(
        rows[rows["target_id"].isin(trained)].reset_index(drop=True), alone
    )
    # The others' readings before recent_needed change nothing.
    recent = FAST.recent_needed(cut["interval_start"].max())
    old = ~cut["target_id"].isin(trained) & (cut["interval_start"] < recent)
    assert old.any()
    trimmed = live_forecast(cut[~old], "meter", FAST, train_targets=trained).rows
    trimmed = trimmed.sort_values(["target_id", "interval_start"], ignore_index=True)
    pd.testing.assert_frame_equal(rows, trimmed)
    # A group with none of the sample (another resolution or timezone) trains on its own.
    none = live_forecast(cut, "meter", FAST, train_targets={"elsewhere"}).rows
    whole = live_forecast(cut, "meter", FAST).rows
    pd.testing.assert_frame_equal(none, whole)
